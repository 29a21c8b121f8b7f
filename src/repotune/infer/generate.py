"""Batched generation with transformers (KV cache, left padding).

`generate` is the plain greedy call the held-out evaluation uses; `generate_candidates` adds
sampling, beam search returning N ranked sequences, and stop sequences, for execution-based
evaluation where a model gets several tries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from repotune.infer.backtrack import DiffDecoder
from repotune.models.encode import encode_prompt, left_pad
from repotune.models.vocab import newline_ids


def left_padded(
    tokenizer: Any, prompts: list[str], max_prompt_tokens: int, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask, left-padded so every prompt ends where generation starts."""
    return left_pad([encode_prompt(tokenizer, p, max_prompt_tokens) for p in prompts], pad)


class LineStop(StoppingCriteria):
    """Ends each row once its new text holds `lines[row]` newlines: a completion of the end
    of a line stops at that line's end, one of a block after its last line."""

    def __init__(self, tokenizer: Any, width: int, lines: list[int]):
        self.tokenizer, self.width, self.lines = tokenizer, width, lines
        self.newlines = newline_ids(tokenizer)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        new = input_ids[:, self.width :].tolist()
        done = []
        for row, ids in enumerate(new):
            if not any(i in self.newlines for i in ids):
                done.append(False)
                continue
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            done.append(text.count("\n") >= self.lines[row])
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def cut_lines(text: str, lines: int) -> str:
    """`text` up to and including its `lines`-th newline."""
    end = -1
    for _ in range(lines):
        end = text.find("\n", end + 1)
        if end < 0:
            return text
    return text[: end + 1]


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int = 128,
    max_prompt_tokens: int = 1024,
    batch_size: int = 4,
    on_batch: Callable[[int], None] | None = None,
    diffs: list[list[str] | None] | None = None,
    diff_forks: int = 0,
    stop_lines: list[int] | None = None,
) -> list[str]:
    """Greedy completions for `prompts`, cut at EOS, special tokens removed. `diffs`: per
    prompt, the old side of the diff it asks for (None: a free answer); answers are then
    decoded by `DiffDecoder` (infer/backtrack.py), which takes back up to `diff_forks` broken
    lines per answer. `stop_lines`: per prompt, the lines an answer ends after (a line or
    block completion); the text is cut there."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    constrained = diffs and any(d is not None for d in diffs)
    decoder = DiffDecoder(model, tokenizer, forks=diff_forks) if constrained else None
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        if decoder is not None and diffs is not None:
            ids = [encode_prompt(tokenizer, p, max_prompt_tokens) for p in batch]
            answers = decoder.decode(ids, diffs[start : start + batch_size], max_new_tokens)
            outputs += [tokenizer.decode(a, skip_special_tokens=True) for a in answers]
        else:
            input_ids, attention = left_padded(tokenizer, batch, max_prompt_tokens, pad)
            width = input_ids.shape[1]
            lines = stop_lines[start : start + batch_size] if stop_lines else None
            stops = StoppingCriteriaList([LineStop(tokenizer, width, lines)] if lines else [])
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
                stopping_criteria=stops,
            )
            texts = [tokenizer.decode(row, skip_special_tokens=True) for row in out[:, width:]]
            if lines:
                texts = [cut_lines(t, k) for t, k in zip(texts, lines, strict=True)]
            outputs += texts
        if on_batch:
            on_batch(len(batch))
    return outputs


_SCORE_BUDGET_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Decoding:
    """How to pick tokens. `n` candidates per prompt: greedy gives one; `sample` draws n with
    temperature/top-p from `seed`; `beam` keeps `num_beams` (default n) and returns the n best,
    in rank order. Text is cut before the first stop sequence."""

    mode: Literal["greedy", "sample", "beam"] = "greedy"
    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int | None = 0
    num_beams: int | None = None
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if self.mode == "greedy" and self.n != 1:
            raise ValueError("greedy decoding gives one candidate: use sample or beam for n > 1")
        if self.mode == "beam" and self.beams < self.n:
            raise ValueError(f"beam search returns at most num_beams ({self.beams}) sequences")

    @property
    def beams(self) -> int:
        return self.num_beams or self.n


@dataclass
class Completion:
    text: str
    score: float | None = None  # beam: length-normalised log-probability


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> str:
    """`text` up to (not including) the earliest stop sequence."""
    cut = min((i for s in stop if s and (i := text.find(s)) != -1), default=-1)
    return text if cut == -1 else text[:cut]


@torch.inference_mode()
def generate_candidates(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    decoding: Decoding,
    max_prompt_tokens: int = 1024,
    batch_size: int = 4,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[Completion]]:
    """`decoding.n` completions per prompt, batched with left padding and the KV cache.

    Sampling is seeded per batch (seed + batch start) inside a forked RNG, so results do not
    depend on what ran before and the caller's RNG state is untouched.
    """
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs: dict[str, Any] = {
        "max_new_tokens": decoding.max_new_tokens,
        "pad_token_id": pad,
        "eos_token_id": tokenizer.eos_token_id,
        "num_return_sequences": decoding.n,
    }
    if decoding.mode == "sample":
        kwargs.update(
            do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=0
        )
    elif decoding.mode == "beam":
        # Beam scores come only with every step's logits kept: skip them when that is large
        # (10 beams x 256 steps x a 262k vocabulary is 2.7 GB); candidates stay in rank order.
        kept = batch_size * decoding.beams * decoding.max_new_tokens * len(tokenizer) * 4
        kwargs.update(
            do_sample=False,
            num_beams=decoding.beams,
            return_dict_in_generate=True,
            output_scores=kept <= _SCORE_BUDGET_BYTES,
        )
    else:
        kwargs.update(do_sample=False, num_beams=1)
    if decoding.stop:
        kwargs.update(stop_strings=list(decoding.stop), tokenizer=tokenizer)
    results: list[list[Completion]] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        input_ids, attention = left_padded(tokenizer, batch, max_prompt_tokens, pad)
        width = input_ids.shape[1]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if decoding.seed is not None:
                torch.manual_seed(decoding.seed + start)
            out = model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs
            )
        sequences = out.sequences if decoding.mode == "beam" else out
        scores = getattr(out, "sequences_scores", None) if decoding.mode == "beam" else None
        for i in range(len(batch)):
            group = []
            for j in range(i * decoding.n, (i + 1) * decoding.n):
                text = tokenizer.decode(sequences[j, width:], skip_special_tokens=True)
                score = float(scores[j]) if scores is not None else None
                group.append(Completion(truncate_at_stop(text, decoding.stop), score))
            results.append(group)
        if on_batch:
            on_batch(len(batch))
    return results
