"""Rows of a run of several repositories: each row's `meta.repo`, the per-repository weights
of the train split (mine_stats.json `repos.<name>.weight`), and per-repository counts for
datasets/stats.json. A run of one repository has no `repo` anywhere and is left as it is."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from repotune.build.split import SPLITS


def repo_weights(mine_stats: dict[str, Any]) -> dict[str, float]:
    """name -> weight, for the repositories whose weight is not 1."""
    repos = mine_stats.get("repos") or {}
    weights = {name: float(r.get("weight", 1.0)) for name, r in repos.items()}
    return {name: w for name, w in weights.items() if w != 1.0}


def weigh(rows: list[dict], weights: dict[str, float], seed: int) -> list[dict]:
    """Train rows with each repository's rows scaled by its weight: whole copies, then a
    seeded sample for the fraction (as build.mixture scales a task)."""
    if not weights:
        return rows
    out: list[dict] = []
    for row in rows:
        w = weights.get(row["meta"].get("repo"), 1.0)
        out += [row] * int(w)
    rng = random.Random(seed)
    for name, w in sorted(weights.items()):
        mine = [r for r in rows if r["meta"].get("repo") == name]
        out += rng.sample(mine, round((w - int(w)) * len(mine)))
    return out


def repo_counts(splits: dict[str, list[dict]]) -> dict[str, dict[str, int]] | None:
    """name -> examples per split; None when no row names a repository."""
    counts: dict[str, Counter[str]] = {}
    for split in SPLITS:
        for row in splits.get(split, []):
            name = row["meta"].get("repo")
            if name is not None:
                counts.setdefault(name, Counter())[split] += 1
    if not counts:
        return None
    return {name: {s: c[s] for s in SPLITS} for name, c in sorted(counts.items())}
