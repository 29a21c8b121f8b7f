"""Commit shards: the selected commits cut into runs of consecutive commits, each mined by a
worker process, then encoded as a part of the final Parquet file.

A shard goes through two files, each written atomically:

1. its mined rows (`NNNNNN-DIGEST.arrow`, Arrow IPC, uncompressed), with the keys deduplication
   needs and the counts of commits it dropped;
2. once every older shard is mined, so its duplicates are known (see `join_shards.Dedup`), its part
   (`NNNNNN-DIGEST-PLAN.parquet`): the kept rows, encoded exactly as `commits.parquet` is, with
   the keys and counts in its footer. The rows file is then removed.

Parts are joined into `commits.parquet` without re-encoding (`concat`), so compression runs in
the workers, in parallel, and the join in the parent costs a file copy.

A rows file's name is a digest of the arguments that shape its rows and of its commits; a part's
adds the digest of the whole plan, since which rows are duplicates depends on all older
commits. So a re-run with the same arguments finds what an interrupted run finished and does
only the rest. Each worker process opens its own repository (see `_context` for how workers
start).
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
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pygit2

from repotune.commits import COMMIT_SCHEMA, WRITE_OPTIONS, row_size
from repotune.config import MineConfig
from repotune.fsutil import atomic_path
from repotune.mine.history import CommitMiner, Mined, fast_reads
from repotune.mine.progress import progress
from repotune.mine.stats import PartStats

FORMAT = 3  # bump when a shard's rows or files change for the same arguments
_DROPPED = b"repotune.dropped"
_KEYS = b"repotune.keys"
_STATS = b"repotune.stats"
META_PREFIX = b"repotune."  # footer keys of a part that commits.parquet leaves out
# A shard's rows plus what the join needs: dedup keys and per-commit counts for the stats.
SHARD_SCHEMA = pa.schema(
    [
        *COMMIT_SCHEMA,
        ("_changed_lines", pa.int64()),
        ("_secrets", pa.list_(pa.string())),
        ("_exact", pa.binary()),
        ("_minhash", pa.binary()),
    ]
)
_KEY_SCHEMA = pa.schema([("_exact", pa.binary()), ("_minhash", pa.binary())])
# Rows are converted to Arrow and written every ~16 MB of text: a worker's memory stays bounded
# and each batch becomes one row group of the output.
_ROW_BATCH_BYTES = 16 << 20
_BACKLOG = 4  # mined shards waiting to be encoded, per worker, before mining pauses


@dataclass(frozen=True)
class ShardTask:
    index: int
    repo: str
    shas: tuple[str, ...]
    cfg: MineConfig
    path: str  # mined rows (Arrow IPC)
    part: str  # the kept rows, encoded (Parquet)


ShardFn = Callable[..., dict[str, int]]
Keys = tuple[list[bytes | None], list[bytes | None]]


def config_key(cfg: MineConfig) -> str:
    """The arguments that shape the output; workers and shard size only decide how it is cut."""
    fields = cfg.model_dump(mode="json", exclude={"workers", "shard_size", "repo_workers"})
    return json.dumps({"format": FORMAT, **fields}, sort_keys=True)


def plan_key(cfg: MineConfig, shas: Sequence[str]) -> str:
    h = hashlib.sha256(config_key(cfg).encode())
    h.update("\n".join(shas).encode())
    return h.hexdigest()


def shard_size(n: int, cfg: MineConfig) -> int:
    """Commits per shard: enough shards to balance the workers (~64), few enough to keep the
    per-shard cost small (a worker's caches start cold on each shard: with 100 commits a shard,
    ~10% more work than with 500); a function of the commit count only, so resumes find the
    same cut and the output does not depend on the number of workers."""
    if cfg.shard_size is not None:
        return cfg.shard_size
    return max(250, min(500, math.ceil(n / 64)))


def plan_shards(repo: Path, shas: Sequence[str], cfg: MineConfig, folder: Path) -> list[ShardTask]:
    size = shard_size(len(shas), cfg)
    base = config_key(cfg)
    plan = plan_key(cfg, shas)[:12]
    tasks = []
    for index, start in enumerate(range(0, len(shas), size)):
        part = tuple(shas[start : start + size])
        digest = hashlib.sha256((base + "\n" + "\n".join(part)).encode()).hexdigest()[:24]
        name = f"{index:06d}-{digest}"
        tasks.append(
            ShardTask(
                index,
                str(repo),
                part,
                cfg,
                str(folder / f"{name}.arrow"),
                str(folder / f"{name}-{plan}.parquet"),
            )
        )
    return tasks


def is_mined(task: ShardTask) -> bool:
    return Path(task.part).is_file() or Path(task.path).is_file()


# --- what a finished shard says -----------------------------------------------------------------


def shard_keys(task: ShardTask) -> Keys:
    """(exact, minhash) dedup keys of every mined row, from the part or else the rows file."""
    if Path(task.part).is_file():
        data = pq.read_metadata(task.part).metadata[_KEYS]
        table = pa.ipc.open_stream(data).read_all()
    else:
        with pa.memory_map(task.path) as source:
            table = pa.ipc.open_file(source).read_all().select(_KEY_SCHEMA.names)
    return table["_exact"].to_pylist(), table["_minhash"].to_pylist()


def part_footer(task: ShardTask) -> tuple[dict[str, int], PartStats]:
    """Counts of commits the shard dropped while mining, and stats of the rows it kept."""
    meta = pq.read_metadata(task.part).metadata
    return json.loads(meta[_DROPPED]), PartStats.from_json(meta[_STATS])


# --- running ----------------------------------------------------------------------------------


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class MaskSource(Protocol):
    """What `run_shards` asks of deduplication: take a mined shard's keys (any order), give
    back `(index, mask of rows to keep)` for each shard whose older shards are all known."""

    def add(self, index: int, keys: Keys) -> Iterable[tuple[int, np.ndarray]]: ...


def run_shards(
    tasks: Sequence[ShardTask],
    workers: int,
    shard_fn: ShardFn,
    total: int,
    done: int,
    masks: MaskSource,
) -> None:
    """Mine every shard that has no file yet, oldest first, and encode each shard's part as
    soon as its mask is known; in this process if one worker is enough, else in a pool. On an
    error or Ctrl-C the workers are stopped at once: finished files stay for the next run,
    unfinished ones leave no file."""
    by_index = {t.index: t for t in tasks}
    encode: deque[tuple[ShardTask, np.ndarray]] = deque()
    unencoded: set[int] = set()  # mined, their rows on disk until encoded

    def mined(task: ShardTask) -> None:
        if not Path(task.part).is_file():
            unencoded.add(task.index)
        for index, mask in masks.add(task.index, shard_keys(task)):
            if not Path(by_index[index].part).is_file():
                encode.append((by_index[index], mask))

    to_mine: deque[ShardTask] = deque()
    for task in reversed(tasks):  # oldest first: duplicates are decided oldest first
        if is_mined(task):
            mined(task)
        else:
            to_mine.append(task)
    if not to_mine and not encode:
        return
    inline = workers <= 1 or len(to_mine) + len(encode) == 1
    ctx = None if inline else _context()
    counter: Any = _Counter(done) if inline else ctx.Value("q", done)  # type: ignore[union-attr]
    pool: Any = None
    try:
        if inline:
            pool = _Inline(counter)
        else:
            # pyarrow imports pandas (~0.25 CPU-s) the first time it converts Python objects:
            # done here once, forked workers inherit it instead of each paying for it.
            pa.array([0])
            parent = os.getpid() if ctx.get_start_method() == "fork" else None
            pool = ProcessPoolExecutor(
                workers, ctx, initializer=_init_worker, initargs=(counter, parent)
            )
        running: dict[Future[Any], tuple[str, ShardTask]] = {}
        if not inline:  # submitting forks the workers: before the progress bar starts a thread
            _fill(pool, running, workers, encode, to_mine, shard_fn, unencoded)
        with progress(total) as update, fast_reads():
            update(counter.value)
            if inline:
                counter.update = update
                _fill(pool, running, workers, encode, to_mine, shard_fn, unencoded)
            while running:
                finished, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                update(counter.value)
                for future in finished:
                    kind, task = running.pop(future)
                    future.result()  # re-raise a worker's error here
                    if kind == "mine":
                        mined(task)
                    else:
                        unencoded.discard(task.index)
                _fill(pool, running, workers, encode, to_mine, shard_fn, unencoded)
        pool.shutdown()
    except BaseException:
        if pool is not None:
            _stop(pool)
        for folder in {Path(t.path).parent for t in tasks}:
            for temp in folder.glob(".*.tmp"):  # what the stopped workers were writing
                temp.unlink(missing_ok=True)
        raise


def _fill(
    pool: Any,
    running: dict[Future[Any], tuple[str, ShardTask]],
    workers: int,
    encode: deque[tuple[ShardTask, np.ndarray]],
    to_mine: deque[ShardTask],
    shard_fn: ShardFn,
    unencoded: set[int],
) -> None:
    """Keep each worker busy, encoding first: a part done early frees its rows file. Rows
    wait on disk, uncompressed, until every older shard is mined: if an old shard is slow,
    mining stops at `_BACKLOG` shards a worker waiting (but never with nothing running)."""
    while len(running) < workers:
        mining = sum(kind == "mine" for kind, _ in running.values())
        if encode:
            task, mask = encode.popleft()
            running[pool.submit(encode_part, task, mask)] = ("encode", task)
        elif to_mine and (not running or len(unencoded) + mining < _BACKLOG * workers):
            task = to_mine.popleft()
            running[pool.submit(shard_fn, task)] = ("mine", task)
        else:
            return


class _Inline:
    """The pool's interface, run in this process at submit time."""

    def __init__(self, counter: _Counter) -> None:
        self.counter = counter

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if fn is not encode_part:
            args = (*args, self.counter)
        future.set_result(fn(*args))  # an error propagates at once, as Ctrl-C does
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


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


