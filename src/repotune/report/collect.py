"""Read a run directory into one `Report`: the numbers both report.md and report.html show.

Computing them once, here, is what keeps the Markdown and the HTML report in agreement.
Everything optional (training history, execution outcomes, the test prompts) is shown when its
file or field is there and left out otherwise, so a partial run still gets a report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repotune.errors import UserError
from repotune.fsutil import read_jsonl
from repotune.report.effects import ALPHA, MIN_ROWS, Metric, decide, p_phrase, signed
from repotune.report.execution import Benchmark, benchmarks
from repotune.report.stats import loss_ratio_ci, mean_ci, mean_diff_ci
from repotune.rundir import read_eval_summary, split_path, train_summary

MODELS = ("base", "tuned")
# Per-row scores of a generation (evaluate/run.py); change similarity only for diffs.
GENERATION_SCORES = ("exact_match", "edit_similarity", "change_similarity")
# The rows of the `complete` task's summary (evaluate/completion.py), in the order shown.
COMPLETION_ROWS = ("base", "base+retrieval", "tuned", "tuned+retrieval")
RETRIEVAL_VS_TUNED = "tuned vs base+retrieval"


def row_label(key: str) -> str:
    """ "base+retrieval" as "base + retrieval", and so in comparison names."""
    return key.replace("+", " + ")


@dataclass
class Completion:
    """The `complete` task's four rows and their paired comparisons, as evaluate wrote them:
    the section a report leads with, since completion is what repository tuning is judged by."""

    rows: dict[str, dict]  # row key ("base+retrieval") -> summary, only the rows evaluated
    comparisons: dict[str, dict]  # "tuned vs base" -> evaluate.paired.compare() of the two
    intervals: dict[str, tuple[float, float]]  # row key -> 95% bootstrap CI of exact match

    @property
    def n(self) -> int:
        """Targets the base and tuned rows answered."""
        return max((r.get("n", 0) for k, r in self.rows.items() if "+" not in k), default=0)

    @property
    def retrieval_n(self) -> int | None:
        """Targets the retrieval rows answered (a seeded sub-sample when fewer), if any."""
        ns = [r.get("n", 0) for k, r in self.rows.items() if "+" in k]
        return max(ns) if ns else None

    def retrieval_note(self) -> str | None:
        """ "Retrieval rows: 100 of the 300 …" when the retrieval rows are a sub-sample, so a
        reader does not compare a 100-row rate with a 300-row one unawares."""
        r = self.retrieval_n
        if r is None or r >= self.n:
            return None
        return (
            f"Retrieval rows: {r} of the {self.n} (a seeded sub-sample; each comparison uses "
            "the targets both rows answered)."
        )

    @staticmethod
    def favours(name: str, c: dict) -> str | None:
        """The side of "X vs Y" that McNemar's test favours (p < ALPHA), or None."""
        second, _, first = name.partition(" vs ")
        if c.get("mcnemar_p") is None or c["mcnemar_p"] >= ALPHA or not c.get("diff"):
            return None
        return row_label(second if c["diff"] > 0 else first)

    def retrieval_beats_tuned(self) -> str | None:
        """The plain sentence a report must carry when base + retrieval beats the tuned model
        on exact match (McNemar p < ALPHA): retrieval alone then does what tuning set out to."""
        c = self.comparisons.get(RETRIEVAL_VS_TUNED)
        if not c or self.favours(RETRIEVAL_VS_TUNED, c) != "base + retrieval":
            return None
        return (
            f"Retrieval wins: base + retrieval beats the tuned model on completion (exact match "
            f"{c['first']:.3f} vs {c['second']:.3f}, McNemar {p_phrase(c['mcnemar_p'])}, "
            f"{c['first_only']} vs {c['second_only']} discordant, {c['n']} targets)."
        )


@dataclass
class SideBySide:
    """One test row both models generated for, with the texts a reader compares (not a
    records.Example: this is the report's view of one, with both answers)."""

    id: str
    prompt: str
    reference: str
    base: str
    tuned: str
    language: str | None
    scores: dict[str, dict[str, float]]  # model -> {"exact_match": .., "edit_similarity": ..}


@dataclass
class TaskResult:
    task: str
    summary: dict[str, dict]  # model -> eval summary metrics
    metrics: list[Metric]
    pass_columns: dict[str, dict[str, float]]  # model -> {"pass@1": ..}
    outcomes: dict[str, Counter] | None  # model -> outcome counts, when rows carry them
    examples: list[SideBySide] = field(default_factory=list)
    completion: Completion | None = None  # the `complete` task's rows and comparisons

    @property
    def loss(self) -> Metric | None:
        return next((m for m in self.metrics if m.name == "loss"), None)

    @property
    def exact_match(self) -> Metric | None:
        return next((m for m in self.metrics if m.name == "exact match"), None)

    @property
    def winner(self) -> str | None:
        return decide(self.metrics)

    def completion_line(self) -> str | None:
        """ "exact match: 0.263 vs 0.205 (+0.058, 95% CI +0.02 to +0.09; McNemar p = 0.003,
        31 vs 14 discordant, 300 targets)": the `complete` verdict, tuned first."""
        m = self.exact_match
        if self.completion is None or m is None or m.tuned is None or m.base is None:
            return None
        test = ""
        c = self.completion.comparisons.get("tuned vs base")
        if c and m.mcnemar_p is not None:
            test = (
                f"McNemar {p_phrase(m.mcnemar_p)}, "
                f"{c['second_only']} vs {c['first_only']} discordant, "
            )
        return (
            f"exact match: {m.tuned:.3f} vs {m.base:.3f} ({signed(m.effect, 3)}, 95% CI "
            f"{signed(m.lo, 2)} to {signed(m.hi, 2)}; {test}{m.n} targets)"
        )


