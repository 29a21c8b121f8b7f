"""Splits. History tasks split by time: the model is tested on the newest commits, never on code
whose future it saw in training. Current-code tasks split by a hash of the file path, so every
example cut from one file lands in the same split. Val/test rows whose normalised text also
occurs in train are dropped (leakage) and counted."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from repotune.records import squash_spaces

SPLITS = ("train", "val", "test")


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


def _hash01(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_key(key: str, fractions: tuple[float, float, float], seed: int = 0) -> str:
    """'train'/'val'/'test' from a stable hash of `key` (a file path, an external bug id)."""
    u = _hash01(key, seed)
    total = sum(fractions)
    if u < fractions[0] / total:
        return "train"
    return "val" if u < (fractions[0] + fractions[1]) / total else "test"


def split_paths(
    paths: Sequence[str], fractions: tuple[float, float, float], seed: int = 0
) -> dict[str, str]:
    """Labels per path from its hash. A path keeps its label as files come and go; only when
    that leaves a wanted split empty (a handful of files) are the paths ranked by hash and cut
    like `split_by_time` cuts commits, so every split gets one once there are three."""
    unique = sorted(set(paths))
    labels = {p: split_by_key(p, fractions, seed) for p in unique}
    wanted = {name for name, f in zip(SPLITS, fractions, strict=True) if f > 0}
    if len(unique) >= 3 and not wanted <= set(labels.values()):
        ranked = sorted(unique, key=lambda p: _hash01(p, seed))
        cut = split_by_time(list(range(len(ranked))), fractions)
        labels = dict(zip(ranked, cut, strict=True))
    return labels


def split_shuffled(n: int, fractions: tuple[float, float, float], seed: int = 0) -> list[str]:
    """Labels for n rows in a seeded random order (user data with no time or path)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    ranked = split_by_time(order, fractions)  # rank in the shuffled order acts as the time
    return ranked


def _key(row: dict) -> str:
    """Rows that differ only in whitespace are the same example."""
    text = squash_spaces(row["prompt"]) + "\x00" + squash_spaces(row["completion"])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
