"""Request bodies of the OpenAI API subset served here.

Unknown fields are accepted and ignored (extra="allow"): IDE assistants send penalties, logit
biases and user ids this server has no use for, and refusing them would break those clients.
Defaults are OpenAI's (max_tokens 16 for completions, temperature 1).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from repotune.serve.engine import Sampling


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None

    def sampling(self, max_tokens: int, extra_stop: list[str] | None = None) -> Sampling:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Sampling(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop + (extra_stop or []),
            seed=self.seed,
        )

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionRequest(_Request):
    prompt: str | list[str] = ""
    suffix: str | None = None
    max_tokens: int = Field(default=16, ge=1)
    echo: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[Any] | None = None


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default
