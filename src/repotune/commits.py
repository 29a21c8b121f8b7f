"""Commit records as Parquet (RUN/commits.parquet): one row per commit, files and hunks as nested
columns, so the file opens in pandas, DuckDB and `datasets` as is. A shared layer, not the mine
stage's: mine writes the file and build reads it. The schema is explicit so that a column that
is empty or all None in one run still has the same type as in any other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from repotune.errors import UserError
from repotune.fsutil import atomic_path
from repotune.records import Commit

HUNK_TYPE = pa.struct(
    [
        ("old_start", pa.int64()),
        ("old_lines", pa.int64()),
        ("new_start", pa.int64()),
        ("new_lines", pa.int64()),
        ("header", pa.string()),
        ("lines", pa.list_(pa.string())),
    ]
)
FILE_TYPE = pa.struct(
    [
        ("old_path", pa.string()),
        ("new_path", pa.string()),
        ("change_type", pa.string()),
        ("language", pa.string()),
        ("before", pa.string()),
        ("after", pa.string()),
        ("added", pa.int64()),
        ("deleted", pa.int64()),
        ("hunks", pa.list_(HUNK_TYPE)),
        ("skip_reason", pa.string()),
        ("encoding", pa.string()),
    ]
)
COMMIT_SCHEMA = pa.schema(
    [
        ("sha", pa.string()),
        ("parents", pa.list_(pa.string())),
        ("author_time", pa.int64()),
        ("committer_time", pa.int64()),
        ("author", pa.string()),
        ("message", pa.string()),
        ("files", pa.list_(FILE_TYPE)),
    ]
)
# A run of several repositories adds the repository's name; a run of one writes the file as
# before, so older run folders and other tools' files read the same.
REPO_FIELD = pa.field("repo", pa.string())
MULTI_SCHEMA = COMMIT_SCHEMA.append(REPO_FIELD)
# Row groups are cut by text size: keeps memory bounded and each string column chunk far
# below Arrow's 2 GiB limit for `string` offsets.
ROW_GROUP_BYTES = 64 << 20
# Dictionary encoding pays off for the short repetitive columns only; trying it on file texts
# and hunk lines costs time for nothing. Statistics likewise only where a reader filters.
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": [
        "author",
        "files.list.element.change_type",
        "files.list.element.language",
        "files.list.element.skip_reason",
        "files.list.element.encoding",
    ],
    "write_statistics": ["sha", "author_time", "committer_time"],
    "data_page_size": 8 << 20,  # file texts are large values: fewer, larger pages read faster
}


def write_commits(path: Path, commits: list[Commit]) -> None:
    """Write `commits` to `path` atomically; an empty list gives a valid, empty file. The
    `repo` column is written when a commit names its repository."""
    schema = MULTI_SCHEMA if any(c.repo is not None for c in commits) else COMMIT_SCHEMA
    with (
        atomic_path(Path(path)) as tmp,
        pq.ParquetWriter(tmp, schema, **WRITE_OPTIONS) as writer,
    ):
        for rows in _row_groups(commits):
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def read_commits(path: Path) -> list[Commit]:
    """Read a file written by `write_commits` (or by another tool with the same columns)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"commits file not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [n for n in COMMIT_SCHEMA.names if n not in table.column_names]
    if missing:
        raise UserError(f"{path}: missing commit columns: {', '.join(missing)}")
    names = MULTI_SCHEMA.names if REPO_FIELD.name in table.column_names else COMMIT_SCHEMA.names
    return [Commit.from_dict(row) for row in table.select(names).to_pylist()]


def row_size(row: dict[str, Any]) -> int:
    """Rough size of a row's strings in characters: enough to cut row groups."""
    size = len(row["message"])
    for f in row["files"]:
        size += len(f["before"] or "") + len(f["after"] or "")
        size += sum(len(line) + 1 for h in f["hunks"] for line in h["lines"])
    return size


def _row_groups(commits: list[Commit]) -> Iterator[list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    size = 0
    for commit in commits:
        rows.append(commit.to_dict())
        size += _text_size(commit)
        if size >= ROW_GROUP_BYTES:
            yield rows
            rows, size = [], 0
    if rows:
        yield rows


def _text_size(commit: Commit) -> int:
    """Rough byte size of a commit's strings (characters, which is enough to cut row groups)."""
    size = len(commit.message)
    for f in commit.files:
        size += len(f.before or "") + len(f.after or "")
        size += sum(len(line) + 1 for h in f.hunks for line in h.lines)
    return size
