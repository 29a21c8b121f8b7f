"""Report sections of runs that grow: results per repository (a run of several, so a user
sees where the model helps), and the tuned-vs-base gain over refreshes (eval/history/).
Both are Markdown tables read from the run folder's files; a run of one repository that was
never refreshed has neither section."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

from repotune.fsutil import read_jsonl
from repotune.rundir import built_tasks, split_path

LABELS = ("base", "tuned")


def _loss(rows: list[dict]) -> float | None:
    tokens = sum(r.get("tokens") or 0 for r in rows)
    return sum(r.get("nll") or 0.0 for r in rows) / tokens if tokens else None


def _em(rows: list[dict]) -> float | None:
    scored = [bool(r["exact_match"]) for r in rows if "exact_match" in r]
    return sum(scored) / len(scored) if scored else None


def per_repo(run_dir: Path) -> dict[str, dict[str, dict]]:
    """task -> repository -> {n, base/tuned loss and exact match} over its test rows."""
    out: dict[str, dict[str, dict]] = {}
    for task in built_tasks(run_dir):
        test = split_path(run_dir, task, "test")
        if not test.is_file():
            continue
        repo_of = {r["id"]: r["meta"].get("repo") for r in read_jsonl(test)}
        if not any(repo_of.values()):
            continue
        found: dict[str, dict] = {}
        for label in LABELS:
            path = run_dir / "eval" / task / f"{label}.jsonl"
            rows = read_jsonl(path) if path.is_file() else []
            groups: dict[str, list[dict]] = {}
            for r in rows:
                if repo_of.get(r.get("id")):
                    groups.setdefault(repo_of[r["id"]], []).append(r)
            for repo, mine in groups.items():
                entry = found.setdefault(repo, {"n": len(mine)})
                entry[f"{label}_loss"], entry[f"{label}_em"] = _loss(mine), _em(mine)
        if found:
            out[task] = dict(sorted(found.items()))
    return out


def history(run_dir: Path) -> list[dict]:
    """eval/history/NNN.json records, first run (0) then each refresh."""
    records = []
    for path in sorted((run_dir / "eval" / "history").glob("[0-9][0-9][0-9].json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return records


def _f(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _gain(base: float | None, tuned: float | None) -> str:
    return "–" if base is None or tuned is None else f"{base - tuned:+.3f}"


def _day(t: int | None) -> str:
    return "–" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def markdown(run_dir: Path) -> list[str]:
    lines: list[str] = []
    by_task = per_repo(run_dir)
    if by_task:
        lines += ["## Per repository", ""]
        lines += ["| task | repository | test rows | base loss | tuned loss | loss gain "
                  "| base EM | tuned EM |", "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for task, repos in by_task.items():
            for repo, e in repos.items():
                lines.append(
                    f"| {task} | {repo} | {e['n']} | {_f(e.get('base_loss'))} | "
                    f"{_f(e.get('tuned_loss'))} | {_gain(e.get('base_loss'), e.get('tuned_loss'))}"
                    f" | {_f(e.get('base_em'))} | {_f(e.get('tuned_em'))} |"
                )
        lines.append("")
    records = history(run_dir)
    if len(records) > 1:
        note = (
            "Each row: the adapter as it stood after that refresh, measured on the newest "
            "commits of the time (loss gain = base − tuned)."
        )
        lines += ["## Refreshes", "", note, ""]
        lines += ["| # | new commits | test window | task | base loss | tuned loss | loss gain "
                  "| steps |", "|---:|---:|---|---|---:|---:|---:|---:|"]  # fmt: skip
        for rec in records:
            window = f"{_day(rec.get('test_from'))} – {_day(rec.get('test_to'))}"
            steps = (rec.get("train") or {}).get("steps")
            new = rec.get("new_commits")
            for task, res in (rec.get("summary") or {}).get("tasks", {}).items():
                base = (res.get("base") or {}).get("loss")
                tuned = (res.get("tuned") or {}).get("loss")
                lines.append(
                    f"| {rec['index']} | {'–' if new is None else new} | {window} | {task} | "
                    f"{_f(base)} | {_f(tuned)} | {_gain(base, tuned)} | "
                    f"{'–' if steps is None else steps} |"
                )
        lines.append("")
    return lines


def gains(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """task -> [(run or refresh index, base loss − tuned loss)], for the gain plot."""
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in records:
        for task, res in (rec.get("summary") or {}).get("tasks", {}).items():
            base = (res.get("base") or {}).get("loss")
            tuned = (res.get("tuned") or {}).get("loss")
            if base is not None and tuned is not None:
                out.setdefault(task, []).append((rec["index"], base - tuned))
    return out


def gain_chart(records: list[dict]) -> str | None:
    """Tuned-vs-base loss gain by refresh, a line per task: is the adapter keeping up?"""
    from matplotlib.figure import Figure

    from repotune.report.plots import _data_uri, _style

    series = gains(records)
    if len(records) < 2 or not series:
        return None
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.subplots()
    for task, points in series.items():
        ax.plot([i for i, _ in points], [g for _, g in points], "o-", label=task)
    ax.axhline(0, color="#7a7a7a", linewidth=0.8)
    ax.set_xlabel("run (0) and refreshes")
    ax.set_ylabel("loss gain (base − tuned)")
    ax.set_xticks(sorted({i for points in series.values() for i, _ in points}))
    ax.legend(frameon=False)
    _style(ax)
    return _data_uri(fig)
