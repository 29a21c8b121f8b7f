"""The report's plots as base64 PNG data URIs, so report.html is one file that opens anywhere.

matplotlib's object API (`Figure`, no pyplot) needs no display and keeps no global state.
"""

from __future__ import annotations

import base64
import io
from collections import Counter

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from repotune.report.effects import Metric, outcome_columns

COLORS = {"tuned": "#1f7a4d", "base": "#b3261e", None: "#7a7a7a", "mixed": "#7a7a7a"}
OUTCOME_COLORS = {
    "error": "#6d6d6d",
    "timeout": "#9e9e9e",
    "failed": "#f29900",
    "passed": "#188038",
    "applied": "#8ab4f8",
    "compile_error": "#d93025",
    "test_fail": "#f29900",
    "test_pass": "#188038",
}
DPI = 110


def _data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)


def effects_chart(rows: list[tuple[str, Metric]]) -> str | None:
    """Forest plot: every (task, metric)'s tuned-vs-base effect with its 95% interval, coloured
    by which model the interval favours; right of zero is better for the tuned model."""
    if not rows:
        return None
    fig = Figure(figsize=(7.5, 0.5 * len(rows) + 1.1))
    ax = fig.subplots()
    for y, (_, m) in enumerate(reversed(rows)):
        e, lo, hi = m.scaled()
        if m.kind == "ratio":  # lower loss is better: flip so right means "tuned better"
            e, lo, hi = -e, -hi, -lo
        color = COLORS[m.winner]
        ax.plot([lo, hi], [y, y], color=color, linewidth=3, solid_capstyle="round")
        ax.plot([e], [y], "o", color=color, markersize=7)
    labels = [
        f"{task} · {m.name} ({'% lower' if m.kind == 'ratio' else 'points'})"
        for task, m in reversed(rows)
    ]
    ax.set_yticks(range(len(rows)), labels)
    ax.axvline(0, color="#333333", linewidth=1)
    ax.set_xlabel("← base better        tuned better →   (95% bootstrap CI)")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    _style(ax)
    return _data_uri(fig)


def loss_curves_chart(series: dict[str, list[tuple[float, float]]]) -> str | None:
    """Training and validation loss by step: is it still falling, or over-fitting?"""
    if not any(series.values()):
        return None
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.subplots()
    styles = {"train": ("#1a73e8", "-", None), "validation": ("#e37400", "--", "o")}
    for name, points in series.items():
        if points:
            color, line, marker = styles[name]
            xs, ys = zip(*points)
            ax.plot(xs, ys, line, color=color, marker=marker, label=f"{name} loss", linewidth=2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (completion tokens)")
    ax.legend(frameon=False)
    _style(ax)
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
    return _data_uri(fig)


def outcome_chart(task: str, outcomes: dict[str, Counter]) -> str:
    """One stacked bar per model: how many candidates failed to compile, failed or passed."""
    shown = outcome_columns(outcomes)
    models = list(outcomes)
    fig = Figure(figsize=(7.5, 0.55 * len(models) + 1.0))
    ax = fig.subplots()
    for y, model in enumerate(reversed(models)):
        counts = outcomes[model]
        total = sum(counts[o] for o in shown) or 1
        left = 0.0
        for o in shown:
            share = 100 * counts[o] / total
            ax.barh(y, share, left=left, color=OUTCOME_COLORS.get(o, "#5f6368"), height=0.6,
                    label=o.replace("_", " ") if y == 0 else None)  # fmt: skip
            if share >= 8:
                ax.text(left + share / 2, y, str(counts[o]), ha="center", va="center",
                        color="white", fontsize=9, fontweight="bold")  # fmt: skip
            left += share
    ax.set_yticks(range(len(models)), list(reversed(models)))
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"{task}: share of candidates (%)")
    ax.legend(ncols=len(shown), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    _style(ax)
    return _data_uri(fig)
