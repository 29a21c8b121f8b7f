"""A teacher model that writes answers for distillation: any OpenAI-compatible chat endpoint
(vLLM, llama.cpp server, Ollama, a hosted API) or a local transformers model.

Where the code goes is the user's decision, so the endpoint's address and key come from the
environment only (REPOTUNE_TEACHER_BASE_URL, REPOTUNE_TEACHER_API_KEY), never from a config
file that gets committed or copied into a run directory. Every answer is cached on disk as
soon as it arrives, keyed on model + request, so an interrupted build resumes where it
stopped and a rebuild costs nothing. Rate limits (429), server errors (5xx) and time-outs are
retried with exponential back-off, honouring Retry-After.

HTTP is `requests`: synchronous, already installed with the hub tooling, and the endpoint
contract is one POST; an SDK would add a dependency for no gain.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from repotune.config import ExplainTaskConfig
from repotune.errors import UserError
from repotune.fsutil import write_json

BASE_URL_ENV = "REPOTUNE_TEACHER_BASE_URL"
API_KEY_ENV = "REPOTUNE_TEACHER_API_KEY"
MODEL_ENV = "REPOTUNE_TEACHER_MODEL"
_MAX_WAIT = 60.0  # seconds between tries at most, whatever Retry-After says
_MAX_BODY = 16 << 20
Messages = list[dict[str, str]]


class AnswerCache:
    """One JSON file per answer (written atomically): safe to interrupt, to share between
    runs, and to run several builds against at once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @staticmethod
    def key(model: str, messages: Messages, params: dict[str, Any]) -> str:
        blob = json.dumps([model, messages, params], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))["answer"]
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, model: str, answer: str) -> None:
        write_json(self._path(key), {"model": model, "answer": answer})


def default_cache_dir() -> Path:
    from repotune.models.registry import cache_dir

    return cache_dir() / "teacher"


class Endpoint:
    """POST {base}/chat/completions with retries; `answer` returns None when the endpoint
    rejects that one request (400/413/422: e.g. too long) or answers with something that is
    not a chat completion, raises UserError when it cannot be used at all (bad key, wrong URL)
    or stays unavailable after every retry. Each try ends within `timeout_seconds` even when
    the server trickles its answer, so a build never waits on a teacher forever."""

    def __init__(self, base_url: str, api_key: str | None, model: str, cfg: ExplainTaskConfig):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.host = _shown(base_url)
        self.model = model
        self.cfg = cfg
        self.headers = {"Content-Type": "application/json"}
        self.auth = _Bearer(api_key) if api_key else None
        self._local = threading.local()
        self.requests_sent = 0
        self._lock = threading.Lock()

    @property
    def params(self) -> dict[str, Any]:
        return {"max_tokens": self.cfg.max_tokens, "temperature": self.cfg.temperature}

    def _session(self):
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def answer(self, messages: Messages) -> str | None:
        import requests
        import urllib3

        body = {"model": self.model, "messages": messages, **self.params}
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            wait = None
            with self._lock:
                self.requests_sent += 1
            deadline = time.monotonic() + self.cfg.timeout_seconds
            try:
                resp = self._session().post(
                    self.url,
                    json=body,
                    headers=self.headers,
                    auth=self.auth,
                    timeout=self.cfg.timeout_seconds,
                    stream=True,
                )
                with resp:
                    status = resp.status_code
                    data = _body(resp, deadline) if status == 200 else b""
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema):  # fmt: skip
                raise UserError(
                    f"{BASE_URL_ENV} is not an http(s) URL: it should be the API root, e.g. "
                    "http://localhost:8000/v1"
                ) from None
            except (requests.Timeout, _TooSlow):
                last = f"no answer within {self.cfg.timeout_seconds:g} s"
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                last = f"connection failed ({type(exc).__name__})"  # refused, reset, cut off
            else:
                if status == 200:
                    return _content(data)
                if status in (401, 403):
                    raise UserError(
                        f"teacher at {self.host} refused the request (HTTP {status}): "
                        f"check {API_KEY_ENV}"
                    )
                if status == 404:
                    raise UserError(
                        f"teacher endpoint at {self.host} not found (HTTP 404): {BASE_URL_ENV} "
                        "should be the API root, e.g. http://localhost:8000/v1"
                    )
                if status not in (408, 409, 429) and status < 500:
                    return None  # this request is refused (too long, bad content): skip it
                last = f"HTTP {status}"
                wait = _retry_after(resp.headers.get("Retry-After"))
            if attempt < self.cfg.max_retries:
                backoff = self.cfg.backoff_seconds * 2**attempt * (1 + random.random() / 4)
                time.sleep(min(wait if wait is not None else backoff, _MAX_WAIT))
        raise UserError(
            f"teacher at {self.host} failed {self.cfg.max_retries + 1} times (last: {last}); "
            "answers so far are cached: run the build again to resume"
        )


