"""report.html: the verdict first, then completion (when evaluated), per-task tables, plots
and side-by-side examples.

One self-contained file (CSS inline, plots as data URIs, no scripts, nothing fetched) so it can
be mailed, attached to a pull request or opened from a CI artefact as it is.
"""

from __future__ import annotations

import difflib
import html
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import DiffLexer, TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from repotune.fsutil import atomic_write_text
from repotune.report import fleet, plots
from repotune.report.collect import Report, collect, loss_curves, row_label
from repotune.report.effects import (
    MIN_ROWS,
    outcome_columns,
    p_phrase,
    p_text,
    score_keys,
    signed,
)
from repotune.tables import label_table

TEMPLATES = Path(__file__).parent / "templates"
_FORMATTER = HtmlFormatter(cssclass="hl", nowrap=False)


def _looks_like_diff(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    marked = sum(ln[:1] in ("+", "-", "@") for ln in lines)
    return bool(lines) and marked >= max(1, len(lines) // 2)


def _lexer(text: str, language: str | None) -> Lexer:
    """Diff-shaped text (the commit task's completions) as a diff, other text by language."""
    if _looks_like_diff(text):
        return DiffLexer()
    try:
        return get_lexer_by_name((language or "text").lower())
    except ClassNotFound:
        return TextLexer()


def code(text: str, language: str | None = None) -> Markup:
    """Syntax-highlighted HTML for `text` (pygments escapes it)."""
    if not text.strip():
        return Markup('<div class="hl empty"><pre>(empty)</pre></div>')
    return Markup(highlight(text, _lexer(text, language), _FORMATTER))


def diff(reference: str, generated: str, label: str) -> Markup:
    """What `label` would have to change to produce the reference, as a highlighted diff."""
    lines = list(
        difflib.unified_diff(
            generated.splitlines(), reference.splitlines(), label, "reference", n=2, lineterm=""
        )
    )
    if not lines:
        return Markup('<div class="hl same"><pre>identical to the reference</pre></div>')
    return Markup(highlight("\n".join(lines) + "\n", DiffLexer(), _FORMATTER))


def _inline_code(text: str) -> Markup:
    """The verdict's `task` names (Markdown code spans) as <code>, everything else escaped."""
    parts = html.escape(text).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def render_html(run_dir: Path, report: Report | None = None) -> str:
    report = report or collect(run_dir)
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(code=code, fmt=lambda x, d=3: "–" if x is None else f"{x:.{d}f}")
    env.globals.update(
        diff=diff, signed=signed, min_rows=MIN_ROWS, p_text=p_text, p_phrase=p_phrase,
        row_label=row_label, label_table=label_table,
    )  # fmt: skip
    parts = [*report.tasks, *report.benchmarks]
    figures = {
        "effects": plots.effects_chart([(p.task, m) for p in parts for m in p.metrics]),
        "loss_curves": plots.loss_curves_chart(loss_curves(report.history)),
        "outcomes": {p.task: plots.outcome_chart(p.task, p.outcomes) for p in parts if p.outcomes},
        "refreshes": fleet.gain_chart(fleet.history(run_dir)),
    }
    return env.get_template("report.html.j2").render(
        report=report,
        parts=parts,
        figures=figures,
        outcome_columns={p.task: outcome_columns(p.outcomes) for p in parts if p.outcomes},
        pass_keys={
            t.task: score_keys(k for cols in t.pass_columns.values() for k in cols)
            for t in report.tasks
        },
        score_keys={
            b.task: score_keys(k for s in b.scores.values() for k in s) for b in report.benchmarks
        },
        pygments_css=Markup(_FORMATTER.get_style_defs(".hl")),
        md=_inline_code,
        per_repo=fleet.per_repo(run_dir),
        refreshes=fleet.history(run_dir),
    )


def run_html_report(run_dir: Path, report: Report | None = None) -> Path:
    out = run_dir / "report.html"
    atomic_write_text(out, render_html(run_dir, report))
    return out
