"""An OpenAI-compatible HTTP API over one `Engine`: /v1/models, /v1/completions (with `suffix`
for editor fill-in-the-middle, in the `complete` task's prompt form: prompts.py) and
/v1/chat/completions, each streaming as server-sent events; and llama.cpp's /infill, which
llama.vscode and llama.vim call (infill.py), on the same prompt as a `suffix` completion.

Handlers are plain `def`s: FastAPI runs them, and the streams' iterators, in its thread pool,
so a long generation never blocks the event loop that serves other requests. Generation
requests are admitted up to `capacity` at a time (running or waiting for the model); one more
gets an immediate 503 with Retry-After, so load never piles up threads, memory and latency
without bound, and clients learn at once to come back.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from repotune.serve.engine import Engine, Finish, Sampling
from repotune.serve.infill import infill_router
from repotune.serve.prompts import CompletionPrompts, chat_prompt
from repotune.serve.schemas import ChatRequest, CompletionRequest

DEFAULT_CAPACITY = 8  # generation requests running or queued; more get 503
MAX_BODY_BYTES = 4 << 20  # a request body larger than this gets 413
_GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions", "/infill")


def _error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status,
        headers=headers,
    )


class Admission:
    """ASGI middleware: at most `capacity` generation requests in flight, counted from arrival
    until the last byte of the answer (streams included) or the client leaves; the rest get a
    503 at once. Runs on the event loop, so a plain counter is enough."""

    def __init__(self, app: ASGIApp, capacity: int, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.capacity, self.max_body = app, capacity, max_body
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in _GENERATION_PATHS:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            limit = f"{self.max_body // 2**20} MiB"
            await _error(413, f"request body over {limit}")(scope, receive, send)
            return
        if self.in_flight >= self.capacity:
            busy = f"server busy: {self.in_flight} requests in flight (capacity {self.capacity})"
            response = _error(503, busy, "server_busy", {"Retry-After": "1"})
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _usage(finishes: list[Finish]) -> dict[str, int]:
    prompt = sum(f.prompt_tokens for f in finishes)
    completion = sum(f.completion_tokens for f in finishes)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _sse(chunks: Iterator[dict]) -> StreamingResponse:
    def events() -> Iterator[str]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def create_app(
    engine: Engine,
    api_key: str | None = None,
    default_max_tokens: int = 512,
    capacity: int = DEFAULT_CAPACITY,
    completion: CompletionPrompts | None = None,
) -> FastAPI:
    """The app; `api_key`, when set, is required as `Authorization: Bearer KEY`; `capacity`
    generation requests are served or queued at once, more get 503; `completion` builds the
    prompts of /v1/completions (default: `build.complete`'s defaults, no retrieval)."""
    completion = completion or CompletionPrompts.for_tokenizer(engine.tokenizer)
    app = FastAPI(title="repotune", description=f"OpenAI-compatible API for {engine.name}")
    app.add_middleware(Admission, capacity=capacity)

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if api_key and request.url.path.startswith(("/v1/", "/infill")):
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not secrets.compare_digest(given.encode(), api_key.encode()):
                return _error(401, "invalid API key", "authentication_error")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return _error(400, f"{where}: {first['msg']}")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": engine.name}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [_model_card(engine)]}

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str):
        if model_id != engine.name:
            return _error(404, f"model '{model_id}' not found; this server has '{engine.name}'")
        return _model_card(engine)

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        texts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        prompts = [(t, completion.build(t, req.suffix)) for t in texts]
        sampling = req.sampling(req.max_tokens)
        jobs = [(i * req.n + j, *p) for i, p in enumerate(prompts) for j in range(req.n)]
        head = {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion",
                "created": int(time.time()), "model": engine.name}  # fmt: skip
        if req.stream:
            return _sse(_stream_completions(engine, head, jobs, sampling, req))
        choices, finishes = [], []
        for index, sent, prompt in jobs:
            text, finish = engine.complete(prompt, sampling)
            finishes.append(finish)
            text = sent + text if req.echo else text
            choices.append({"index": index, "text": text, "logprobs": None,
                            "finish_reason": finish.reason})  # fmt: skip
        return {**head, "choices": choices, "usage": _usage(finishes)}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        messages = [m.model_dump() for m in req.messages]
        prompt, stops, templated = chat_prompt(engine.tokenizer, messages)
        sampling = req.sampling(req.token_limit(default_max_tokens), stops)
        head = {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion",
                "created": int(time.time()), "model": engine.name}  # fmt: skip
        if req.stream:
            head["object"] = "chat.completion.chunk"
            return _sse(_stream_chat(engine, head, prompt, templated, sampling, req))
        choices, finishes = [], []
        for index in range(req.n):
            text, finish = engine.complete(prompt, sampling, templated)
            finishes.append(finish)
            message = {"role": "assistant", "content": text.lstrip()}
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish.reason,
                }
            )
        return {**head, "choices": choices, "usage": _usage(finishes)}

    app.include_router(infill_router(engine, completion, default_max_tokens))
    return app


def _model_card(engine: Engine) -> dict:
    return {"id": engine.name, "object": "model", "created": 0, "owned_by": "repotune"}


def _stream_completions(
    engine: Engine,
    head: dict,
    jobs: list[tuple[int, str, str]],
    sampling: Sampling,
    req: CompletionRequest,
) -> Iterator[dict]:
    finishes = []
    for index, sent, prompt in jobs:
        finish = Finish()
        if req.echo:  # the client's own text, not the sentinels and snippets around it
            yield {**head, "choices": [_text_choice(index, sent, None)]}
        for piece in engine.stream(prompt, sampling, finish):
            yield {**head, "choices": [_text_choice(index, piece, None)]}
        finishes.append(finish)
        yield {**head, "choices": [_text_choice(index, "", finish.reason)]}
    if req.include_usage:
        yield {**head, "choices": [], "usage": _usage(finishes)}


def _text_choice(index: int, text: str, reason: str | None) -> dict:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": reason}


def _stream_chat(
    engine: Engine,
    head: dict,
    prompt: str,
    templated: bool,
    sampling: Sampling,
    req: ChatRequest,
) -> Iterator[dict]:
    finishes = []
    for index in range(req.n):
        finish = Finish()
        yield {**head, "choices": [_delta(index, {"role": "assistant", "content": ""}, None)]}
        started = False
        for piece in engine.stream(prompt, sampling, finish, templated):
            if not started:  # the transcript prompt ends in "Assistant:"; drop the space
                piece = piece.lstrip()
                started = bool(piece)
            if piece:
                yield {**head, "choices": [_delta(index, {"content": piece}, None)]}
        finishes.append(finish)
        yield {**head, "choices": [_delta(index, {}, finish.reason)]}
    if req.include_usage:
        yield {**head, "choices": [], "usage": _usage(finishes)}


def _delta(index: int, delta: dict, reason: str | None) -> dict:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
