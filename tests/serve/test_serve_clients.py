"""The requests editor assistants send, replayed byte for byte against `serve` (docs/serve.md
gives their configurations):

- Continue (provider `openai`, role `autocomplete`): GET /v1/models, then POST /v1/completions
  with the prompt its template rendered, `stop` list, `max_tokens`, `stream: true`
  (core/llm/llms/OpenAI.ts `_legacystreamComplete`, core/autocomplete/templating/).
- llama.vscode and llama.vim: POST /infill in llama.cpp's shape, cache warm-ups with
  `n_predict: 0` included (llama.vscode src/llama-server.ts, llama.vim autoload/llama.vim).

The server runs in a thread of this process with the tiny model, called over HTTP with requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from repotune.config import CompleteTaskConfig
from repotune.serve.app import create_app
from repotune.serve.engine import load_engine
from repotune.serve.prompts import CompletionPrompts
from tests.serve.test_serve import _start

SETTINGS = CompleteTaskConfig(max_prefix_chars=300, max_suffix_chars=80, max_prompt_tokens=64)
PREFIX = "".join(f"def step_{i}(value):\n    return value * {i}\n\n" for i in range(12))
SUFFIX = "\n\nclass Stack:\n    def push(self, item):\n        self.items.append(item)\n"

# Continue's default template for a model name it does not know (stableCodeFimTemplate) and the
# stop words it sends with it: the template's own, then getStopTokens' common ones.
CONTINUE_STOPS = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>",
                  "</fim_middle>", "</code>", "/src/", "#- coding: utf-8", "```"]  # fmt: skip

# What llama.vim reads back from /infill (llama.cpp then answers with these fields alone).
LLAMA_VIM_FIELDS = ["content", "timings/prompt_n", "timings/prompt_ms",
                    "timings/prompt_per_token_ms", "timings/prompt_per_second",
                    "timings/predicted_n", "timings/predicted_ms", "timings/predicted_per_token_ms",
                    "timings/predicted_per_second", "truncated", "tokens_cached"]  # fmt: skip


@pytest.fixture(scope="module")
def engine(tiny_model):
    return load_engine(model=tiny_model, dtype="float32", name="tiny")


class _Http:
    """requests against one server: `http.post("/infill", json=...)`."""

    def __init__(self, session: requests.Session, base: str):
        self.session, self.base = session, base

    def get(self, path: str, **kw) -> requests.Response:
        return self.session.get(self.base + path, timeout=60, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.session.post(self.base + path, timeout=60, **kw)


@contextmanager
def _serving(engine, **kw) -> Iterator[_Http]:
    completion = CompletionPrompts.for_tokenizer(engine.tokenizer, SETTINGS)
    server, thread, port = _start(create_app(engine, completion=completion, **kw))
    try:
        with requests.Session() as session:
            yield _Http(session, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def http(engine) -> Iterator[_Http]:
    with _serving(engine, default_max_tokens=24) as client:
        yield client


def _sse(res: requests.Response) -> list[str]:
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("text/event-stream")
    events = [block for block in res.text.split("\n\n") if block.strip()]
    assert all(e.startswith("data: ") for e in events), events
    return [e.removeprefix("data: ") for e in events]


def test_continue_lists_the_model(http):
    # listModels(): GET {apiBase}models, then data.data.map(m => m.id)
    res = http.get("/v1/models", headers={"Authorization": "Bearer undefined"})
    assert res.status_code == 200
    assert [m["id"] for m in res.json()["data"]] == ["tiny"]


def test_continue_autocomplete_streams_its_own_fim_prompt(http, engine, prompts):
    prompt = f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>"
    body = {"model": "tiny", "max_tokens": 12, "temperature": 0, "stream": True,
            "stop": CONTINUE_STOPS, "prompt": prompt}  # fmt: skip
    headers = {"Authorization": "Bearer undefined", "api-key": ""}
    data = _sse(http.post("/v1/completions", json=body, headers=headers))
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "text_completion" and c["model"] == "tiny" for c in chunks)
    texts = [c["choices"][0]["text"] for c in chunks]
    reasons = [c["choices"][0]["finish_reason"] for c in chunks]
    assert all(isinstance(t, str) for t in texts)
    assert reasons[-1] in ("stop", "length") and set(reasons[:-1]) <= {None}
    streamed = "".join(texts)
    assert not any(stop in streamed for stop in CONTINUE_STOPS)
    # Continue's template, not the server, built this prompt: it reaches the model as sent,
    # its sentinels read as the tiny model's own FIM tokens
    assert prompts == [prompt]
    ids = engine.tokenizer(prompt)["input_ids"]
    assert engine.tokenizer.convert_tokens_to_ids("<fim_middle>") == ids[-1]

    whole = http.post("/v1/completions", json={**body, "stream": False}).json()
    assert whole["choices"][0]["text"] == streamed  # greedy: the same text either way


def test_continue_template_for_a_model_without_fim_tokens(http, prompts):
    """With `promptTemplates.autocomplete: "{{{prefix}}}"` (docs/serve.md, for the embedded
    Gemma) Continue sends the text before the cursor alone, and `stop` as one string works."""
    body = {"model": "tiny", "max_tokens": 6, "temperature": 0, "stream": True,
            "stop": ["/src/", "#- coding: utf-8", "```"], "prompt": PREFIX}  # fmt: skip
    data = _sse(http.post("/v1/completions", json=body))
    assert data[-1] == "[DONE]" and prompts == [PREFIX]
    line = http.post("/v1/completions", json={**body, "stream": False, "stop": "\n"}).json()
    assert "\n" not in line["choices"][0]["text"]


def _llama_vim_body(prefix: str, middle: str, suffix: str, **kw) -> dict:
    """llama#fim(): the lines above, the current line up to the cursor as `prompt`, the rest."""
    return {
        "id_slot": 0,
        "input_prefix": prefix,
        "input_suffix": suffix,
        "input_extra": [{"text": "import os\n", "time": 1733000000.0, "filename": "util.py"}],
        "prompt": middle,
        "n_predict": 8,
        "stop": [],  # g:llama_config.stop_strings
        "n_indent": 4,
        "top_k": 40,
        "top_p": 0.90,
        "stream": False,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "response_fields": LLAMA_VIM_FIELDS,
        **kw,
    }


