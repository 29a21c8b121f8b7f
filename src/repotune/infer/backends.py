"""Where completions come from, behind one call: `backend.complete(prompts, decoding)`.

- transformers (default): the local model, optionally with a PEFT adapter;
- vLLM (optional extra `repotune[vllm]`): used by `auto` when it is installed and a GPU is
  present, for fast sampling and beam search at scale;
- an OpenAI-compatible endpoint (`openai:MODEL`, or `openai-completions:MODEL` for raw
  completions), so other LLMs answer the very same prompts. Its address and key come from the
  environment only (REPOTUNE_OPENAI_BASE_URL / REPOTUNE_OPENAI_API_KEY, or the standard
  OPENAI_* ones), never from files that get shared.

A model spec names one of them: `openai:gpt-4o-mini`, `openai-completions:my-served-model`, or
a local model (registry name, folder, hub id) with `adapter` for the tuned one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from repotune.errors import UserError
from repotune.infer.generate import Completion, Decoding


class Backend(Protocol):
    name: str

    def complete(
        self,
        prompts: list[str],
        decoding: Decoding,
        instruction: str | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        """`decoding.n` completions per prompt. `instruction` is only used by chat endpoints
        (a base model continues the prompt as it is)."""
        ...

    def close(self) -> None: ...


class TransformersBackend:
    """A local causal LM, loaded on first use so a cached-only run never loads it."""

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int = 2,
        max_prompt_tokens: int = 1024,
        name: str | None = None,
    ) -> None:
        self.model_name, self.adapter, self.dtype = model, adapter, dtype
        self.batch_size, self.max_prompt_tokens = batch_size, max_prompt_tokens
        self.name = name or model
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is None:
            from repotune.models.load import load_model, load_tokenizer
            from repotune.models.registry import resolve_model

            path = resolve_model(self.model_name)
            self._tokenizer = load_tokenizer(path)
            self._model = load_model(path, dtype=self.dtype, adapter=self.adapter)

    def complete(self, prompts, decoding, instruction=None, on_batch=None):
        from repotune.infer.generate import generate_candidates

        if not prompts:
            return []
        self._load()
        return generate_candidates(
            self._model,
            self._tokenizer,
            prompts,
            decoding,
            max_prompt_tokens=self.max_prompt_tokens,
            batch_size=self.batch_size,
            on_batch=on_batch,
        )

    def close(self) -> None:
        self._model = self._tokenizer = None


def vllm_usable() -> bool:
    """vLLM installed and a CUDA GPU present (vLLM's CPU build is slower than transformers
    for the small models this tool targets, so it is never picked without a GPU)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def open_backend(
    spec: str,
    adapter: str | None = None,
    kind: str = "auto",
    dtype: str = "auto",
    batch_size: int = 2,
    max_prompt_tokens: int = 1024,
    name: str | None = None,
) -> Backend:
    """The backend a model spec names (see the module docstring)."""
    label = name or spec
    for prefix, api in (("openai:", "chat"), ("openai-completions:", "completions")):
        if spec.startswith(prefix):
            from repotune.infer.openai_backend import OpenAIBackend

            return OpenAIBackend(spec[len(prefix) :], api=api, name=label)
    if kind == "vllm" or (kind == "auto" and vllm_usable()):
        from repotune.infer.vllm_backend import VLLMBackend

        return VLLMBackend(spec, adapter=adapter, dtype=dtype, name=label)
    if kind not in ("auto", "transformers"):
        raise UserError(f"unknown backend: {kind} (expected auto, transformers or vllm)")
    return TransformersBackend(spec, adapter, dtype, batch_size, max_prompt_tokens, name=label)
