"""Execution benchmarks in the report: the `bugs` (plausible patches) and `humaneval` (pass@k)
sections `repotune evaluate` adds to eval/summary.json.

Each section lists models (base, tuned, and any others compared) with their @k scores and
outcome counts. Where base and tuned both ran, their per-bug / per-problem pass rates are
compared in pairs, as the held-out metrics are, so "tuned fixes more bugs" gets an interval.
Where the bugs carry labels (CWE classes), each model's per-label results come along.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from repotune.fsutil import read_jsonl
from repotune.report.effects import Metric, decide
from repotune.report.stats import mean_diff_ci

# summary section -> (title, what one item is, the name of its @k scores, its count field)
TITLES = {
    "bugs": ("bug repair", "bugs", "plausible", "n_bugs"),
    "humaneval": ("HumanEval", "problems", "pass", "n_problems"),
}


@dataclass
class Benchmark:
    task: str  # the summary section: "bugs" | "humaneval"
    title: str
    unit: str  # what one item is: "bugs" | "problems"
    n: int | None  # items every model was scored on; None when they differ
    scores: dict[str, dict[str, float]]  # model -> {"plausible@1": .., "ranked@1": ..}
    outcomes: dict[str, Counter] | None
    metrics: list[Metric]
    of: int | None = None  # the whole benchmark's size (HumanEval: 164)
    counts: dict[str, int] | None = None  # model -> items, when the models' counts differ
    by_label: dict[str, dict[str, dict]] | None = None  # model -> label -> per-label summary

    @property
    def winner(self) -> str | None:
        return decide(self.metrics)

    @property
    def size(self) -> str | None:
        """ "20 of 164 problems" for a subset, so a score is never read as the whole set's."""
        if self.n is None:
            return None
        of = f" of {self.of}" if self.of and self.of != self.n else ""
        return f"{self.n}{of} {self.unit}"


def benchmarks(run_dir: Path, summary: dict) -> list[Benchmark]:
    """The execution sections present in `summary`, in a fixed order."""
    out = []
    for name, (title, unit, prefix, count_key) in TITLES.items():
        section = summary.get(name)
        if not isinstance(section, dict) or not section.get("models"):
            continue
        models: dict[str, dict] = section["models"]
        scores = {
            m: {k: float(v) for k, v in s.items() if "@" in k and isinstance(v, int | float)}
            for m, s in models.items()
        }
        outcomes = {m: Counter(s.get("outcomes") or {}) for m, s in models.items()}
        rates = _bug_rates(section) if name == "bugs" else _humaneval_rates(run_dir, models)
        metrics = []
        if "base" in rates and "tuned" in rates:
            items = sorted(rates["base"].keys() & rates["tuned"].keys())
            if items:
                base = [rates["base"][i] for i in items]
                tuned = [rates["tuned"][i] for i in items]
                d, lo, hi = mean_diff_ci(base, tuned)
                key = f"{prefix}@1"
                metrics.append(
                    Metric(key, scores["base"].get(key), scores["tuned"].get(key), d, lo, hi,
                           "diff", True, len(items))
                )  # fmt: skip
        # Entries kept from earlier runs may cover another subset: then each shows its count.
        counts = {m: s[count_key] for m, s in models.items() if isinstance(s.get(count_key), int)}
        uniform = len(set(counts.values())) <= 1
        out.append(
            Benchmark(
                task=name,
                title=title,
                unit=unit,
                n=(next(iter(counts.values()), section.get(count_key)) if uniform else None),
                scores=scores,
                outcomes=outcomes if any(outcomes.values()) else None,
                metrics=metrics,
                of=section.get("n_dataset"),
                counts=None if uniform else counts,
                by_label=_by_label(models),
            )
        )
    return out


def _by_label(models: dict[str, dict]) -> dict[str, dict[str, dict]] | None:
    """model -> label -> summary, for the models whose entry has a per-label breakdown."""
    out = {m: s["by_label"] for m, s in models.items() if isinstance(s.get("by_label"), dict)}
    return out or None


def _bug_rates(section: dict) -> dict[str, dict[str, float]]:
    """model -> bug -> share of first-turn candidates that pass (the per-bug plausible@1)."""
    rates: dict[str, dict[str, float]] = defaultdict(dict)
    for bug, cell in (section.get("per_bug") or {}).items():
        for model, c in (cell.get("models") or {}).items():
            if c.get("n"):
                rates[model][bug] = c["c"] / c["n"]
    return rates


def _file_label(label: str) -> str:
    """How evaluate names a model's files (`openai:gpt-4o` -> `openai_gpt-4o`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def _humaneval_rates(run_dir: Path, models: dict) -> dict[str, dict[str, float]]:
    """model -> task id -> share of samples that passed, from evaluate's result files."""
    rates: dict[str, dict[str, float]] = {}
    for model in models:
        path = run_dir / "eval" / "humaneval" / f"{_file_label(model)}_samples.jsonl_results.jsonl"
        if not path.is_file():
            continue
        per_task: dict[str, list[bool]] = defaultdict(list)
        for row in read_jsonl(path):
            per_task[row["task_id"]].append(bool(row.get("passed")))
        rates[model] = {t: sum(v) / len(v) for t, v in per_task.items()}
    return rates
