"""Held-out metrics: completion loss/perplexity, exact match and edit similarity of generations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from rapidfuzz.distance import Levenshtein

from repotune.models.encode import encode_example
from repotune.records import is_changed_line


def normalize(text: str) -> str:
    """Trailing spaces and surrounding blank lines do not make a diff different."""
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).strip("\n")


def exact_match(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def edit_similarity(prediction: str, reference: str) -> float:
    """1 - normalised Levenshtein distance (1.0 = identical)."""
    return Levenshtein.normalized_similarity(normalize(prediction), normalize(reference))


def changed_lines(text: str) -> str:
    """The `-`/`+` lines of a diff, in order."""
    return "\n".join(ln for ln in normalize(text).splitlines() if is_changed_line(ln))


def change_similarity(prediction: str, reference: str) -> float:
    """Edit similarity of the changed lines alone. A diff that copies the unchanged lines and
    changes nothing scores 0.9 on plain edit similarity against a one-line change, and 0 here."""
    return Levenshtein.normalized_similarity(changed_lines(prediction), changed_lines(reference))


@torch.inference_mode()
def completion_nll(
    model: Any,
    tokenizer: Any,
    rows: list[dict],
    max_length: int,
    batch_size: int = 4,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, int]]:
    """Per row: (summed negative log-likelihood of the completion tokens, token count).

    Rows are left-padded so every completion sits at the end of the batch, and logits are
    computed only for those last positions: the 262k-word output layer dominates the cost.
    """
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results: list[tuple[float, int]] = []
    for start in range(0, len(rows), batch_size):
        enc = [
            encode_example(tokenizer, r["prompt"], r["completion"], max_length)
            for r in rows[start : start + batch_size]
        ]
        width = max(len(e["input_ids"]) for e in enc)
        keep = max(sum(e["completion_mask"]) for e in enc) + 1
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, e in enumerate(enc):
            n = len(e["input_ids"])
            row = torch.tensor(e["input_ids"])
            ids[i, width - n :] = row
            attn[i, width - n :] = 1
            mask = torch.tensor(e["completion_mask"], dtype=torch.bool)
            labels[i, width - n :] = torch.where(mask, row, torch.full_like(row, -100))
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            position_ids=positions.to(device),
            logits_to_keep=keep,
        )
        logits = out.logits[:, :-1].float()  # position t predicts token t+1
        target = labels[:, width - keep + 1 :].to(device)
        nll = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), target.reshape(-1), reduction="none"
        ).view(target.shape)
        valid = target != -100
        for i in range(len(enc)):
            results.append((float(nll[i][valid[i]].sum()), int(valid[i].sum())))
        if on_batch:
            on_batch(len(enc))
    return results


def loss_summary(nll: list[tuple[float, int]]) -> dict[str, float]:
    """Token-weighted mean loss over all completions, and its perplexity."""
    total = sum(s for s, _ in nll)
    count = sum(n for _, n in nll)
    loss = total / count if count else float("nan")
    return {"loss": loss, "perplexity": math.exp(loss) if count else float("nan"), "tokens": count}
