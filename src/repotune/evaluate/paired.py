"""Paired tests of one model against another on the same rows: the exact McNemar test and a
paired bootstrap interval for the difference in exact match.

Exact match is right or wrong per row, so what separates two models is only the rows where
they disagree (b: the first right, the second wrong; c: the reverse). McNemar's exact test is
the two-sided binomial test of b against b + c at one half, the test Giagnorio et al. report
for completion; statsmodels' `mcnemar(exact=True)` and scipy's `binomtest` give the same
p-value (tests/evaluate/test_evaluate_paired.py checks both on random tables).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

N_BOOT = 10_000


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_diff(
    first: Sequence[float], second: Sequence[float], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of second - first over paired rows, with its 95% percentile interval."""
    diffs = np.asarray(second, dtype=float) - np.asarray(first, dtype=float)
    if diffs.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(n_boot, diffs.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(lo), float(hi)


def compare(first: Sequence[bool], second: Sequence[bool]) -> dict:
    """`second` against `first` on paired right/wrong rows: exact match of each, the
    difference with its bootstrap interval, the discordant counts and McNemar's p."""
    if len(first) != len(second):
        raise ValueError("paired rows differ in number")
    a = [bool(x) for x in first]
    z = [bool(x) for x in second]
    wins = sum(1 for x, y in zip(a, z) if y and not x)  # second right, first wrong
    losses = sum(1 for x, y in zip(a, z) if x and not y)
    diff, lo, hi = bootstrap_diff(a, z)
    n = len(a)
    return {
        "n": n,
        "first": sum(a) / n if n else None,
        "second": sum(z) / n if n else None,
        "diff": diff,
        "lo": lo,
        "hi": hi,
        "second_only": wins,
        "first_only": losses,
        "mcnemar_p": mcnemar_exact(wins, losses),
    }