@dataclass
class Report:
    model: str
    tasks: list[TaskResult]
    train: dict
    history: list[dict]
    benchmarks: list[Benchmark] = field(default_factory=list)

    @property
    def completion(self) -> Completion | None:
        return next((t.completion for t in self.tasks if t.completion), None)

    @property
    def verdict(self) -> str:
        """One sentence a reader can act on: ship the tuned model or not, and where (completion
        first, when evaluated), and whether retrieval alone beats the tuning."""
        sentence = self._verdict()
        beaten = self.completion.retrieval_beats_tuned() if self.completion else None
        return f"{sentence} {beaten}" if beaten else sentence

    def _verdict(self) -> str:
        tasks = sorted(self.tasks, key=lambda t: t.task != "complete")
        parts: list[TaskResult | Benchmark] = [*tasks, *self.benchmarks]
        by = {w: [t.task for t in parts if t.winner == w] for w in ("tuned", "base", "mixed")}
        names = {w: ", ".join(f"`{t}`" for t in ts) for w, ts in by.items()}
        if by["base"]:
            return f"Keep the base model for {names['base']}: it beats the tuned model there."
        if by["tuned"] and len(by["tuned"]) == len(parts):
            return f"Ship the tuned model: it beats the base on {names['tuned']}."
        if by["tuned"]:
            rest = [t.task for t in parts if t.winner != "tuned"]
            return (
                f"Ship the tuned model for {names['tuned']}; "
                f"no clear difference on {', '.join(f'`{t}`' for t in rest)}."
            )
        if by["mixed"]:
            return (
                f"Mixed evidence on {names['mixed']}: the metrics disagree; read the examples "
                "before deciding."
            )
        if all(m.n < MIN_ROWS for t in parts for m in t.metrics if m.votes):
            return (
                f"Too few test examples to call a winner (fewer than {MIN_ROWS} per metric): "
                "mine more commits or raise evaluate.max_examples / evaluate.generate_examples."
            )
        return (
            "No clear winner: every difference is within noise. Evaluate more test examples "
            "(evaluate.max_examples, evaluate.generate_examples) or train longer."
        )


def collect(run_dir: Path, max_examples: int = 6) -> Report:
    """Everything the report shows, computed from the files of one run directory."""
    summary = read_eval_summary(run_dir)
    tasks = [
        _task_result(run_dir, task, res, max_examples)
        for task, res in summary.get("tasks", {}).items()
    ]
    tasks.sort(key=lambda t: t.task != "complete")  # the report leads with completion
    return Report(
        model=summary.get("model", "?"),
        tasks=tasks,
        train=train_summary(run_dir),
        history=_read_json(run_dir / "train" / "log_history.json", []),
        benchmarks=benchmarks(run_dir, summary),
    )


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def _task_result(run_dir: Path, task: str, res: dict, max_examples: int) -> TaskResult:
    rows = {m: read_jsonl(run_dir / "eval" / task / f"{m}.jsonl") for m in MODELS}
    base, tuned = rows["base"], rows["tuned"]
    if [r["id"] for r in base] != [r["id"] for r in tuned]:
        raise UserError(f"eval/{task}: base and tuned rows differ; re-run `repotune evaluate`")
    r, lo, hi = loss_ratio_ci(base, tuned)
    metrics = [
        Metric("loss", res["base"]["loss"], res["tuned"]["loss"], r, lo, hi, "ratio", False,
               sum(1 for b in base if b["tokens"] > 0)),
    ]  # fmt: skip
    # A diff that copies its input and changes nothing scores high on whole-hunk edit
    # similarity, so for diffs only change similarity, exact match and loss vote.
    diffs = task == "commit" or any("change_similarity" in row for row in (*base, *tuned))
    versus = (res.get("comparisons") or {}).get("tuned vs base") if task == "complete" else None
    for key in GENERATION_SCORES:
        paired = [(b[key], t[key]) for b, t in zip(base, tuned) if key in b and key in t]
        if not paired:
            continue
        name = key.replace("_", " ")
        if key == "exact_match" and versus:  # completion: McNemar's test, as evaluate ran it
            metrics.append(
                Metric(name, versus["first"], versus["second"], versus["diff"], versus["lo"],
                       versus["hi"], "diff", True, versus["n"], mcnemar_p=versus["mcnemar_p"])
            )  # fmt: skip
            continue
        d, dlo, dhi = mean_diff_ci([float(b) for b, _ in paired], [float(t) for _, t in paired])
        metrics.append(
            Metric(name, res["base"].get(key), res["tuned"].get(key), d, dlo, dhi, "diff", True,
                   len(paired), votes=not (diffs and key == "edit_similarity"))
        )  # fmt: skip
    pass_name = "plausible" if task == "repair" else "pass"
    pass_columns = {m: _pass_columns(res[m]) for m in MODELS}
    paired = [(_pass1(b), _pass1(t)) for b, t in zip(base, tuned)]
    paired = [(b, t) for b, t in paired if b is not None and t is not None]
    if paired:
        d, dlo, dhi = mean_diff_ci([b for b, _ in paired], [t for _, t in paired])
        metrics.append(
            Metric(f"{pass_name}@1", pass_columns["base"].get(f"{pass_name}@1"),
                   pass_columns["tuned"].get(f"{pass_name}@1"), d, dlo, dhi, "diff", True,
                   len(paired))
        )  # fmt: skip
    outcomes = {m: Counter(o for row in rows[m] for o in _outcomes(row)) for m in MODELS}
    return TaskResult(
        task=task,
        summary=res,
        metrics=metrics,
        pass_columns=pass_columns,
        outcomes=outcomes if any(outcomes.values()) else None,
        examples=_examples(run_dir, task, base, tuned, max_examples),
        completion=_completion(run_dir, res) if task == "complete" else None,
    )