def test_llama_vim_infill_gets_the_fields_it_asks_for(http):
    body = _llama_vim_body(PREFIX, "    ret", SUFFIX)
    res = http.post("/infill", json=body, headers={"Authorization": "Bearer unused"})
    assert res.status_code == 200, res.text
    answer = res.json()
    assert set(answer) == set(body["response_fields"])  # flattened, keyed by their paths
    assert isinstance(answer["content"], str)
    assert 0 < answer["timings/predicted_n"] <= 8 and answer["timings/prompt_n"] > 0
    assert answer["truncated"] is False and answer["tokens_cached"] == 0


def test_llama_vscode_infill_and_its_stream(http):
    # createRequestPayload(false, ...): no response_fields, so llama.cpp's whole answer; three
    # completions asked for (max_parallel_completions), which greedy decoding makes one
    body = {"id_slot": 0, "input_prefix": PREFIX, "input_suffix": SUFFIX, "input_extra": [],
            "prompt": "    ret", "n_predict": 10, "n_cmpl": 3, "top_k": 40, "top_p": 0.99,
            "stream": False, "samplers": ["top_k", "top_p", "infill"], "cache_prompt": True,
            "n_indent": 4, "t_max_prompt_ms": 500, "t_max_predict_ms": 1500,
            "model": "tiny"}  # fmt: skip
    whole = http.post("/infill", json=body).json()
    assert isinstance(whole, dict)  # the client takes one object or a list (getComplFromContent)
    assert whole["stop"] is True and whole["model"] == "tiny"
    assert isinstance(whole["content"], str) and whole["tokens_predicted"] <= 10
    assert whole["stop_type"] in ("eos", "limit")
    assert set(whole["timings"]) >= {"prompt_n", "prompt_ms", "predicted_n", "predicted_ms"}

    data = _sse(http.post("/infill", json={**body, "stream": True}))
    assert "[DONE]" not in data  # llama.cpp's own stream ends on the `stop: true` object
    chunks = [json.loads(d) for d in data]
    assert [c["stop"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c["content"] for c in chunks) == whole["content"]
    assert chunks[-1]["content"] == "" and chunks[-1]["timings"]["predicted_n"] > 0


def test_infill_stop_words_cut_the_content(http):
    body = _llama_vim_body(PREFIX, "", SUFFIX, n_predict=16, response_fields=["content"])
    free = http.post("/infill", json=body).json()["content"]
    assert len(free) > 3
    stop = free[1:3]
    cut = http.post("/infill", json={**body, "stop": [stop]}).json()
    assert cut == {"content": free[: free.index(stop)]}


def test_sampled_completions_come_as_a_list(http):
    body = _llama_vim_body(PREFIX, "", SUFFIX, n_predict=4, n_cmpl=2, temperature=0.8, seed=1)
    answers = http.post("/infill", json={**body, "response_fields": []}).json()
    assert [a["index"] for a in answers] == [0, 1]
    assert all(isinstance(a["content"], str) for a in answers)


def test_cache_warm_ups_answer_without_generating(http, prompts):
    """Both plugins send their ring of chunks with `n_predict: 0` ahead of time, for
    llama.cpp to cache; the answer is an empty completion, and the model does not run."""
    extra = [{"text": "x = 1\n", "time": 1.0, "filename": "a.py"}]
    vscode = {"id_slot": 0, "input_prefix": "", "input_suffix": "", "input_extra": extra,
              "prompt": "", "n_predict": 0, "samplers": [], "cache_prompt": True,
              "t_max_prompt_ms": 500, "t_max_predict_ms": 1}  # fmt: skip
    answer = http.post("/infill", json=vscode).json()
    assert answer["content"] == "" and answer["tokens_predicted"] == 0
    vim = {**vscode, "temperature": 0.0, "stream": False, "response_fields": [""]}
    res = http.post("/infill", json=vim)
    assert res.status_code == 200 and res.json() == {}  # no field asked for, none given
    assert prompts == []


def test_time_limit_ends_generation_at_a_line_end(http, engine, monkeypatch):
    """`t_max_predict_ms`, as llama.cpp keeps it: once the time is up, the first finished line
    ends the completion (and generation is cancelled)."""
    closed = []

    def slow(prompt, sampling, finish, templated=False):
        try:
            for piece in ["x = 1", "  # one", "\n", "y = 2\n", "z"]:
                time.sleep(0.02)
                yield piece
        finally:
            closed.append(True)

    monkeypatch.setattr(engine, "stream", slow)
    body = _llama_vim_body("", "", "", n_predict=50, t_max_predict_ms=1)
    answer = http.post("/infill", json={**body, "response_fields": []}).json()
    assert answer["content"] == "x = 1  # one\n" and answer["stop_type"] == "limit"
    assert closed == [True]
    whole = http.post("/infill", json={**body, "t_max_predict_ms": 0}).json()
    assert whole["content"] == "x = 1  # one\ny = 2\nz"


def test_infill_prompt_is_the_suffix_completion_prompt(http, engine, prompts):
    """llama.cpp joins `input_prefix` and `prompt` as the text before the cursor; /infill
    then builds exactly the prompt a /v1/completions request with that `suffix` gets, which
    test_serve_complete.py pins to the `complete` task's test prompt."""
    cases = [(PREFIX, "    return val", SUFFIX), ("def add(a, b):\n", "    ", "\n"), ("", "x", "")]
    for prefix, middle, suffix in cases:
        http.post("/infill", json=_llama_vim_body(prefix, middle, suffix, n_predict=1))
        http.post("/v1/completions", json={"prompt": prefix + middle, "suffix": suffix,
                                           "max_tokens": 1, "temperature": 0})  # fmt: skip
    assert len(prompts) == 2 * len(cases)
    assert prompts[0::2] == prompts[1::2]
    completion = CompletionPrompts.for_tokenizer(engine.tokenizer, SETTINGS)
    first = completion.build(PREFIX + "    return val", SUFFIX)
    assert prompts[0] == first and first.startswith("<fim_prefix>")
    assert len(first) < len(PREFIX)  # cut to the settings' limits, as the task cuts them


def test_infill_errors_and_keys(engine):
    with _serving(engine, api_key="k") as http:
        body = _llama_vim_body("a = ", "", "\n", n_predict=1)
        assert http.post("/infill", json=body).status_code == 401
        auth = {"Authorization": "Bearer k"}
        assert http.post("/infill", json=body, headers=auth).status_code == 200
        bad = http.post("/infill", json={**body, "n_predict": -2}, headers=auth)
        assert bad.status_code == 400 and "n_predict" in bad.json()["error"]["message"]
