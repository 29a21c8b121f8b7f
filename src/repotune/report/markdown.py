"""Report stage: report.md, a base-vs-tuned table per task and a verdict backed by a paired
bootstrap over test rows, so a small test split cannot pass for a win.

It shows the numbers of report.html (both render one `collect.Report`), for a terminal or a
pull request; the plots and side-by-side examples are in the HTML.
"""

from __future__ import annotations

from pathlib import Path

from repotune.fsutil import atomic_write_text
from repotune.report import fleet
from repotune.report.collect import (
    Completion,
    Report,
    TaskResult,
    collect,
    loss_curves,
    row_label,
)
from repotune.report.effects import (
    MIN_ROWS,
    Metric,
    outcome_columns,
    p_phrase,
    p_text,
    score_keys,
    signed,
)
from repotune.report.execution import Benchmark
from repotune.report.stats import loss_ratio_ci
from repotune.tables import LABEL_INTRO, label_table, markdown_table

__all__ = ["loss_ratio_ci", "render", "run_report"]


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _word(winner: str | None) -> str:
    return {"tuned": "**tuned wins**", "base": "**base wins**"}.get(
        winner or "", "**no clear winner**"
    )


def _verdict(t: TaskResult) -> str:
    loss = t.loss
    assert loss is not None
    mixed = " The metrics disagree (see the table below)." if t.winner == "mixed" else ""
    em, judged = t.exact_match, t.completion_line()
    if em is not None and judged is not None:  # completion is judged by exact match
        favours = f", favours {loss.winner}" if loss.winner else ""
        return (
            f"- `{t.task}`: {_word(em.winner)} on {judged}; held-out loss "
            f"{_fmt(loss.tuned)} vs {_fmt(loss.base)} (tuned/base {loss.effect:.2f}, "
            f"95% CI {loss.lo:.2f}–{loss.hi:.2f}{favours}).{mixed}"
        )
    base, tuned = t.summary["base"], t.summary["tuned"]
    line = (
        f"- `{t.task}`: {_word(loss.winner)} on held-out loss: {_fmt(tuned['loss'])} vs "
        f"{_fmt(base['loss'])} (tuned/base {loss.effect:.2f}, 95% CI {loss.lo:.2f}–{loss.hi:.2f}, "
        f"{base['n']} test examples)"
    )
    if not tuned.get("n_generated"):  # scored on loss only (evaluate.generate_examples=0)
        return f"{line}; no generations.{mixed}"
    return (
        f"{line}; "
        f"exact match {_fmt(tuned.get('exact_match'), 2)} vs {_fmt(base.get('exact_match'), 2)} "
        f"on {tuned.get('n_generated', 0)} generations ({tuned.get('decoding', 'greedy')}).{mixed}"
    )


def _favours(metric: Metric) -> str:
    if metric.n < MIN_ROWS:
        text = f"neither (under {MIN_ROWS} rows)"
    else:
        text = metric.winner or "neither"
    if metric.mcnemar_p is not None:
        text += f" (McNemar {p_phrase(metric.mcnemar_p)})"
    return text if metric.votes else f"{text} (does not vote)"