def _completion(run_dir: Path, res: dict) -> Completion:
    """The `complete` rows present, their comparisons, and each row's exact-match interval
    from its per-row file (none when the file is missing)."""
    rows = {k: res[k] for k in COMPLETION_ROWS if isinstance(res.get(k), dict)}
    intervals = {}
    for key in rows:
        path = run_dir / "eval" / "complete" / f"{key}.jsonl"
        hits = [float(r["exact_match"]) for r in read_jsonl(path)] if path.is_file() else []
        if hits:
            _, lo, hi = mean_ci(hits)
            intervals[key] = (lo, hi)
    return Completion(rows=rows, comparisons=dict(res.get("comparisons") or {}),
                      intervals=intervals)  # fmt: skip


def _outcomes(row: dict) -> list[str]:
    """A row's validated outcomes: one `outcome`, or `outcomes` for n candidates."""
    if isinstance(row.get("outcomes"), list):
        return [str(o) for o in row["outcomes"]]
    return [str(row["outcome"])] if row.get("outcome") else []


def _pass1(row: dict) -> float | None:
    outs = _outcomes(row)
    return sum(o == "test_pass" for o in outs) / len(outs) if outs else None


def _pass_columns(summary: dict) -> dict[str, float]:
    """pass@k / plausible@k as evaluation wrote them in eval/summary.json: the report shows
    scores, it does not recompute them (rundir.py owns the summary's sections)."""
    given = {k: v for k, v in summary.items() if k.split("@")[0] in ("pass", "plausible")}
    return {k: float(v) for k, v in given.items() if v is not None}


def _examples(
    run_dir: Path, task: str, base: list[dict], tuned: list[dict], limit: int
) -> list[SideBySide]:
    """Rows both models generated for, where they differ most first: the telling ones."""
    both = [(b, t) for b, t in zip(base, tuned) if "generation" in b and "generation" in t]
    if not both or limit <= 0:
        return []
    test_path = split_path(run_dir, task, "test")
    source = {r["id"]: r for r in read_jsonl(test_path)} if test_path.is_file() else {}

    def gap(pair: tuple[dict, dict]) -> float:
        return abs(pair[1].get("edit_similarity", 0.0) - pair[0].get("edit_similarity", 0.0))

    chosen = sorted(both, key=gap, reverse=True)[:limit]
    out = []
    for b, t in chosen:
        src = source.get(b["id"], {})
        out.append(
            SideBySide(
                id=b["id"],
                prompt=src.get("prompt", "(prompt not found in datasets/)"),
                reference=src.get("completion", b.get("reference", "")),
                base=b["generation"],
                tuned=t["generation"],
                language=(src.get("meta") or {}).get("language"),
                scores={
                    m: {k: float(r[k]) for k in GENERATION_SCORES if k in r}
                    for m, r in (("base", b), ("tuned", t))
                },
            )
        )
    return out


def loss_curves(history: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """(step, value) series for training and validation loss from trainer.state.log_history."""
    series: dict[str, list[tuple[float, float]]] = {"train": [], "validation": []}
    for entry in history:
        step = entry.get("step")
        if step is None:
            continue
        if "loss" in entry:
            series["train"].append((step, float(entry["loss"])))
        if "eval_loss" in entry:
            series["validation"].append((step, float(entry["eval_loss"])))
    return series
