"""Time-ordered splits: the model is tested on the newest commits, never on code whose future
it saw in training. Test/val rows whose text also occurs in train are dropped (leakage)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def split_by_time(times: Sequence[int], fractions: tuple[float, float, float]) -> list[str]:
    """Assign 'train'/'val'/'test' per commit time, oldest first.

    Every split gets at least one commit once there are three; ties keep input order.
    """
    n = len(times)
    order = sorted(range(n), key=lambda i: times[i])
    total = sum(fractions)
    n_test = round(n * fractions[2] / total)
    n_val = round(n * fractions[1] / total)
    if n >= 3:
        n_test = max(n_test, 1) if fractions[2] > 0 else 0
        n_val = max(n_val, 1) if fractions[1] > 0 else 0
    n_train = n - n_test - n_val
    labels = [""] * n
    for rank, i in enumerate(order):
        labels[i] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return labels


def _key(row: dict) -> str:
    text = row["prompt"] + "\x00" + row["completion"]
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def drop_leaks(splits: dict[str, list[dict]]) -> dict[str, int]:
    """Drop val/test rows identical to a train row (and test rows identical to val); count them."""
    seen = {_key(r) for r in splits.get("train", [])}
    dropped = {}
    for name in ("val", "test"):
        kept = [r for r in splits.get(name, []) if _key(r) not in seen]
        dropped[name] = len(splits.get(name, [])) - len(kept)
        splits[name] = kept
        seen |= {_key(r) for r in kept}
    return dropped
