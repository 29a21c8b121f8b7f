"""Token-level encoding of prompt/completion rows, shared by training and evaluation so both
see exactly the same tokens and the loss they report is comparable.

The prompt is cut from the left when too long, so the completion (what the loss is on) and
the end of the prompt it depends on always survive; the completion ends with EOS so the model
learns where a diff stops.
"""

from __future__ import annotations

from typing import Any


def encode_example(
    tokenizer: Any, prompt: str, completion: str, max_length: int
) -> dict[str, list[int]]:
    """Return input_ids and completion_mask (1 on completion tokens, EOS included)."""
    p_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None:
        c_ids = [*c_ids, eos]
    bos = [p_ids[0]] if p_ids and p_ids[0] == tokenizer.bos_token_id else []
    body = p_ids[len(bos) :]
    c_ids = c_ids[: max(max_length // 2, max_length - len(bos) - len(body))]
    room = max_length - len(bos) - len(c_ids)
    body = body[-room:] if room > 0 else []
    ids = bos + body + c_ids
    return {
        "input_ids": ids,
        "completion_mask": [0] * (len(bos) + len(body)) + [1] * len(c_ids),
    }


def encode_prompt(tokenizer: Any, prompt: str, max_length: int) -> list[int]:
    """Prompt ids for generation, cut from the left like `encode_example` does."""
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if len(ids) <= max_length:
        return ids
    bos = [ids[0]] if ids[0] == tokenizer.bos_token_id else []
    return bos + ids[len(ids) - (max_length - len(bos)) :]


def left_pad(batch: list[list[int]], pad: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) tensors, left-padded so every row ends where generation
    starts."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention
