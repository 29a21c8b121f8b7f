"""Paired bootstrap intervals for base-vs-tuned metrics.

Both models answer the same test rows, so rows are resampled in pairs: the interval then reflects
how much the *difference* varies across examples, which is much tighter (and more honest) than
comparing two independent intervals. Percentile intervals, a fixed seed, so a report is
reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

N_BOOT = 1000


def _percentiles(boots: list[float], n_boot: int) -> tuple[float, float]:
    boots.sort()
    return boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]


def loss_ratio_ci(
    base: list[dict], tuned: list[dict], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """Tuned/base token-weighted loss ratio and its 95% paired-bootstrap interval over rows."""
    pairs = [(b["nll"], t["nll"], b["tokens"]) for b, t in zip(base, tuned, strict=True)]
    pairs = [p for p in pairs if p[2] > 0]
    if not pairs:
        return math.nan, math.nan, math.nan

    def ratio(sample: list[tuple[float, float, int]]) -> float:
        b = sum(p[0] for p in sample)
        return sum(p[1] for p in sample) / b if b else math.nan

    rng = random.Random(seed)
    boots = [ratio([rng.choice(pairs) for _ in pairs]) for _ in range(n_boot)]
    return (ratio(pairs), *_percentiles(boots, n_boot))


def mean_diff_ci(
    base: Sequence[float], tuned: Sequence[float], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of tuned - base over paired values, and its 95% paired-bootstrap interval."""
    diffs = [float(t) - float(b) for b, t in zip(base, tuned, strict=True)]
    if not diffs:
        return math.nan, math.nan, math.nan
    rng = random.Random(seed)
    n = len(diffs)
    boots = [sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(n_boot)]
    return (sum(diffs) / n, *_percentiles(boots, n_boot))


def mean_ci(
    values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of one model's per-row values and its 95% bootstrap interval: for a rate that
    stands alone (a row with nothing to pair against), not for a comparison."""
    vals = [float(v) for v in values]
    return mean_diff_ci([0.0] * len(vals), vals, n_boot, seed)
