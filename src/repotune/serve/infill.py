"""llama.cpp's `POST /infill`, the endpoint llama.vscode and llama.vim call for completions.

Those clients send the text before the cursor in two parts (`input_prefix`, the lines above,
and `prompt`, the current line up to the cursor) and the text after it as `input_suffix`, as
llama.cpp's server defines them; they read llama.cpp's answer (`content`, `stop`, `timings`,
optionally filtered by `response_fields`). The prompt is the one /v1/completions builds for a
`suffix` request (`CompletionPrompts.build`), the `complete` task's test prompt, so an editor
on either endpoint gets what the report measured.

`input_extra` (the client's chunks of other open files) is accepted and not used: the model was
measured without such context; `serve --retrieval` adds the repository's snippets the way the
task's "+ retrieval" rows did. llama.cpp's sampler and cache knobs (`samplers`, `top_k`,
`n_indent`, `cache_prompt`, `id_slot`, `t_max_prompt_ms`) are accepted and ignored; without a
`temperature` decoding is greedy, what the task measured, and `n_cmpl` greedy completions are
one answer (they would be identical). `t_max_predict_ms` is kept as llama.cpp keeps it: past
that time, generation stops at the end of a line, so a slow CPU still answers an editor in time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from repotune.serve.engine import Engine, Finish, Sampling
from repotune.serve.prompts import CompletionPrompts


class InfillRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[dict[str, Any]] = Field(default_factory=list)
    prompt: str = ""
    n_predict: int = Field(default=-1, ge=-1)  # -1: up to the server's --max-tokens
    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    n_cmpl: int = Field(default=1, ge=1, le=16)
    t_max_predict_ms: float = Field(default=0, ge=0)  # 0: no limit
    response_fields: list[str] = Field(default_factory=list)

    def sampling(self, default_max_tokens: int) -> Sampling:
        limit = default_max_tokens if self.n_predict < 0 else self.n_predict
        return Sampling(limit, self.temperature, self.top_p, list(self.stop), self.seed)


def infill_router(
    engine: Engine, completion: CompletionPrompts, default_max_tokens: int
) -> APIRouter:
    """The /infill route; `completion` is the app's /v1/completions prompt builder."""
    router = APIRouter()

    @router.post("/infill")
    def infill(req: InfillRequest):
        # llama.cpp appends `prompt` to `input_prefix`: together, the text before the cursor
        prompt = completion.build(req.input_prefix + req.prompt, req.input_suffix)
        sampling = req.sampling(default_max_tokens)
        if req.stream:
            run = _Run(engine, prompt, sampling, req.t_max_predict_ms)
            return StreamingResponse(_events(run, req), media_type="text/event-stream")
        n = req.n_cmpl if sampling.temperature > 0 else 1
        answers = []
        for index in range(n):
            run = _Run(engine, prompt, sampling, req.t_max_predict_ms)
            text = "".join(run.pieces())
            answers.append(_fields({**run.final(text), "index": index}, req.response_fields))
        return answers[0] if n == 1 else answers  # llama.cpp answers n_cmpl > 1 with a list

    return router


class _Run:
    """One generation with llama.cpp's bookkeeping: counts and timings of prompt and reply."""

    def __init__(self, engine: Engine, prompt: str, sampling: Sampling, max_predict_ms: float):
        self.engine, self.prompt, self.sampling = engine, prompt, sampling
        self.max_predict_s = max_predict_ms / 1000
        self.finish = Finish(reason="stop")
        self.started = self.first = self.ended = time.monotonic()

    def pieces(self) -> Iterator[str]:
        self.started = time.monotonic()
        if self.sampling.max_tokens == 0:  # a cache warm-up: both plugins send these
            self.finish.prompt_tokens = len(self.engine.encode(self.prompt, False, 0))
        else:
            yield from self._generate()
        self.ended = time.monotonic()
        self.first = max(self.first, self.started)

    def _generate(self) -> Iterator[str]:
        stream = self.engine.stream(self.prompt, self.sampling, self.finish)
        text = ""
        try:
            for piece in stream:
                if not text:
                    self.first = time.monotonic()
                text += piece
                yield piece
                late = time.monotonic() - self.first > self.max_predict_s > 0
                if late and "\n" in text:  # llama.cpp's rule: time is up and a line is done
                    tokenize = self.engine.tokenizer
                    ids = tokenize(text, add_special_tokens=False)["input_ids"]
                    self.finish.completion_tokens, self.finish.reason = len(ids), "length"
                    break
        finally:
            stream.close()  # the engine cancels generation and releases the model

    def final(self, content: str) -> dict:
        f = self.finish
        prompt_ms = (self.first - self.started) * 1000
        predicted_ms = (self.ended - self.first) * 1000
        timings = {
            "prompt_n": f.prompt_tokens,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / max(f.prompt_tokens, 1),
            "prompt_per_second": f.prompt_tokens / max(prompt_ms / 1000, 1e-6),
            "predicted_n": f.completion_tokens,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / max(f.completion_tokens, 1),
            "predicted_per_second": f.completion_tokens / max(predicted_ms / 1000, 1e-6),
        }
        return {
            "index": 0,
            "content": content,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": self.engine.name,
            "tokens_predicted": f.completion_tokens,
            "tokens_evaluated": f.prompt_tokens,
            "generation_settings": {
                "n_predict": self.sampling.max_tokens,
                "temperature": self.sampling.temperature,
                "top_p": self.sampling.top_p,
                "stop": self.sampling.stop,
            },
            "prompt": self.prompt,
            "has_new_line": "\n" in content,
            "truncated": False,
            "stop_type": "limit" if f.reason == "length" else "eos",
            "stopping_word": "",
            "tokens_cached": 0,
            "timings": timings,
        }


def _events(run: _Run, req: InfillRequest) -> Iterator[str]:
    """llama.cpp's stream: a chunk per piece, then the final object with empty `content`;
    no `[DONE]` line (that is the OpenAI endpoints' convention)."""
    for piece in run.pieces():
        chunk = {"index": 0, "content": piece, "tokens": [], "stop": False, "id_slot": 0}
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    final = _fields(run.final(""), req.response_fields)
    yield f"data: {json.dumps(final, ensure_ascii=False)}\n\n"


def _fields(full: dict, wanted: list[str]) -> dict:
    """llama.cpp's `response_fields`: only the named fields, a nested one named by its path
    ("timings/prompt_n") and keyed by that path; all of them when none is named."""
    if not wanted:
        return full
    out = {}
    for path in wanted:
        value: Any = full
        for key in path.split("/"):
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            out[path] = value
    return out
