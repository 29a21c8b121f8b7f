"""Counts over the kept rows for mine_stats.json (languages, files without text, secrets, sizes):
counted by the worker that encodes each part, from its Arrow columns (no Python objects per
file), kept in the part's footer and summed by the run."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Histogram buckets for `--stats`: (lower bound, label).
LINE_BUCKETS = [(0, "0"), (1, "1"), (2, "2-5"), (6, "6-10"), (11, "11-25"), (26, "26-100"),
                (101, "101-1000"), (1001, ">1000")]  # fmt: skip
FILE_BUCKETS = [(0, "0"), (1, "1"), (2, "2"), (3, "3-5"), (6, "6-10"), (11, "11-50"), (51, ">50")]
_COUNTERS = ("languages", "skipped", "secrets", "lines", "file_counts")


class PartStats:
    def __init__(self) -> None:
        self.kept = 0
        self.files = 0
        self.languages: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.secrets: Counter[str] = Counter()
        self.lines: Counter[str] = Counter()
        self.file_counts: Counter[str] = Counter()

    def add(self, rows: pa.RecordBatch | pa.Table) -> None:
        """Count rows with the shard columns (`files`, `_secrets`, `_changed_lines`)."""
        if not rows.num_rows:
            return
        self.kept += rows.num_rows
        files = pc.list_flatten(rows["files"])
        self.files += len(files)
        language = pc.fill_null(pc.struct_field(files, "language"), "unknown")
        self.languages.update(_counts(language))
        self.skipped.update(_counts(pc.drop_null(pc.struct_field(files, "skip_reason"))))
        self.secrets.update(_counts(pc.list_flatten(rows["_secrets"])))
        lines = rows["_changed_lines"].to_numpy(zero_copy_only=False)
        self.lines.update(_bucket(lines, LINE_BUCKETS))
        n_files = pc.list_value_length(rows["files"]).to_numpy(zero_copy_only=False)
        self.file_counts.update(_bucket(n_files, FILE_BUCKETS))

    def update(self, other: PartStats) -> None:
        self.kept += other.kept
        self.files += other.files
        for name in _COUNTERS:
            getattr(self, name).update(getattr(other, name))

    def to_json(self) -> bytes:
        fields = {name: dict(getattr(self, name)) for name in _COUNTERS}
        return json.dumps({"kept": self.kept, "files": self.files, **fields}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PartStats:
        fields = json.loads(data)
        stats = cls()
        stats.kept, stats.files = fields["kept"], fields["files"]
        for name in _COUNTERS:
            getattr(stats, name).update(fields[name])
        return stats

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
