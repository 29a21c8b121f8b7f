"""Join the mined shards: duplicates across the whole history, and the finished parts -> one
`commits.parquet`, in walk order (newest first), with the stats a user reads first when a
dataset is smaller than expected. (Not `train/merge.py`, which merges an adapter into its base.)

Deduplication runs over the whole history oldest first, so the first copy of a change is kept
wherever the shard boundaries fall: a shard's mask is known once it and every older shard are
mined, which `Dedup` tracks while the workers run. The parts are then joined without being
decoded (`concat`); the output is written to a temp file and renamed, so a reader never sees
half of it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from repotune.commits import COMMIT_SCHEMA, WRITE_OPTIONS
from repotune.config import MineConfig
from repotune.fsutil import atomic_path
from repotune.mine.concat import concat_parquet
from repotune.mine.dedup import Deduper
from repotune.mine.shards import META_PREFIX, Keys, ShardTask


class Dedup:
    """Shards' keys in, in any order; masks out, oldest shard first, as soon as known."""

    def __init__(self, n_shards: int, cfg: MineConfig) -> None:
        self.deduper = Deduper(cfg.dedup, cfg.near_dup_threshold)
        self.dropped: Counter[str] = Counter()
        self.waiting: dict[int, Keys] = {}
        self.next = n_shards - 1  # the oldest shard without a mask
        self.offset = 0
        self.seconds = 0.0  # spent checking, while the workers mine

    def add(self, index: int, keys: Keys) -> Iterator[tuple[int, np.ndarray]]:
        self.waiting[index] = keys
        while self.next in self.waiting:
            start = time.perf_counter()
            exact, minhash = self.waiting.pop(self.next)
            mask = np.ones(len(exact), dtype=bool)
            for j in reversed(range(len(exact))):  # oldest row first
                reason = self.deduper.check(self.offset, exact[j], minhash[j])
                self.offset += 1
                if reason is not None:
                    self.dropped[reason] += 1
                    mask[j] = False
            self.seconds += time.perf_counter() - start
            yield self.next, mask
            self.next -= 1


def join_parts(tasks: Sequence[ShardTask], out: Path) -> None:
    """Write every shard's part, newest first, to `out` as one file."""
    with atomic_path(Path(out)) as tmp:
        if tasks:
            concat_parquet([Path(t.part) for t in tasks], tmp, keep_key=_output_key)
        else:
            pq.ParquetWriter(tmp, COMMIT_SCHEMA, **WRITE_OPTIONS).close()


def _output_key(key: bytes) -> bool:
    return not key.startswith(META_PREFIX)
