"""Finished shards -> one `commits.parquet`, in walk order (newest first), duplicates left out,
and the stats a user reads first when a dataset is smaller than expected.

Deduplication runs here, over the whole history oldest first, so the first copy of a change is
kept wherever the shard boundaries fall. The output is written to a temp file and renamed, so
a reader never sees half of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from repotune.config import MineConfig
from repotune.fsutil import atomic_path
from repotune.mine.dedup import Deduper
from repotune.mine.shards import ShardTask
from repotune.mine.store import COMMIT_SCHEMA, ROW_GROUP_BYTES, WRITE_OPTIONS

# Histogram buckets for `--stats`: (lower bound, label).
LINE_BUCKETS = [(0, "0"), (1, "1"), (2, "2-5"), (6, "6-10"), (11, "11-25"), (26, "26-100"),
                (101, "101-1000"), (1001, ">1000")]  # fmt: skip
FILE_BUCKETS = [(0, "0"), (1, "1"), (2, "2"), (3, "3-5"), (6, "6-10"), (11, "11-50"), (51, ">50")]


def duplicates(tasks: Sequence[ShardTask], cfg: MineConfig) -> tuple[list[np.ndarray], Counter]:
    """Per shard, a mask of rows to keep; and counts of rows dropped as copies."""
    deduper = Deduper(cfg.dedup, cfg.near_dup_threshold)
    dropped: Counter[str] = Counter()
    masks: list[np.ndarray] = [np.ones(0, dtype=bool)] * len(tasks)
    offset = 0
    for i in reversed(range(len(tasks))):  # oldest shard first, oldest row first
        keys = pq.read_table(tasks[i].path, columns=["_exact", "_minhash"], memory_map=True)
        exact, minhash = keys["_exact"].to_pylist(), keys["_minhash"].to_pylist()
        mask = np.ones(len(exact), dtype=bool)
        for j in reversed(range(len(exact))):
            reason = deduper.check(offset, exact[j], minhash[j])
            offset += 1
            if reason is not None:
                dropped[reason] += 1
                mask[j] = False
        masks[i] = mask
    return masks, dropped


def merge_shards(tasks: Sequence[ShardTask], out: Path, masks: Sequence[np.ndarray]) -> dict:
    """Write the kept rows of every shard to `out`; return stats of what was written."""
    acc = _Stats()
    buffered: list[pa.Table] = []
    size = 0
    with (
        atomic_path(Path(out)) as tmp,
        pq.ParquetWriter(tmp, COMMIT_SCHEMA, **WRITE_OPTIONS) as writer,
    ):
        for task, mask in zip(tasks, masks, strict=True):
            table = pq.read_table(task.path, memory_map=True)
            if not mask.all():
                table = table.filter(pa.array(mask))
            acc.add(table)
            buffered.append(table.select(COMMIT_SCHEMA.names))
            size += buffered[-1].nbytes
            if size >= ROW_GROUP_BYTES:
                _flush(writer, buffered)
                buffered, size = [], 0
        _flush(writer, buffered)
    return acc.result()


def _flush(writer: pq.ParquetWriter, tables: list[pa.Table]) -> None:
    tables = [t for t in tables if t.num_rows]
    if tables:
        table = pa.concat_tables(tables).cast(COMMIT_SCHEMA)
        writer.write_table(table, row_group_size=table.num_rows)


class _Stats:
    """Counts over the written rows, from the Arrow columns (no Python objects per file)."""

    def __init__(self) -> None:
        self.kept = 0
        self.files = 0
        self.languages: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.secrets: Counter[str] = Counter()
        self.lines: Counter[str] = Counter()
        self.file_counts: Counter[str] = Counter()

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.kept += table.num_rows
        files = pc.list_flatten(table["files"])
        self.files += len(files)
        language = pc.fill_null(pc.struct_field(files, "language"), "unknown")
        self.languages.update(_counts(language))
        self.skipped.update(_counts(pc.drop_null(pc.struct_field(files, "skip_reason"))))
        self.secrets.update(_counts(pc.list_flatten(table["_secrets"])))
        self.lines.update(_bucket(table["_changed_lines"].to_numpy(), LINE_BUCKETS))
        n_files = pc.list_value_length(table["files"]).to_numpy(zero_copy_only=False)
        self.file_counts.update(_bucket(n_files, FILE_BUCKETS))

    def result(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "files_kept": self.files,
            "files_without_text": dict(sorted(self.skipped.items())),
            "languages": dict(sorted(self.languages.items(), key=lambda kv: (-kv[1], kv[0]))),
            "secrets_replaced": dict(sorted(self.secrets.items())),
            "sizes": {
                "changed_lines": _ordered(self.lines, LINE_BUCKETS),
                "files": _ordered(self.file_counts, FILE_BUCKETS),
            },
        }


def _counts(values: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    if len(values) == 0:
        return {}
    vc = pc.value_counts(values)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))


def _bucket(values: np.ndarray, buckets: list[tuple[int, str]]) -> Counter[str]:
    edges = np.array([low for low, _ in buckets])
    index = np.searchsorted(edges, values, side="right") - 1
    return Counter({buckets[i][1]: int(n) for i, n in zip(*np.unique(index, return_counts=True))})


def _ordered(counts: Counter[str], buckets: list[tuple[int, str]]) -> dict[str, int]:
    return {label: counts[label] for _, label in buckets if counts[label]}