def _completion(c: Completion) -> list[str]:
    """The section report.md leads with: every completion row, then each paired comparison."""
    decoding = next((r["decoding"] for r in c.rows.values() if r.get("decoding")), "greedy")
    lines = [
        "## Completion (`complete`)",
        "",
        f"Held-out lines and blocks of the repository's newest commits ({decoding}); exact "
        "match ignores whitespace.",
        "",
        "| model | exact match | edit similarity | n |",
        "|---|---|---|---|",
    ]
    for key, r in c.rows.items():
        lines.append(
            f"| {row_label(key)} | {_fmt(r.get('exact_match'))} | "
            f"{_fmt(r.get('edit_similarity'))} | {r.get('n', '–')} |"
        )
    lines.append("")
    if note := c.retrieval_note():
        lines += [note, ""]
    if c.comparisons:
        lines += [
            "| comparison | exact match | diff | 95% CI | discordant | McNemar p | n | favours |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, x in c.comparisons.items():
            lines.append(
                f"| {row_label(name)} | {_fmt(x.get('second'))} vs {_fmt(x.get('first'))} | "
                f"{signed(x['diff'], 3)} | {signed(x['lo'], 3)} to {signed(x['hi'], 3)} | "
                f"{x['second_only']} vs {x['first_only']} | {p_text(x['mcnemar_p'])} | "
                f"{x['n']} | {c.favours(name, x) or 'neither'} |"
            )
        lines += [
            "",
            '"X vs Y": does X beat Y. Discordant: targets only X got right vs only Y got '
            "right; McNemar's exact test on them decides (p < 0.05).",
            "",
        ]
    if beaten := c.retrieval_beats_tuned():
        lines += [f"**{beaten}**", ""]
    return lines


def _task_tables(t: TaskResult) -> list[str]:
    pass_keys = score_keys(k for cols in t.pass_columns.values() for k in cols)
    head = "| model | loss | perplexity | exact match | edit similarity | n |"
    lines = [f"## Task `{t.task}`", "", head + "".join(f" {k} |" for k in pass_keys)]
    lines.append("|---" * (6 + len(pass_keys)) + "|")
    for label in ("base", "tuned"):
        m = t.summary[label]
        lines.append(
            f"| {label} | {_fmt(m['loss'])} | {_fmt(m['perplexity'], 2)} | "
            f"{_fmt(m.get('exact_match'), 3)} | {_fmt(m.get('edit_similarity'), 3)} | {m['n']} |"
            + "".join(f" {_fmt(t.pass_columns[label].get(k), 3)} |" for k in pass_keys)
        )
    lines += ["", *_comparisons(t.metrics, "rows")]
    if t.outcomes:
        lines += ["", *_outcome_table(t.outcomes)]
    return [*lines, ""]


def _few(steps: list[float], keep: set[float], limit: int = 12) -> list[float]:
    """At most ~`limit` evenly spaced steps (plus every validation step and the last one), so a
    long run's loss table stays readable; the full curve is in the HTML plot."""
    if len(steps) <= limit:
        return steps
    stride = len(steps) / limit
    picked = {steps[int(i * stride)] for i in range(limit)} | keep | {steps[-1]}
    return sorted(picked)


def _comparisons(metrics: list[Metric], unit: str) -> list[str]:
    lines = [f"| metric | tuned vs base | 95% CI | {unit} | favours |", "|---|---|---|---|---|"]
    for metric in metrics:
        effect, _, ci = metric.effect_text().partition(" (95% CI ")
        lines.append(
            f"| {metric.name} | {effect} | {ci.rstrip(')')} | {metric.n} | {_favours(metric)} |"
        )
    return lines


def _outcome_table(outcomes: dict) -> list[str]:
    shown = outcome_columns(outcomes)
    lines = ["| outcomes | " + " | ".join(o.replace("_", " ") for o in shown) + " |"]
    lines.append("|---" * (len(shown) + 1) + "|")
    for label, counts in outcomes.items():
        lines.append(f"| {label} | " + " | ".join(str(counts[o]) for o in shown) + " |")
    return lines


def _bench_verdict(b: Benchmark) -> str:
    if not b.metrics:
        return f"- `{b.task}`: no paired base/tuned results to compare."
    m = b.metrics[0]
    word = {"tuned": "**tuned wins**", "base": "**base wins**"}.get(
        m.winner or "", "**no clear winner**"
    )
    return (
        f"- `{b.task}`: {word} on {m.name}: {_fmt(m.tuned)} vs {_fmt(m.base)} "
        f"({m.effect_text()}, {m.n} {b.unit})."
    )


def _benchmark(b: Benchmark) -> list[str]:
    keys = score_keys(k for scores in b.scores.values() for k in scores)
    n = f", {b.size}" if b.size else ""
    lines = [f"## Execution: {b.title} (`{b.task}`{n})", ""]
    counted = [b.unit] if b.counts else []
    head = [*counted, *keys]
    lines += ["| model | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for model, scores in b.scores.items():
        cells = [str((b.counts or {}).get(model, "–"))] if b.counts else []
        cells += [_fmt(scores.get(k)) for k in keys]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if b.by_label:
        lines += ["", LABEL_INTRO, "", *markdown_table(*label_table(b.by_label))]
    if b.metrics:
        lines += ["", *_comparisons(b.metrics, b.unit)]
    if b.outcomes:
        lines += ["", *_outcome_table(b.outcomes)]
    return [*lines, ""]


def _training(report: Report) -> list[str]:
    train = report.train
    lines = [
        "## Training",
        "",
        f"{train['steps']} steps on {train['train_examples']} examples in "
        f"{train['seconds']:.0f} s ({train['dtype']}), final train loss "
        f"{_fmt(train.get('train_loss'))}"
        + ("; stopped by the time budget." if train.get("stopped_by_time_budget") else "."),
        "",
    ]
    curves = loss_curves(report.history)
    val = dict(curves["validation"])
    if curves["train"] or val:
        steps = _few(sorted({s for s, _ in curves["train"]} | set(val)), keep=set(val))
        train_loss = dict(curves["train"])
        lines += ["| step | train loss | validation loss |", "|---|---|---|"]
        lines += [f"| {s:g} | {_fmt(train_loss.get(s))} | {_fmt(val.get(s))} |" for s in steps]
        lines.append("")
    return lines


def render(run_dir: Path, report: Report | None = None) -> str:
    report = report or collect(run_dir)
    lines = [f"# repotune report: {report.model}", "", "## Verdict", "", report.verdict, ""]
    lines += [_verdict(t) for t in report.tasks]
    lines += [_bench_verdict(b) for b in report.benchmarks]
    lines.append("")
    if report.completion:
        lines += _completion(report.completion)
    for t in report.tasks:
        lines += _task_tables(t)
    for b in report.benchmarks:
        lines += _benchmark(b)
    lines += fleet.markdown(run_dir)  # per repository, and over refreshes
    if report.train:
        lines += _training(report)
    if (run_dir / "report.html").is_file():
        lines += ["Plots and side-by-side examples: `report.html`.", ""]
    return "\n".join(lines)


def run_report(run_dir: Path, report: Report | None = None) -> Path:
    out = run_dir / "report.md"
    atomic_write_text(out, render(run_dir, report))
    return out
