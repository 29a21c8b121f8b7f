"""Which test rows an evaluation answers: fixed samples spread over commits, shared by the
held-out tasks (evaluate/run.py) and completion (evaluate/completion.py)."""

from __future__ import annotations

import random


def spread_sample(rows: list[dict], n: int, seed: int = 0) -> list[int]:
    """Indices of up to n rows, a fixed sample so base and tuned answer the same prompts.

    Spread over commits: one row of each commit in a shuffled order, then a second of each,
    and so on. Rows of one commit are alike (requests' "Add inline types" gave 15 hunks of
    one kind), and a sample by row let one commit fill a quarter of it and made bootstrap
    intervals too narrow."""
    rng = random.Random(seed)
    by_commit: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_commit.setdefault(_commit_of(row), []).append(i)
    groups = list(by_commit.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    picked: list[int] = []
    for depth in range(max((len(g) for g in groups), default=0)):
        picked += [g[depth] for g in groups if depth < len(g)]
    return sorted(picked[:n])


def _commit_of(row: dict) -> str:
    meta = row.get("meta") or {}
    return str(meta.get("sha") or str(row.get("id", "")).split(":", 1)[0])
