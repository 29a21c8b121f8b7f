"""Held-out results of `repotune run` on real histories: the tables of docs/results.md.

    python bench/results.py NAME=REPO [NAME=REPO ...] [-c configs/quickstart.yaml]
                            [--out runs/results] [--reuse] [--set section.key=value ...]

Each repository gets a full `repotune run REPO --out OUT/NAME -c CONFIG` in a child process,
timed end to end (mine, build, train, evaluate, report), exactly what a user types. The table
per repository is then read back from the run folder with the report's own code (so the
figures and intervals are those of report.md): commits mined, examples per split, training
steps and time, base and tuned held-out loss with the paired-bootstrap 95% interval of their
ratio, greedy exact match and edit similarity with the interval of their difference; for the
`complete` task the exact match of base, base + retrieval, tuned and tuned + retrieval with
their intervals, McNemar's p of tuned vs base, and edit similarity.
`--reuse` reads finished run folders without running again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repotune.report.collect import Completion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="+", help="NAME=PATH of a git repository")
    parser.add_argument("-c", "--config", type=Path, default=Path("configs/quickstart.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/results"))
    parser.add_argument("--reuse", action="store_true", help="only read finished runs")
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    for item in args.repos:
        name, _, repo = item.partition("=")
        if not repo:
            sys.exit(f"expected NAME=PATH, got {item!r}")
        run_dir = args.out / name
        timing = run_dir / "bench_wall.json"
        if not args.reuse:
            overrides = [x for s in args.set for x in ("--set", s)]
            cmd = ["repotune", "run", repo, "--out", str(run_dir), "-c", str(args.config)]
            start = time.monotonic()
            load = os.getloadavg()[0]
            exe = Path(sys.executable).with_name("repotune")  # this environment's CLI
            argv = [str(exe) if exe.is_file() else "repotune", *cmd[1:], *overrides]
            subprocess.run(argv, check=True)
            timing.write_text(json.dumps({
                "seconds": time.monotonic() - start,
                "command": " ".join(cmd + overrides),
                "load": [load, os.getloadavg()[0]],
            }))  # fmt: skip
        print(table(name, run_dir, json.loads(timing.read_text()) if timing.is_file() else {}))


def table(name: str, run_dir: Path, timing: dict) -> str:
    """The markdown table of one run folder."""
    from repotune.report.collect import collect

    report = collect(run_dir)
    mined = json.loads((run_dir / "mine_stats.json").read_text())
    built = json.loads((run_dir / "datasets" / "stats.json").read_text())
    train = report.train
    lines = [f"### {name}", ""]
    if timing:
        lines += [f"`{timing['command']}`", ""]
    lines += ["| | |", "|---|---|"]
    lines.append(f"| commits mined (newest first) | {mined['kept']:,} of the history |")
    for task in report.tasks:
        stats = built.get(task.task, {})
        ex, cm = stats.get("examples", {}), stats.get("commits", {})
        lines.append(
            f"| `{task.task}` examples train / val / test | {ex.get('train')} / {ex.get('val')} "
            f"/ {ex.get('test')} (from {cm.get('train')} / {cm.get('val')} / {cm.get('test')} "
            "commits; test = newest) |"
        )
    lines.append(
        f"| training | {train.get('steps')} steps in {train.get('seconds', 0) / 60:.1f} min, "
        f"{train.get('tokens_per_second')} tokens/s |"
    )
    if timing:
        lo, hi = timing.get("load", [0, 0])
        lines.append(
            f"| whole `repotune run` | {timing['seconds'] / 60:.1f} min (load average "
            f"{lo:.1f} before, {hi:.1f} after) |"
        )
    if report.completion:
        lines += completion_rows(report.completion)
    for task in report.tasks:
        for m in task.metrics:
            n = f"{m.n} test examples" + ("" if m.votes else " (does not vote)")
            if m.kind == "ratio":
                value = (
                    f"base {m.base:.3f}, tuned {m.tuned:.3f}: tuned/base **{m.effect:.2f}** "
                    f"(95% CI {m.lo:.2f}–{m.hi:.2f}), {n}"
                )
            else:
                value = f"base {m.base:.3f}, tuned {m.tuned:.3f}: {m.effect_text()}, {n}"
            lines.append(f"| `{task.task}` {m.name} | {value} |")
    lines += ["", f"Verdict of the report: {report.verdict}", ""]
    return "\n".join(lines)


def completion_rows(c: Completion) -> list[str]:
    """The `complete` rows of the table: targets, exact match of each row with its 95%
    interval, McNemar's test of tuned vs base, and edit similarity."""
    from repotune.report.collect import row_label
    from repotune.report.effects import p_phrase

    n = f"{c.n} targets"
    if c.retrieval_n is not None:
        n += f" (retrieval rows: {c.retrieval_n} of the {c.n})"
    em = []
    for key, r in c.rows.items():
        lo, hi = c.intervals.get(key, (float("nan"), float("nan")))
        if r.get("exact_match") is not None:
            em.append(f"{row_label(key)} **{r['exact_match']:.3f}** ({lo:.3f}–{hi:.3f})")
    lines = [
        f"| `complete` test targets | {n} |",
        f"| `complete` exact match (95% CI) | {', '.join(em)} |",
    ]
    x = c.comparisons.get("tuned vs base")
    if x:
        lines.append(
            f"| `complete` tuned vs base | {x['diff']:+.3f} exact match (95% CI {x['lo']:+.3f} "
            f"to {x['hi']:+.3f}), McNemar {p_phrase(x['mcnemar_p'])}, {x['second_only']} vs "
            f"{x['first_only']} discordant, {x['n']} targets |"
        )
    sims = ", ".join(
        f"{row_label(k)} {r['edit_similarity']:.3f}"
        for k, r in c.rows.items()
        if r.get("edit_similarity") is not None
    )
    return [*lines, f"| `complete` edit similarity | {sims} |"]


if __name__ == "__main__":
    main()
