"""vLLM as a backend (optional extra: `pip install repotune[vllm]`; GPU machines).

Imported only when chosen, so the package works where vLLM is not installed. A PEFT adapter is
served with vLLM's LoRA support rather than merged, so base and tuned share one engine load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from repotune.errors import UserError
from repotune.infer.generate import Completion, Decoding, truncate_at_stop


class VLLMBackend:
    def __init__(
        self, model: str, adapter: str | None = None, dtype: str = "auto", name: str | None = None
    ) -> None:
        self.model_name, self.adapter, self.dtype = model, adapter, dtype
        self.name = name or model
        self._llm: Any = None

    def _load(self):
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError:
                raise UserError(
                    "backend vllm: install it with `pip install repotune[vllm]`"
                ) from None
            from repotune.models.registry import resolve_model

            kwargs: dict[str, Any] = {"model": resolve_model(self.model_name), "seed": 0}
            if self.dtype != "auto":
                kwargs["dtype"] = self.dtype
            if self.adapter:
                kwargs.update(enable_lora=True, max_lora_rank=64)
            self._llm = LLM(**kwargs)
        return self._llm

    def _lora(self):
        if not self.adapter:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest("tuned", 1, self.adapter)

    def complete(
        self,
        prompts: list[str],
        decoding: Decoding,
        instruction: str | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        if not prompts:
            return []
        llm = self._load()
        if decoding.mode == "beam":
            groups = self._beam(llm, prompts, decoding)
        else:
            groups = self._sample(llm, prompts, decoding)
        if on_batch:
            on_batch(len(prompts))
        return groups

    def _sample(self, llm, prompts, decoding: Decoding) -> list[list[Completion]]:
        from vllm import SamplingParams

        greedy = decoding.mode == "greedy"
        params = SamplingParams(
            n=decoding.n,
            temperature=0.0 if greedy else decoding.temperature,
            top_p=1.0 if greedy else decoding.top_p,
            seed=decoding.seed,
            max_tokens=decoding.max_new_tokens,
            stop=list(decoding.stop) or None,
        )
        outputs = llm.generate(prompts, params, lora_request=self._lora(), use_tqdm=False)
        return [
            [
                Completion(truncate_at_stop(o.text, decoding.stop), o.cumulative_logprob)
                for o in out.outputs
            ]
            for out in outputs
        ]

    def _beam(self, llm, prompts, decoding: Decoding) -> list[list[Completion]]:
        from vllm.sampling_params import BeamSearchParams

        params = BeamSearchParams(beam_width=decoding.beams, max_tokens=decoding.max_new_tokens)
        tokenizer = llm.get_tokenizer()
        outputs = llm.beam_search(
            [{"prompt": p} for p in prompts], params, lora_request=self._lora()
        )
        groups = []
        for prompt, out in zip(prompts, outputs, strict=True):
            n_prompt = len(tokenizer(prompt)["input_ids"])  # beam tokens include the prompt
            group = []
            for seq in out.sequences[: decoding.n]:
                text = tokenizer.decode(seq.tokens[n_prompt:], skip_special_tokens=True)
                group.append(Completion(truncate_at_stop(text, decoding.stop), seq.cum_logprob))
            groups.append(group)
        return groups

    def close(self) -> None:
        self._llm = None
