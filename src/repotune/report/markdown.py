"""Report stage: report.md, a base-vs-tuned table per task and a verdict backed by a paired
bootstrap over test rows, so a small test split cannot pass for a win."""

from __future__ import annotations

import json
import random
from pathlib import Path

from repotune.errors import UserError
from repotune.fsutil import atomic_write_text, read_jsonl


def loss_ratio_ci(
    base: list[dict], tuned: list[dict], n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Tuned/base token-weighted loss ratio and its 95% paired-bootstrap interval over rows."""
    pairs = [(b["nll"], t["nll"], b["tokens"]) for b, t in zip(base, tuned, strict=True)]
    pairs = [p for p in pairs if p[2] > 0]
    if not pairs:
        return float("nan"), float("nan"), float("nan")

    def ratio(sample: list[tuple[float, float, int]]) -> float:
        b = sum(p[0] for p in sample)
        return sum(p[1] for p in sample) / b if b else float("nan")

    rng = random.Random(seed)
    boots = sorted(ratio([rng.choice(pairs) for _ in pairs]) for _ in range(n_boot))
    return ratio(pairs), boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _verdict(task: str, base: dict, tuned: dict, ci: tuple[float, float, float]) -> str:
    r, lo, hi = ci
    if hi < 1.0:
        word = "**tuned wins**"
    elif lo > 1.0:
        word = "**base wins**"
    else:
        word = "**no clear winner**"
    return (
        f"- `{task}`: {word} on held-out loss: {_fmt(tuned['loss'])} vs {_fmt(base['loss'])} "
        f"(tuned/base {r:.2f}, 95% CI {lo:.2f}–{hi:.2f}, {base['n']} test examples); "
        f"exact match {_fmt(tuned['exact_match'], 2)} vs {_fmt(base['exact_match'], 2)} "
        f"on {tuned.get('n_generated', 0)} generations."
    )


def render(run_dir: Path) -> str:
    summary_path = run_dir / "eval" / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"no evaluation at {summary_path}: run `repotune evaluate` first")
    summary = json.loads(summary_path.read_text())
    train = {}
    if (run_dir / "train" / "summary.json").is_file():
        train = json.loads((run_dir / "train" / "summary.json").read_text())

    lines = [f"# repotune report: {summary.get('model', '?')}", "", "## Verdict", ""]
    tables = []
    for task, res in summary["tasks"].items():
        base_rows = read_jsonl(run_dir / "eval" / task / "base.jsonl")
        tuned_rows = read_jsonl(run_dir / "eval" / task / "tuned.jsonl")
        ci = loss_ratio_ci(base_rows, tuned_rows)
        lines.append(_verdict(task, res["base"], res["tuned"], ci))
        tables += [
            f"## Task `{task}`",
            "",
            "| model | loss | perplexity | exact match | edit similarity | n |",
            "|---|---|---|---|---|---|",
        ]
        for label in ("base", "tuned"):
            m = res[label]
            tables.append(
                f"| {label} | {_fmt(m['loss'])} | {_fmt(m['perplexity'], 2)} | "
                f"{_fmt(m['exact_match'], 3)} | {_fmt(m['edit_similarity'], 3)} | {m['n']} |"
            )
        tables.append("")
    lines += ["", *tables]
    if train:
        lines += [
            "## Training",
            "",
            f"{train['steps']} steps on {train['train_examples']} examples in "
            f"{train['seconds']:.0f} s ({train['dtype']}), final train loss "
            f"{_fmt(train.get('train_loss'))}"
            + ("; stopped by the time budget." if train.get("stopped_by_time_budget") else "."),
            "",
        ]
    return "\n".join(lines)


def run_report(run_dir: Path) -> Path:
    out = run_dir / "report.md"
    atomic_write_text(out, render(run_dir))
    return out
