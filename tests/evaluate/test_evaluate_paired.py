"""Paired tests of two models on the same rows: the exact McNemar p-value against statsmodels
and scipy, the discordant counts, and the seeded bootstrap interval of the difference."""

from __future__ import annotations

import random

import pytest

from repotune.evaluate.paired import bootstrap_diff, compare, mcnemar_exact


def _tables(n: int = 200, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """Random 2x2 tables (a, b, c, d): small, lopsided, tied and large discordant counts."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        top = (5, 30, 120, 600)[i % 4]
        b, c = rng.randint(0, top), rng.randint(0, top)
        if i % 10 == 0:
            c = b  # ties: p is 1
        out.append((rng.randint(0, 50), b, c, rng.randint(0, 50)))
    return out


def test_mcnemar_exact_equals_statsmodels_and_scipy():
    from scipy.stats import binomtest
    from statsmodels.stats.contingency_tables import mcnemar

    for a, b, c, d in _tables():
        p = mcnemar_exact(b, c)
        ref = mcnemar([[a, b], [c, d]], exact=True).pvalue
        assert p == pytest.approx(ref, rel=1e-9, abs=1e-12), (b, c)
        if b + c:
            assert p == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9, abs=1e-12), (b, c)
        assert 0.0 <= p <= 1.0
        assert mcnemar_exact(c, b) == p  # two-sided: symmetric


def test_mcnemar_known_values():
    assert mcnemar_exact(15, 7) == pytest.approx(0.1338, abs=5e-5)
    assert mcnemar_exact(7, 15) == pytest.approx(0.1338, abs=5e-5)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(4, 4) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 2**6)  # 0.03125
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)


def _pairs(both: int, first_only: int, second_only: int, neither: int, seed: int = 1):
    rows = (
        [(True, True)] * both
        + [(True, False)] * first_only
        + [(False, True)] * second_only
        + [(False, False)] * neither
    )
    random.Random(seed).shuffle(rows)
    return [x for x, _ in rows], [y for _, y in rows]


def test_compare_counts_discordant_pairs():
    first, second = _pairs(both=10, first_only=7, second_only=15, neither=8)
    res = compare(first, second)
    assert res["n"] == 40
    assert res["second_only"] == 15 and res["first_only"] == 7
    assert res["first"] == pytest.approx(17 / 40) and res["second"] == pytest.approx(25 / 40)
    assert res["diff"] == pytest.approx((15 - 7) / 40)
    assert res["mcnemar_p"] == pytest.approx(0.1338, abs=5e-5)
    # the other way round: counts swap, the difference changes sign, p is the same
    back = compare(second, first)
    assert (back["second_only"], back["first_only"]) == (7, 15)
    assert back["diff"] == pytest.approx(-res["diff"])
    assert back["mcnemar_p"] == res["mcnemar_p"]


def test_bootstrap_interval_covers_the_diff_and_is_seeded():
    first, second = _pairs(both=30, first_only=6, second_only=14, neither=50, seed=3)
    res = compare(first, second)
    assert res["lo"] <= res["diff"] <= res["hi"]
    assert res["lo"] < res["hi"]  # discordant rows: the interval has a width
    assert compare(first, second) == res  # seeded: the same result twice
    a = bootstrap_diff(first, second, n_boot=2000, seed=0)
    assert bootstrap_diff(first, second, n_boot=2000, seed=0) == a
    # the interval holds the paired mean of second - first, not the unpaired one
    assert a[0] == pytest.approx((14 - 6) / 100)
    # no discordant rows: no uncertainty left
    same = compare([True, False, True], [True, False, True])
    assert same["diff"] == same["lo"] == same["hi"] == 0 and same["mcnemar_p"] == 1.0


def test_compare_rejects_unpaired_rows_and_handles_none():
    with pytest.raises(ValueError):
        compare([True], [True, False])
    empty = compare([], [])
    assert empty["n"] == 0 and empty["first"] is None and empty["mcnemar_p"] == 1.0