def _stop(pool: Any) -> None:
    """Stop now: cancel queued shards and end running workers."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


class _Counter:
    """Commits mined so far, in this process (a shared integer in a pool)."""

    def __init__(self, start: int) -> None:
        self.value = start
        self.update: Callable[[int], None] = lambda done: None


_shared: Any = None
_miners: dict[tuple[str, str], tuple[pygit2.Repository, CommitMiner]] = {}


def _init_worker(counter: Any, parent: int | None = None) -> None:
    global _shared
    _shared = counter
    _die_with_parent(parent)
    _miners.clear()  # a forked worker must not use its parent's repository handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    pygit2.settings.enable_strict_hash_verification(False)  # see history.fast_reads


def _die_with_parent(parent: int | None) -> None:
    """A worker whose parent was killed (kill -9, the OOM killer) would wait for shards
    forever, holding its memory: on Linux the kernel ends it with the parent (with `fork`,
    this process's parent; with `forkserver`, the server, which exits with the parent)."""
    if sys.platform != "linux":  # pragma: no cover
        return
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _add(counter: Any, n: int) -> None:
    if isinstance(counter, _Counter):
        counter.value += n
        counter.update(counter.value)
    elif counter is not None:
        with counter.get_lock():
            counter.value += n


# --- stage 1: mine -----------------------------------------------------------------------------


def mine_shard(task: ShardTask, counter: Any = None) -> dict[str, int]:
    """Mine one shard into its rows file (atomically); return its dropped counts by reason."""
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
        atomic_path(Path(task.path), clean=False) as tmp,  # run_mine cleans the shard folder
        pa.ipc.new_file(str(tmp), SHARD_SCHEMA) as writer,
    ):
        for sha in task.shas:
            result = miner.mine(repo[sha])
            if isinstance(result, str):
                dropped[result] += 1
            else:
                rows.append(_shard_row(result))
                size += row_size(result.row)
                if size >= _ROW_BATCH_BYTES:
                    writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=SHARD_SCHEMA))
                    rows, size = [], 0
            pending += 1
            if pending >= 64 or time.monotonic() - last > 0.2:
                _add(counter, pending)
                pending, last = 0, time.monotonic()
        if rows:
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=SHARD_SCHEMA))
        counts = json.dumps(dict(sorted(dropped.items()))).encode()
        empty = pa.RecordBatch.from_pylist([], schema=SHARD_SCHEMA)
        writer.write_batch(empty, custom_metadata={_DROPPED: counts})  # read by encode_part
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


