"""Mining speed against PyDriller, on the same commits with the same content.

    python bench/mine.py REPO [--max-commits N] [--workers W] [--runs R] [--content-only]
                                                                  (pip install -e ".[bench]")

Both miners run in child processes, taking turns, R times each, on the same commits: the newest
N non-merge commits repotune selects (history filters off, so bots and version bumps count too).
PyDriller runs as users run it, in one process, reading per modified file the text before the
commit and the diff. repotune runs `run_mine` as users run it, with W worker processes
(default: all cores) and everything on: it also reads the text after, parses hunks, scrubs
secrets, deduplicates and writes compressed Parquet. `--content-only` adds a third run with
scrubbing and deduplication off, printed apart.

The machine may be busy with other work, so each run is measured two ways, and the median of
the R runs is printed: wall-clock commits/s, and CPU seconds of the child's whole process tree
(the repotune workers, PyDriller's git subprocesses; start-up imports excluded from both), with
the load average around the runs.
Also printed: a ceiling, from libgit2's own work on the same commits (tree diff, rename
detection, blob reads, patches, in one process, nothing kept): the ratio a miner that did only
that would reach on W workers. No miner built on libgit2 can beat it.
Also printed: the peak memory of each (RSS of the largest single process, and the proportional
set size of the whole tree sampled every 20 ms), and an estimate for a 1.2M-commit history on
16 cores: the serial steps (select, merge) scaled by the commit count, plus the workers' CPU
seconds per commit spread over 16 cores (or the deduplication in the main process, if slower).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--content-only", action="store_true", help="also run without scrub/dedup")
    parser.add_argument(
        "--child", choices=["repotune", "pydriller", "floor"], help=argparse.SUPPRESS
    )
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shas", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "repotune":
        result = _repotune(args.repo, args.out, args.max_commits, args.workers, args.plain)
        args.result.write_text(json.dumps(result))
    elif args.child == "pydriller":
        result = _pydriller(args.repo, json.loads(args.shas.read_text()))
        args.result.write_text(json.dumps(result))
    elif args.child == "floor":
        result = _floor(args.repo, json.loads(args.shas.read_text()))
        args.result.write_text(json.dumps(result))
    else:
        _compare(args)


def _compare(args: argparse.Namespace) -> None:
    repo = args.repo.resolve()
    runs: dict[str, list[dict]] = {"pydriller": [], "repotune": [], "content": [], "floor": []}
    loads = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        shas_file = Path(tmp) / "shas.json"
        common = [str(repo), "--max-commits", str(args.max_commits), "--workers", str(args.workers)]
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}"
            ours = _child(["repotune", *common, "--out", str(out)], Path(tmp))
            shas_file.write_text(json.dumps(ours.pop("shas")))
            runs["repotune"].append(ours)
            runs["pydriller"].append(_child(["pydriller", str(repo), "--shas", str(shas_file)],
                                            Path(tmp)))  # fmt: skip
            if args.content_only:
                plain = _child(["repotune", *common, "--out", str(out) + "p", "--plain"], Path(tmp))
                plain.pop("shas")
                runs["content"].append(plain)
            runs["floor"].append(_child(["floor", str(repo), "--shas", str(shas_file)], Path(tmp)))
            loads.append(os.getloadavg())
    theirs, ours = _median(runs["pydriller"]), _median(runs["repotune"])
    if theirs["commits"] != ours["commits"]:
        sys.exit(f"not the same commits: {theirs['commits']} vs {ours['commits']}")
    n = ours["commits"]
    print(f"repository   {repo}  ({n} commits, {ours['files']} file changes)")
    print(
        f"machine      {os.cpu_count()} cores; repotune with {ours['workers']} workers; "
        f"median of {args.runs} runs each"
    )
    print("load average " + " -> ".join("/".join(f"{x:.1f}" for x in la) for la in loads))
    print("             wall s  commits/s    CPU s  commits/CPU-s   peak RSS")
    print(_line("PyDriller", theirs))
    print(_line("repotune", ours))
    if runs["content"]:
        print(_line("repotune, content only (no scrubbing, no dedup)", _median(runs["content"])))
    wall_ratio = ours["rate"] / theirs["rate"]
    cpu_ratio = theirs["cpu"] / ours["cpu"]
    print(f"ratio        {wall_ratio:.1f}x commits/s (wall), {cpu_ratio:.1f}x commits/CPU-s")
    # On an idle machine PyDriller's wall rate is about its CPU rate (one process at a time);
    # under load its wall time also counts waiting, so the CPU form is the one to trust.
    floor = statistics.median(r["cpu"] for r in runs["floor"]) / n
    w = ours["workers"]
    print(
        f"ceiling      libgit2's own work (tree diff, renames, blob reads, patches) is "
        f"{floor * 1000:.2f} CPU-ms per commit: a miner doing nothing else on {w} workers "
        f"would reach {w * theirs['cpu'] / n / floor:.1f}x PyDriller's CPU rate "
        f"({w / floor / theirs['rate']:.1f}x its wall rate in this run)"
    )
    t = ours["timings"]
    worker_cpu = (ours["cpu"] - ours["main_cpu"]) / n  # CPU-s per commit in the workers
    print(
        f"repotune     select {t['select']:.2f}s, shards {t['shards']:.2f}s (dedup in the "
        f"main process meanwhile {t.get('dedup', 0):.2f}s), merge {t['merge']:.2f}s; "
        f"{worker_cpu * 1000:.2f} CPU-ms per commit in the workers"
    )
    # select and merge are serial; mining is spread over the cores while the main process
    # deduplicates, whichever is slower
    serial = (t["select"] + t["merge"]) / n
    estimate = HISTORY * (serial + max(worker_cpu / CORES, t.get("dedup", 0.0) / n))
    print(
        f"estimate     {HISTORY:,} commits on {CORES} cores: {estimate / 60:.0f} min "
        f"(PyDriller, one process: {HISTORY / theirs['rate'] / 3600:.1f} h)"
    )


def _line(name: str, r: dict) -> str:
    label = f"{name:12s}" if len(name) <= 12 else f"{name}\n{'':12s}"
    return (
        f"{label} {r['seconds']:6.2f} {r['rate']:10.1f} {r['cpu']:8.2f} "
        f"{r['commits'] / r['cpu']:14.1f}   {r['maxrss_mb']:.0f} MB largest process (RSS), "
        f"{r['tree_rss_mb']:.0f} MB all (PSS)"
    )


def _median(results: list[dict]) -> dict:
    """The run with the median wall time, its CPU seconds replaced by the median CPU."""
    ordered = sorted(results, key=lambda r: r["seconds"])
    median = dict(ordered[len(ordered) // 2])
    for key in ("cpu", "main_cpu"):
        if key in median:
            median[key] = statistics.median(r[key] for r in results)
    return median


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
                peak = max(peak, sum(_pss(p) for p in tree))
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


def _pss(process) -> int:  # type: ignore[no-untyped-def]
    """Proportional set size: forked workers share their parent's pages, which RSS counts
    once per process."""
    try:
        return process.memory_full_info().pss
    except (AttributeError, OSError):
        return process.memory_info().rss


def _peak_rss_mb() -> float:
    """Largest RSS of this process or any child it waited for (the workers), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu() -> float:
    """CPU seconds of this process and of the children it has reaped (workers, git)."""
    return _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)


