"""Mining speed against PyDriller, on the same commits with the same content.

    python bench/mine.py REPO [--max-commits N] [--workers W]      (pip install -e ".[bench]")

Both miners run in child processes, one after the other, on the same commits: the newest N
non-merge commits repotune selects (history filters off, so bots and version bumps count too).
PyDriller runs as users run it, in one process, reading per modified file the text before the
commit and the diff. repotune runs `run_mine` with W worker processes (default: all cores) and
everything on: it also reads the text after, parses hunks, scrubs secrets and deduplicates.

Printed: commits/s of each, the ratio, the peak memory of each (largest single process, and
the whole process tree sampled every 20 ms), and an estimate for a 1.2M-commit history on 16
cores from the measured per-worker rate plus the serial parts (selection and merge).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HISTORY = 1_200_000
CORES = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--max-commits", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--child", choices=["repotune", "pydriller"], help=argparse.SUPPRESS)
    parser.add_argument("--shas", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "repotune":
        result = _repotune(args.repo, args.out, args.max_commits, args.workers)
        args.result.write_text(json.dumps(result))
    elif args.child == "pydriller":
        result = _pydriller(args.repo, json.loads(args.shas.read_text()))
        args.result.write_text(json.dumps(result))
    else:
        _compare(args.repo.resolve(), args.max_commits, args.workers)


def _compare(repo: Path, max_commits: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out, shas_file = Path(tmp) / "run", Path(tmp) / "shas.json"
        ours = _child(["repotune", str(repo), "--max-commits", str(max_commits),
                       "--workers", str(workers), "--out", str(out)], Path(tmp))  # fmt: skip
        shas_file.write_text(json.dumps(ours.pop("shas")))
        theirs = _child(["pydriller", str(repo), "--shas", str(shas_file)], Path(tmp))
    if theirs["commits"] != ours["commits"]:
        sys.exit(f"not the same commits: {theirs['commits']} vs {ours['commits']}")
    ratio = ours["rate"] / theirs["rate"]
    t = ours["timings"]
    n = ours["commits"]
    per_worker = n / (t["shards"] * ours["workers"])  # commits/s of one worker process
    estimate = HISTORY * ((t["select"] + t["merge"]) / n) + HISTORY / (per_worker * CORES)
    print(f"repository   {repo}  ({n} commits, {ours['files']} file changes)")
    print(f"machine      {os.cpu_count()} cores; repotune with {ours['workers']} workers")
    print(f"PyDriller    {theirs['rate']:8.1f} commits/s   peak RSS {_mb(theirs)}")
    print(f"repotune     {ours['rate']:8.1f} commits/s   peak RSS {_mb(ours)}")
    print(f"ratio        {ratio:8.1f}x")
    print(
        f"repotune     select {t['select']:.2f}s, shards {t['shards']:.2f}s "
        f"({per_worker:.0f} commits/s per worker), merge {t['merge']:.2f}s"
    )
    print(
        f"estimate     {HISTORY:,} commits on {CORES} cores: {estimate / 60:.0f} min "
        f"(PyDriller, one process: {HISTORY / theirs['rate'] / 3600:.1f} h)"
    )


def _mb(result: dict) -> str:
    return (
        f"{result['maxrss_mb']:6.0f} MB largest process, "
        f"{result['tree_rss_mb']:6.0f} MB all processes"
    )


def _child(args: list[str], tmp: Path) -> dict:
    """Run this script as a child; sample the RSS of its process tree while it runs."""
    import psutil

    result_file = tmp / f"{args[0]}.json"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *args, "--result", str(result_file)]
    )
    peak = 0
    try:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.02)
    finally:
        proc.wait()
    if proc.returncode:
        sys.exit(f"{args[0]} failed with exit code {proc.returncode}")
    result = json.loads(result_file.read_text())
    result["tree_rss_mb"] = peak / 2**20
    return result


def _peak_rss_mb() -> float:
    """Largest RSS of this process or any child it waited for (the workers), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _repotune(repo: Path, out: Path, max_commits: int, workers: int) -> dict:
    os.environ["REPOTUNE_QUIET"] = "1"
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from repotune.config import MineConfig
    from repotune.mine import run_mine
    from repotune.mine.select import open_repo, select_commits

    cfg = MineConfig(
        max_commits=max_commits,
        max_changed_lines=None,  # every commit with its full content
        exclude_authors=[],
        drop_messages=[],
        workers=workers,
    )
    start = time.perf_counter()
    stats = run_mine(repo, out, cfg)
    seconds = time.perf_counter() - start
    shas = select_commits(open_repo(repo), repo, cfg).shas
    files = pc.list_flatten(pq.read_table(out / "commits.parquet", columns=["files"])["files"])
    return {
        "commits": len(shas),
        "files": len(files),
        "seconds": seconds,
        "rate": len(shas) / seconds,
        "workers": stats["workers"],
        "timings": stats["timings"],
        "maxrss_mb": _peak_rss_mb(),
        "shas": shas,
    }


def _pydriller(repo: Path, shas: list[str]) -> dict:
    from pydriller import Repository

    wanted = set(shas)
    start = time.perf_counter()
    commits = files = 0
    # `only_commits` filters the same walk; newest first, as repotune walks
    walk = Repository(str(repo), only_no_merge=True, order="reverse", only_commits=shas)
    for commit in walk.traverse_commits():
        if commit.hash not in wanted:
            continue
        for modified in commit.modified_files:
            _ = modified.source_code_before, modified.diff
            files += 1
        commits += 1
        if commits == len(wanted):
            break
    seconds = time.perf_counter() - start
    return {
        "commits": commits,
        "files": files,
        "seconds": seconds,
        "rate": commits / seconds,
        "maxrss_mb": _peak_rss_mb(),
    }


if __name__ == "__main__":
    main()
