"""Commit shards: the selected commits cut into runs of consecutive commits, each mined by a
worker process into its own Parquet file.

A shard's file name is a digest of the arguments that shape its rows and of its commits, and the
file appears atomically once complete; so a re-run with the same arguments finds the shards an
interrupted run finished and mines only the rest. Each worker process opens its own repository
(see `_context` for how workers start).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pygit2

from repotune.config import MineConfig
from repotune.fsutil import atomic_path
from repotune.mine.history import CommitMiner, Mined, fast_reads
from repotune.mine.progress import progress
from repotune.mine.store import COMMIT_SCHEMA, row_size

FORMAT = 1  # bump when a shard's rows change for the same arguments
_META = b"repotune.shard"
# A shard's rows plus what the merge needs: dedup keys and per-commit counts for the stats.
SHARD_SCHEMA = pa.schema(
    [
        *COMMIT_SCHEMA,
        ("_changed_lines", pa.int64()),
        ("_secrets", pa.list_(pa.string())),
        ("_exact", pa.binary()),
        ("_minhash", pa.binary()),
    ]
)
_ROW_BATCH_BYTES = 32 << 20
# Shards are read once, by the merge, which is the one step that does not run in parallel:
# plain encoding in large pages makes them cheap to write here and cheap to read there (with
# 1 MB pages, file texts cost ~5x more to read back).
_SHARD_WRITE_OPTIONS = {
    "compression": "none",
    "use_dictionary": False,
    "write_statistics": False,
    "data_page_size": 64 << 20,
}


@dataclass(frozen=True)
class ShardTask:
    index: int
    repo: str
    shas: tuple[str, ...]
    cfg: MineConfig
    path: str


ShardFn = Callable[..., dict[str, int]]


def config_key(cfg: MineConfig) -> str:
    """The arguments that shape the output; workers and shard size only decide how it is cut."""
    fields = cfg.model_dump(mode="json", exclude={"workers", "shard_size"})
    return json.dumps({"format": FORMAT, **fields}, sort_keys=True)


def plan_key(cfg: MineConfig, shas: Sequence[str]) -> str:
    h = hashlib.sha256(config_key(cfg).encode())
    h.update("\n".join(shas).encode())
    return h.hexdigest()


def shard_size(n: int, cfg: MineConfig) -> int:
    """Commits per shard: enough shards to balance the workers (~64), few enough to keep the
    per-shard cost small; a function of the commit count only, so resumes find the same cut."""
    if cfg.shard_size is not None:
        return cfg.shard_size
    return max(100, min(500, math.ceil(n / 64)))


def plan_shards(repo: Path, shas: Sequence[str], cfg: MineConfig, folder: Path) -> list[ShardTask]:
    size = shard_size(len(shas), cfg)
    base = config_key(cfg)
    tasks = []
    for index, start in enumerate(range(0, len(shas), size)):
        part = tuple(shas[start : start + size])
        digest = hashlib.sha256((base + "\n" + "\n".join(part)).encode()).hexdigest()[:24]
        path = folder / f"{index:06d}-{digest}.parquet"
        tasks.append(ShardTask(index, str(repo), part, cfg, str(path)))
    return tasks


def shard_dropped(path: str) -> dict[str, int]:
    """Counts of commits a finished shard dropped, from its footer."""
    meta = pq.read_metadata(path).metadata or {}
    return json.loads(meta.get(_META, b"{}"))


# --- running ----------------------------------------------------------------------------------


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_shards(
    tasks: Sequence[ShardTask], workers: int, shard_fn: ShardFn, total: int, done: int
) -> None:
    """Mine every task whose file is missing; in this process if one worker (or one shard) is
    enough, else in a pool. On an error or Ctrl-C the workers are stopped at once: finished
    shards stay for the next run, unfinished ones leave no file."""
    pending = [t for t in tasks if not Path(t.path).is_file()]
    if not pending:
        return
    if workers <= 1 or len(pending) == 1:
        with progress(total) as update, fast_reads():
            update(done)
            counter = _Counter(done, update)
            for task in pending:
                shard_fn(task, counter)
        return
    ctx = _context()
    counter = ctx.Value("q", done)
    workers = min(workers, len(pending))
    pool = ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=(counter,))
    try:
        # Submitting starts the workers: before the progress bar starts its thread.
        futures: set[Future[Any]] = {pool.submit(shard_fn, task) for task in pending}
        with progress(total) as update:
            while futures:
                finished, futures = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
                update(counter.value)
                for f in finished:
                    f.result()  # re-raise a worker's error here
        pool.shutdown()
    except BaseException:
        _stop(pool)
        for folder in {Path(t.path).parent for t in pending}:
            for temp in folder.glob(".*.tmp"):  # what the stopped workers were writing
                temp.unlink(missing_ok=True)
        raise


def _context() -> mp.context.BaseContext:
    """`fork` where it is safe (Linux, no other thread in this process): workers start at
    once and a script needs no `if __name__ == "__main__"` guard. Else `forkserver` or
    `spawn`, which re-import the main module. Either way each worker opens its own repository
    and inherits no libgit2 handle in use."""
    methods = mp.get_all_start_methods()
    if sys.platform == "linux" and threading.active_count() == 1 and "fork" in methods:
        return mp.get_context("fork")
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["repotune.mine.shards"])
        return ctx
    return mp.get_context("spawn")


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop now: cancel queued shards and end running workers."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


class _Counter:
    """Commits mined so far: a shared integer in a pool, a callback in this process."""

    def __init__(self, start: int, update: Callable[[int], None] | None = None) -> None:
        self.value = start
        self.update = update

    def add(self, n: int) -> None:
        self.value += n
        if self.update is not None:
            self.update(self.value)


_shared: Any = None
_miners: dict[tuple[str, str], tuple[pygit2.Repository, CommitMiner]] = {}


def _init_worker(counter: Any) -> None:
    global _shared
    _shared = counter
    _miners.clear()  # a forked worker must not use its parent's repository handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    pygit2.settings.enable_strict_hash_verification(False)  # see history.fast_reads


def _add(counter: Any, n: int) -> None:
    if isinstance(counter, _Counter):
        counter.add(n)
    elif counter is not None:
        with counter.get_lock():
            counter.value += n


def mine_shard(task: ShardTask, counter: Any = None) -> dict[str, int]:
    """Mine one shard into its file (atomically); return its dropped counts by reason."""
    counter = counter if counter is not None else _shared
    key = (task.repo, config_key(task.cfg))
    if key not in _miners:  # one repository handle and cache per process and arguments
        repo = pygit2.Repository(task.repo)
        _miners.clear()
        _miners[key] = (repo, CommitMiner(repo, task.cfg))
    repo, miner = _miners[key]
    dropped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    size, pending = 0, 0
    last = time.monotonic()
    with (
        atomic_path(Path(task.path)) as tmp,
        pq.ParquetWriter(tmp, SHARD_SCHEMA, **_SHARD_WRITE_OPTIONS) as writer,
    ):
        for sha in task.shas:
            result = miner.mine(repo[sha])
            if isinstance(result, str):
                dropped[result] += 1
            else:
                rows.append(_shard_row(result))
                size += row_size(result.row)
                if size >= _ROW_BATCH_BYTES:
                    writer.write_table(pa.Table.from_pylist(rows, schema=SHARD_SCHEMA))
                    rows, size = [], 0
            pending += 1
            if pending >= 64 or time.monotonic() - last > 0.2:
                _add(counter, pending)
                pending, last = 0, time.monotonic()
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=SHARD_SCHEMA))
        writer.add_key_value_metadata({_META: json.dumps(dict(sorted(dropped.items())))})
    _add(counter, pending)
    return dict(dropped)


def _shard_row(mined: Mined) -> dict[str, Any]:
    return {
        **mined.row,
        "_changed_lines": mined.changed_lines,
        "_secrets": mined.secrets,
        "_exact": mined.exact,
        "_minhash": mined.minhash,
    }
