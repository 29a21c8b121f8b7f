"""Any OpenAI-compatible endpoint (OpenAI, vLLM's server, llama.cpp, Ollama, TGI) as a backend.

The base URL and key come from the environment only: REPOTUNE_OPENAI_BASE_URL and
REPOTUNE_OPENAI_API_KEY, else the `openai` client's own OPENAI_BASE_URL and OPENAI_API_KEY; a
local server that wants no key gets a placeholder. Chat models are asked to
answer with code only, and the first fenced block of the reply is taken when there is one.
Beam search is not part of the API: `beam` asks for n samples instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from repotune.errors import UserError
from repotune.infer.generate import Completion, Decoding, truncate_at_stop

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.S)
_DEFAULT_INSTRUCTION = "Complete the code. Reply with code only, in one fenced block."
_MAX_STOP = 4
BASE_URL_ENV = "REPOTUNE_OPENAI_BASE_URL"
API_KEY_ENV = "REPOTUNE_OPENAI_API_KEY"  # the OpenAI API takes at most four stop sequences


class OpenAIBackend:
    def __init__(self, model: str, api: str = "chat", name: str | None = None) -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be chat or completions, not {api}")
        self.model, self.api = model, api
        self.name = name or f"openai:{model}"
        self._client = None

    def _connect(self):
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise UserError(
                    "the OpenAI-compatible backend needs the `openai` package"
                ) from None
            base_url = _env(BASE_URL_ENV, "OPENAI_BASE_URL")
            key = _env(API_KEY_ENV, "OPENAI_API_KEY")
            if not base_url and not key:
                raise UserError(
                    f"{self.name}: set {BASE_URL_ENV} (and {API_KEY_ENV} if the endpoint needs "
                    "one) to compare with a model behind an OpenAI-compatible API"
                )
            self._client = openai.OpenAI(
                base_url=base_url or None, api_key=key or "not-needed", max_retries=2
            )
        return self._client

    def complete(
        self,
        prompts: list[str],
        decoding: Decoding,
        instruction: str | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        import openai

        client = self._connect()
        greedy = decoding.mode == "greedy"
        common = {
            "model": self.model,
            "n": decoding.n,
            "max_tokens": decoding.max_new_tokens,
            "temperature": 0.0 if greedy else decoding.temperature,
            "top_p": 1.0 if greedy else decoding.top_p,
        }
        if decoding.seed is not None:
            common["seed"] = decoding.seed
        if decoding.stop:
            common["stop"] = list(decoding.stop)[:_MAX_STOP]
        results = []
        for prompt in prompts:
            try:
                texts = self._ask(client, prompt, instruction, common)
            except openai.OpenAIError as exc:
                raise UserError(f"{self.name}: {type(exc).__name__}: {exc}") from None
            texts = (texts + [""] * decoding.n)[: decoding.n]  # a server may return fewer
            results.append([Completion(truncate_at_stop(t, decoding.stop)) for t in texts])
            if on_batch:
                on_batch(1)
        return results

    def _ask(self, client, prompt: str, instruction: str | None, common: dict) -> list[str]:
        if self.api == "completions":
            resp = client.completions.create(prompt=prompt, **common)
            return [c.text or "" for c in sorted(resp.choices, key=lambda c: c.index)]
        messages = [
            {"role": "system", "content": instruction or _DEFAULT_INSTRUCTION},
            {"role": "user", "content": prompt},
        ]
        resp = client.chat.completions.create(messages=messages, **common)
        choices = sorted(resp.choices, key=lambda c: c.index)
        return [code_from_reply(c.message.content or "") for c in choices]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _env(*names: str) -> str | None:
    for name in names:
        if value := os.environ.get(name, "").strip():
            return value
    return None


def code_from_reply(reply: str) -> str:
    """The first fenced code block of a chat reply, or the reply itself."""
    m = _FENCE.search(reply)
    return m.group(1) if m else reply
