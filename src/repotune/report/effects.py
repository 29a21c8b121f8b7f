"""Base-vs-tuned effects with intervals, and which model an interval favours.

Shared by the held-out tasks (collect.py) and the execution benchmarks (execution.py), and
rendered alike by report.md and report.html.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# Outcomes in the order a chart stacks them, worst to best: a candidate's (records.Candidate)
# and HumanEval's (passed / failed / timeout).
OUTCOMES = ("error", "timeout", "failed", "applied", "compile_error", "test_fail", "passed",
            "test_pass")  # fmt: skip
ALWAYS_SHOWN = ("compile_error", "test_fail", "test_pass")
# Fewer paired rows than this never decide a winner: below 6, even "every row better" is not
# significant at 5% (two-sided sign test: 2/2^5 = 0.06), while a bootstrap over so few rows
# still draws a tight, misleading interval.
MIN_ROWS = 6
# A paired test's p-value below this decides a metric that carries one (Metric.mcnemar_p).
ALPHA = 0.05


@dataclass
class Metric:
    """One base-vs-tuned comparison: a ratio (loss) or a difference (rates, similarities)."""

    name: str
    base: float | None
    tuned: float | None
    effect: float  # tuned/base for a ratio, tuned - base for a difference
    lo: float
    hi: float
    kind: str  # "ratio" | "diff"
    higher_is_better: bool
    n: int  # paired rows behind the interval
    # False for a measure that can rise without the answers getting better (whole-hunk edit
    # similarity of a diff rewards copying the input): shown, but left out of every verdict.
    votes: bool = True
    # Exact McNemar p of tuned vs base, for right/wrong rows: the test completion is judged by
    # (evaluate/paired.py); when set it decides the winner instead of the interval.
    mcnemar_p: float | None = None

    @property
    def winner(self) -> str | None:
        """The model the evidence favours, or None when it shows no difference: the McNemar
        test when there is one (p < ALPHA, by the sign of the effect), else the 95% interval."""
        null = 1.0 if self.kind == "ratio" else 0.0
        if self.n < MIN_ROWS or math.isnan(self.effect):
            return None
        if self.mcnemar_p is not None:
            if self.mcnemar_p >= ALPHA or self.effect == null:
                return None
            tuned_higher = self.effect > null
        elif math.isnan(self.lo) or self.lo <= null <= self.hi:
            return None
        else:
            tuned_higher = self.lo > null
        return "tuned" if tuned_higher == self.higher_is_better else "base"

    @property
    def vote(self) -> str | None:
        """`winner` as it counts in a verdict: None for a metric that does not vote."""
        return self.winner if self.votes else None

    def scaled(self) -> tuple[float, float, float]:
        """Effect and interval on one scale: % change for a ratio, points (x100) for a diff."""
        if self.kind == "ratio":
            return (self.effect - 1) * 100, (self.lo - 1) * 100, (self.hi - 1) * 100
        return self.effect * 100, self.lo * 100, self.hi * 100

    def effect_text(self) -> str:
        """E.g. "−23% (95% CI −30% to −15%)" for a ratio, "+0.125 (95% CI …)" for a diff."""
        if self.kind == "ratio":
            e, lo, hi = self.scaled()
            return f"{signed(e, 0)}% (95% CI {signed(lo, 0)}% to {signed(hi, 0)}%)"
        return f"{signed(self.effect, 3)} (95% CI {signed(self.lo, 3)} to {signed(self.hi, 3)})"


def signed(x: float, digits: int) -> str:
    """A number with its sign always shown and a real minus sign, as effect sizes read best."""
    if math.isnan(x):
        return "–"
    text = f"{x:+.{digits}f}"
    return text.replace("-", "\u2212") if text.strip("+-0.") else text.replace("-", "+")


def p_text(p: float | None) -> str:
    """A p-value as a report prints it: three decimals, "< 0.001" below that."""
    if p is None or math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_phrase(p: float | None) -> str:
    """ "p = 0.003" or "p < 0.001", for a sentence."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def decide(metrics: Iterable[Metric]) -> str | None:
    """The model every decisive voting metric favours; "mixed" when they disagree; None if
    none is. Non-voting metrics are shown in the tables but never tip a verdict."""
    winners = {m.vote for m in metrics} - {None}
    if len(winners) > 1:
        return "mixed"
    return winners.pop() if winners else None


def outcome_columns(outcomes: dict[str, Counter]) -> list[str]:
    """Outcomes to show: those that occur, plus compile error / test fail / test pass always
    for candidate outcomes, so a zero there reads as a zero rather than a missing bar."""
    present = {o for counts in outcomes.values() for o, n in counts.items() if n}
    if present & set(ALWAYS_SHOWN) or "applied" in present:
        present |= set(ALWAYS_SHOWN)
    return [o for o in OUTCOMES if o in present] + sorted(present - set(OUTCOMES))


def score_keys(keys: Iterable[str]) -> list[str]:
    """ "pass@1, pass@5, pass@10, ranked@1": by name, then by k as a number."""

    def order(key: str) -> tuple[str, int]:
        name, _, k = key.partition("@")
        return name, int(k) if k.isdigit() else 0

    return sorted(set(keys), key=order)
