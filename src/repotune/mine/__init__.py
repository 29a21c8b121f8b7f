"""The mine stage: a git repository in, `commits.parquet` and `mine_stats.json` out, so later
stages never touch git and the numbers behind a dataset can be read without rerunning.

    select (main process) -> mine + encode shards (worker processes; dedup in the main
    process as shards finish) -> join the encoded parts (main process, a file copy)

Shards live in RUN/mine-shards while the stage runs and are removed once `commits.parquet` is
written; a run stopped half-way is resumed by running the same command again.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repotune.commits import read_commits, write_commits
from repotune.config import MineConfig
from repotune.fsutil import write_json
from repotune.mine.history import mine_commits, rename_measure
from repotune.mine.join_shards import Dedup, join_parts
from repotune.mine.select import open_repo, select_commits
from repotune.mine.shards import (
    ShardFn,
    default_workers,
    is_mined,
    mine_shard,
    part_footer,
    plan_key,
    plan_shards,
    run_shards,
)
from repotune.mine.stats import PartStats

__all__ = ["mine_commits", "read_commits", "run_mine", "write_commits"]

SHARD_DIR = "mine-shards"


def run_mine(
    repo: Path, out_dir: Path, cfg: MineConfig, *, warn: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Mine `repo` into `out_dir`; return the stats also written to mine_stats.json.
    Warnings (a shallow clone) go to `warn`, stderr by default."""
    return mine_into(repo, out_dir, cfg, warn=warn)


def mine_into(
    repo: Path,
    out_dir: Path,
    cfg: MineConfig,
    *,
    warn: Callable[[str], None] | None = None,
    shard_fn: ShardFn = mine_shard,
) -> dict[str, Any]:
    """`run_mine` with the shard function exposed (tests inject failures through it)."""
    t0 = time.monotonic()
    repo_path, out_dir = Path(repo), Path(out_dir)
    say = warn or (lambda msg: print(msg, file=sys.stderr))
    selection = select_commits(open_repo(repo_path), repo_path, cfg)
    if selection.shallow:
        say(
            f"warning: {repo_path} is a shallow clone: its history is truncated; mining the "
            f"{len(selection.shas)} commits present (git fetch --unshallow for all)"
        )
    key = plan_key(cfg, selection.shas)
    stats_path, commits_path = out_dir / "mine_stats.json", out_dir / "commits.parquet"
    previous = _finished(stats_path, commits_path, key)
    if previous is not None:  # same arguments, same history: nothing to do
        return previous
    stats_path.unlink(missing_ok=True)  # never a new commits file with old stats
    folder = out_dir / SHARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a killed worker
        stale.unlink(missing_ok=True)
    tasks = plan_shards(repo_path, selection.shas, cfg, folder)
    workers = cfg.workers or default_workers()
    done = sum(len(t.shas) for t in tasks if is_mined(t))
    dedup = Dedup(len(tasks), cfg)
    t1 = time.monotonic()
    run_shards(tasks, workers, shard_fn, len(selection.shas), done, dedup)
    t2 = time.monotonic()

    dropped: Counter[str] = Counter(selection.dropped)
    kept = PartStats()
    for task in tasks:
        shard_dropped, part = part_footer(task)
        dropped.update(shard_dropped)
        kept.update(part)
    dropped.update(dedup.dropped)
    join_parts(tasks, commits_path)
    shutil.rmtree(folder, ignore_errors=True)
    t3 = time.monotonic()
    seconds = t3 - t0
    written = kept.result()
    stats = {
        "repo": str(repo),
        "ref": cfg.ref,
        "kept": written.pop("kept"),
        "dropped": dict(sorted(dropped.items())),
        **written,
        "considered": len(selection.shas),
        "shallow": selection.shallow,
        "renames": rename_measure(cfg),  # libgit2's pairing, which is not always git's
        "workers": min(workers, max(len(tasks), 1)),
        "shards": len(tasks),
        "seconds": round(seconds, 3),
        "commits_per_second": round(len(selection.shas) / seconds, 1) if seconds else None,
        # select + merge run in this process; shards (mine and encode) in parallel (this run
        # mined `done` fewer)
        "timings": {
            "select": round(t1 - t0, 3),
            "shards": round(t2 - t1, 3),
            "merge": round(t3 - t2, 3),
            "dedup": round(dedup.seconds, 3),  # in this process, during "shards"
            "resumed_commits": done,
        },
        "plan": key,
    }
    write_json(stats_path, stats)
    return stats


def _finished(stats_path: Path, commits_path: Path, key: str) -> dict[str, Any] | None:
    if not (stats_path.is_file() and commits_path.is_file()):
        return None
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) and stats.get("plan") == key else None
