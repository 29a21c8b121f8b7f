"""Parquet parts joined without re-encoding give the file one writer would have written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from repotune.commits import COMMIT_SCHEMA, WRITE_OPTIONS
from repotune.mine.concat import concat_parquet


def rows(start: int, n: int) -> pa.Table:
    files = [
        {"old_path": "a.py", "new_path": "a.py", "change_type": "modified", "language": "python",
         "before": "x = 1\n" * i, "after": "x = 2\n" * i, "added": 1, "deleted": 1,
         "hunks": [{"old_start": 1, "old_lines": 1, "new_start": 1, "new_lines": 1,
                    "header": "@@ -1 +1 @@", "lines": ["-x = 1", "+x = 2"]}],
         "skip_reason": None, "encoding": None}
        for i in range(start, start + n)
    ]  # fmt: skip
    return pa.Table.from_pylist(
        [
            {
                "sha": f"{i:040x}",
                "parents": [],
                "author_time": i,
                "committer_time": i,
                "author": "Ada",
                "message": f"change {i}",
                "files": [f],
            }
            for i, f in enumerate(files, start)
        ],  # fmt: skip
        schema=COMMIT_SCHEMA,
    )


def write(path: Path, groups: list[pa.Table], meta: dict[bytes, bytes] | None = None) -> Path:
    with pq.ParquetWriter(path, COMMIT_SCHEMA, **WRITE_OPTIONS) as writer:
        for table in groups:
            writer.write_table(table, row_group_size=table.num_rows)
        if meta:
            writer.add_key_value_metadata(meta)
    return path


def test_concat_is_what_one_writer_writes(tmp_path: Path) -> None:
    groups = [[rows(0, 3), rows(3, 5)], [], [rows(8, 1)], [rows(9, 20)]]
    parts = [
        write(tmp_path / f"part{i}.parquet", g, {b"repotune.keys": b"\x00\xff" * i})
        for i, g in enumerate(groups)
    ]
    out = tmp_path / "out.parquet"
    n = concat_parquet(parts, out, keep_key=lambda k: not k.startswith(b"repotune."))
    assert n == 29
    one = write(tmp_path / "one.parquet", [t for g in groups for t in g])
    assert out.read_bytes() == one.read_bytes()
    assert pq.read_table(out).equals(pa.concat_tables(t for g in groups for t in g))
    assert b"repotune.keys" not in pq.read_metadata(out).metadata


def test_concat_refuses_another_schema(tmp_path: Path) -> None:
    a = write(tmp_path / "a.parquet", [rows(0, 2)])
    other = tmp_path / "b.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    with pytest.raises(ValueError, match="schema differs"):
        concat_parquet([a, other], tmp_path / "out.parquet")
    (tmp_path / "c.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a Parquet file"):
        concat_parquet([a, tmp_path / "c.parquet"], tmp_path / "out.parquet")
