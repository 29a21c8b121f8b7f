"""Which test rows an evaluation answers: fixed samples spread over commits, shared by the
held-out tasks (evaluate/run.py) and completion (evaluate/completion.py)."""

from __future__ import annotations

import hashlib


def spread_sample(rows: list[dict], n: int, seed: int = 0) -> list[int]:
    """Indices of up to n rows, a fixed sample so base and tuned answer the same prompts.

    Spread over commits: one row of each commit, then a second of each, and so on. Rows of
    one commit are alike (requests' "Add inline types" gave 15 hunks of one kind), and a
    sample by row let one commit fill a quarter of it and made bootstrap intervals too narrow.

    Commits and rows are taken in the order of a seeded hash of their names, not of a shuffle
    of the list: a window moved forward by a few commits (a refresh) keeps most of its sample,
    so the base model's answers to the rows that stayed can be kept (evaluate/reuse.py)."""
    by_commit: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_commit.setdefault(_commit_of(row), []).append(i)
    groups = [
        sorted(g, key=lambda i: _rank(seed, str(rows[i].get("id", i))))
        for _, g in sorted(by_commit.items(), key=lambda kv: _rank(seed, kv[0]))
    ]
    picked: list[int] = []
    for depth in range(max((len(g) for g in groups), default=0)):
        picked += [g[depth] for g in groups if depth < len(g)]
    return sorted(picked[:n])


def _rank(seed: int, name: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()


def _commit_of(row: dict) -> str:
    meta = row.get("meta") or {}
    return str(meta.get("sha") or str(row.get("id", "")).split(":", 1)[0])
