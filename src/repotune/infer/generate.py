"""Batched generation with transformers (KV cache, left padding). Greedy by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from repotune.models.encode import encode_prompt


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int = 128,
    max_prompt_tokens: int = 1024,
    batch_size: int = 4,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy completions for `prompts`, cut at EOS, special tokens removed."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = [
            encode_prompt(tokenizer, p, max_prompt_tokens)
            for p in prompts[start : start + batch_size]
        ]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        for row in out[:, width:]:
            outputs.append(tokenizer.decode(row, skip_special_tokens=True))
        if on_batch:
            on_batch(len(batch))
    return outputs