def _repotune(repo: Path, out: Path, max_commits: int, workers: int, plain: bool) -> dict:
    os.environ["REPOTUNE_QUIET"] = "1"
    from repotune.config import MineConfig
    from repotune.mine import run_mine
    from repotune.mine.select import open_repo, select_commits

    cfg = MineConfig(
        max_commits=max_commits,
        max_changed_lines=None,  # every commit with its full content
        exclude_authors=[],
        drop_messages=[],
        workers=workers,
        **({"scrub_secrets": False, "dedup": "off"} if plain else {}),
    )
    start, cpu, main_cpu = time.perf_counter(), _tree_cpu(), _cpu(resource.RUSAGE_SELF)
    stats = run_mine(repo, out, cfg)
    seconds = time.perf_counter() - start
    cpu, main_cpu = _tree_cpu() - cpu, _cpu(resource.RUSAGE_SELF) - main_cpu
    maxrss = _peak_rss_mb()  # before anything else runs here
    shas = select_commits(open_repo(repo), repo, cfg).shas
    return {
        "commits": len(shas),
        "files": stats["files_kept"],
        "seconds": seconds,
        "rate": len(shas) / seconds,
        "cpu": cpu,  # of run_mine, workers included (imports before it are not counted)
        "main_cpu": main_cpu,  # of the main process alone
        "workers": stats["workers"],
        "timings": stats["timings"],
        "maxrss_mb": maxrss,
        "shas": shas,
    }


def _floor(repo_path: Path, shas: list[str]) -> dict:
    """libgit2's part of mining, which any miner built on it pays: the tree diff with rename
    detection, reading both blobs and making the patch, per file; nothing kept."""
    import pygit2
    from pygit2.enums import DeltaStatus, DiffFind, FileMode

    repo = pygit2.Repository(str(repo_path))
    cpu = _tree_cpu()
    for sha in shas:
        commit = repo[sha]
        if commit.parents:
            diff = commit.parents[0].tree.diff_to_tree(commit.tree)
        else:
            diff = commit.tree.diff_to_tree(swap=True)
        diff.find_similar(DiffFind.FIND_RENAMES)
        for delta in diff.deltas:
            if FileMode.COMMIT in (delta.old_file.mode, delta.new_file.mode):
                continue  # a submodule: no blob
            old = None if delta.status == DeltaStatus.ADDED else repo[delta.old_file.id]
            new = None if delta.status == DeltaStatus.DELETED else repo[delta.new_file.id]
            _ = pygit2.Patch.create_from(old, new, context_lines=3).data
    return {"cpu": _tree_cpu() - cpu}


def _pydriller(repo: Path, shas: list[str]) -> dict:
    from pydriller import Repository

    wanted = set(shas)
    start, cpu = time.perf_counter(), _tree_cpu()
    commits = files = 0
    # `only_commits` filters the same walk; newest first, as repotune walks
    walk = Repository(str(repo), only_no_merge=True, order="reverse", only_commits=shas)
    traversal = walk.traverse_commits()
    for commit in traversal:
        if commit.hash not in wanted:
            continue
        for modified in commit.modified_files:
            _ = modified.source_code_before, modified.diff
            files += 1
        commits += 1
        if commits == len(wanted):
            break
    traversal.close()  # ends (and waits for) its `git cat-file` processes: their CPU counts
    gc.collect()
    seconds = time.perf_counter() - start
    return {
        "commits": commits,
        "files": files,
        "seconds": seconds,
        "rate": commits / seconds,
        "cpu": _tree_cpu() - cpu,  # its git subprocesses included
        "maxrss_mb": _peak_rss_mb(),
    }


if __name__ == "__main__":
    main()