# --- stage 2: encode ---------------------------------------------------------------------------


def encode_part(task: ShardTask, mask: np.ndarray) -> None:
    """The shard's kept rows as a Parquet part of commits.parquet (atomically); its rows file
    is removed once the part exists. One batch is in memory at a time."""
    stats = PartStats()
    keys = pa.BufferOutputStream()
    key_writer = pa.ipc.new_stream(keys, _KEY_SCHEMA)
    with (
        pa.OSFile(task.path) as source,
        atomic_path(Path(task.part), clean=False) as tmp,
        pq.ParquetWriter(tmp, COMMIT_SCHEMA, **WRITE_OPTIONS) as writer,
    ):
        reader = pa.ipc.open_file(source)
        offset = 0
        for i in range(reader.num_record_batches):
            batch, meta = reader.get_batch_with_custom_metadata(i)
            key_writer.write_batch(batch.select(_KEY_SCHEMA.names))
            keep = mask[offset : offset + batch.num_rows]
            offset += batch.num_rows
            if not keep.all():
                batch = batch.filter(pa.array(keep))
            if batch.num_rows:
                stats.add(batch)
                table = pa.Table.from_batches([batch.select(COMMIT_SCHEMA.names)])
                writer.write_table(table, row_group_size=batch.num_rows)
        dropped = meta[_DROPPED]  # on the last batch
        key_writer.close()
        writer.add_key_value_metadata(
            {_DROPPED: dropped, _STATS: stats.to_json(), _KEYS: keys.getvalue().to_pybytes()}
        )
    Path(task.path).unlink(missing_ok=True)