class _Bearer:
    """The key as requests auth, not a plain header: requests would replace a plain header
    with credentials found in the URL or ~/.netrc, and the key would silently not be sent."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.key}"
        return request


class _TooSlow(Exception):
    """The answer did not arrive whole within the time-out."""


def _body(resp: Any, deadline: float) -> bytes:
    """The response body, read as it arrives and checked against the deadline (requests' own
    time-out applies to each read, so a server sending a byte a second would never time out).
    Past _MAX_BODY the rest is dropped: no chat answer is that long, and memory stays bounded."""
    chunks, size = [], 0
    while chunk := resp.raw.read1(1 << 16, decode_content=True):
        if time.monotonic() > deadline:
            raise _TooSlow
        size += len(chunk)
        if size > _MAX_BODY:
            return b""
        chunks.append(chunk)
    return b"".join(chunks)


def _content(data: bytes) -> str | None:
    try:
        text = json.loads(data)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) and text.strip() else None


def _shown(url: str) -> str:
    """Host and port of a URL, for messages: never a user name or password written into it."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: requests will say the URL is invalid
        port = ""
    return (parts.hostname or "the configured endpoint") + port


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: use the back-off instead


class LocalTeacher:
    """A local transformers model as the teacher (no network at all); greedy decoding."""

    def __init__(self, name: str, cfg: ExplainTaskConfig):
        self.name = name
        self.model = f"local:{name}"
        self.host = "this machine"
        self.cfg = cfg
        self.requests_sent = 0
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        """Loaded on the first request: a fully cached build never pays for it."""
        if self._loaded is None:
            from repotune.models.load import load_model, load_tokenizer
            from repotune.models.registry import resolve_model

            path = resolve_model(self.name)
            self._loaded = (load_tokenizer(path), load_model(path))
        return self._loaded

    @property
    def params(self) -> dict[str, Any]:
        return {"max_tokens": self.cfg.max_tokens, "greedy": True}

    @staticmethod
    def _text(tokenizer: Any, messages: Messages) -> str:
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        body = "\n\n".join(m["content"] for m in messages)
        return f"{body}\n\nAnswer:\n"

    def answer_many(self, batch: list[Messages]) -> list[str | None]:
        from repotune.infer.generate import generate

        tokenizer, lm = self._load()
        self.requests_sent += len(batch)
        texts = generate(
            lm,
            tokenizer,
            [self._text(tokenizer, m) for m in batch],
            max_new_tokens=self.cfg.max_tokens,
            max_prompt_tokens=2048,
            batch_size=4,
        )
        return [t.strip() or None for t in texts]


def make_teacher(cfg: ExplainTaskConfig) -> Endpoint | LocalTeacher:
    """The configured teacher; the endpoint from the environment, with one clear error."""
    if cfg.teacher == "local":
        if not cfg.teacher_model:
            raise UserError("explain: teacher 'local' needs build.explain.teacher_model")
        return LocalTeacher(cfg.teacher_model, cfg)
    base = os.environ.get(BASE_URL_ENV, "").strip()
    model = cfg.teacher_model or os.environ.get(MODEL_ENV, "").strip()
    if not base:
        raise UserError(
            f"explain: set {BASE_URL_ENV} (an OpenAI-compatible API root such as "
            f"http://localhost:8000/v1) and {API_KEY_ENV} if it needs one, or use "
            "build.explain.teacher=local"
        )
    if not model:
        raise UserError(
            f"explain: name the teacher model in build.explain.teacher_model or {MODEL_ENV}"
        )
    return Endpoint(base, os.environ.get(API_KEY_ENV) or None, model, cfg)


def ask_all(
    teacher: Endpoint | LocalTeacher,
    requests: Sequence[Messages],
    cache: AnswerCache,
    cfg: ExplainTaskConfig,
    say: Callable[[str], None],
) -> list[str | None]:
    """Answers for every request, cached ones first; says the cost before the first request."""
    keys = [cache.key(teacher.model, m, teacher.params) for m in requests]
    answers: list[str | None] = [cache.get(k) for k in keys]
    todo = [i for i, a in enumerate(answers) if a is None]
    chars = sum(len(c["content"]) for i in todo for c in requests[i])
    say(
        f"explain: {len(requests)} code units, {len(requests) - len(todo)} answers cached; "
        f"{len(todo)} requests to {teacher.model} at {teacher.host}, about {chars // 4} prompt "
        f"+ up to {len(todo) * cfg.max_tokens} answer tokens (estimated at 4 characters a token)"
    )
    if not todo:
        return answers

    def done(i: int, answer: str | None) -> None:
        answers[i] = answer
        if answer is not None:
            cache.put(keys[i], teacher.model, answer)

    if isinstance(teacher, LocalTeacher):
        for start in range(0, len(todo), 4):
            chunk = todo[start : start + 4]
            for i, answer in zip(chunk, teacher.answer_many([requests[i] for i in chunk])):
                done(i, answer)
        return answers
    pool = ThreadPoolExecutor(max_workers=cfg.concurrency)
    try:
        futures = {pool.submit(teacher.answer, requests[i]): i for i in todo}
        for fut in as_completed(futures):
            done(futures[fut], fut.result())
    finally:  # on an error or Ctrl-C: stop queued requests; finished answers are cached
        pool.shutdown(wait=True, cancel_futures=True)
    return answers
