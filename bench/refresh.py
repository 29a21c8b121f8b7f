"""Refresh time against the first run's time, on a real history with N new commits.

    python bench/refresh.py REPO [--new 20] [-c CONFIG] [--set section.key=value ...] [--keep DIR]

REPO is never touched: it is cloned into a scratch folder, where a branch is put N commits
back (first parents) and checked out. `repotune run` on the clone is the first run; then the
branch is moved back to its tip and `repotune refresh` brings the run up to date. Both run as
users run them (the CLI, in a child process each, with the same config and overrides), one
after the other. Printed: each command's wall-clock time and stage times, the commits each
mined, the refresh's training steps, and the ratio refresh / first run.

The config decides what the run costs: the embedded default model for a real figure, or a
tiny one to try the script (e.g. --set model.name=PATH --set train.max_steps=4).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_STAGE = re.compile(r"^\[\s*(\d+)s\] (.+)$")


def git(repo: Path, *args: str) -> str:
    res = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return res.stdout.strip()


def repotune(args: list[str]) -> tuple[float, list[str]]:
    """Wall-clock seconds of one CLI command, and its stage lines (`[  12s] train`)."""
    cmd = [sys.executable, "-m", "repotune.cli", *args]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed:\n{res.stderr[-3000:]}")
    return seconds, [m[0] for line in res.stderr.splitlines() if (m := _STAGE.match(line))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--new", type=int, default=20, help="commits the refresh finds")
    parser.add_argument("-c", "--config", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--keep", type=Path, help="scratch folder to keep (default: removed)")
    args = parser.parse_args()

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="repotune-bench-refresh-"))
    scratch.mkdir(parents=True, exist_ok=True)
    clone, run = scratch / "clone", scratch / "run"
    try:
        subprocess.run(
            ["git", "clone", "-q", "--no-hardlinks", str(args.repo.resolve()), str(clone)],
            check=True,
        )
        tip = git(clone, "rev-parse", "HEAD")
        git(clone, "checkout", "-q", "-B", "repotune-bench", f"HEAD~{args.new}")
        options = (["-c", str(args.config)] if args.config else []) + [
            a for s in args.sets for a in ("--set", s)
        ]
        first, first_stages = repotune(["run", str(clone), "--out", str(run), *options])
        first_mined = json.loads((run / "mine_stats.json").read_text())
        git(clone, "reset", "-q", "--hard", tip)
        again, again_stages = repotune(["refresh", str(run), *options])
        refreshed = json.loads((run / "mine_stats.json").read_text())["refreshes"][-1]
        history = json.loads((run / "eval" / "history" / "001.json").read_text())
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"repository: {args.repo} ({args.new} commits held back along first parents)")
    print(
        f"first run: {first:8.1f} s  mined {first_mined['kept']} of "
        f"{first_mined['considered']} commits; stages: {'; '.join(first_stages)}"
    )
    steps = (history.get("train") or {}).get("steps")
    print(
        f"refresh:   {again:8.1f} s  mined {refreshed['kept']} of {refreshed['considered']} "
        f"new commits, {steps} training steps; stages: {'; '.join(again_stages)}"
    )
    print(f"refresh / first run: {again / first:.2f}")


if __name__ == "__main__":
    main()
