"""The records stages exchange. Plain dataclasses so they round-trip through Parquet and JSONL
without a schema library, and so another tool can produce them by hand."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_SPACES = re.compile(r"\s+")


def squash_spaces(text: str) -> str:
    """Whitespace runs as one space, none at the ends: texts that differ only in spacing are
    the same example (build's leak checks) and the same answer (completion exact match)."""
    return _SPACES.sub(" ", text).strip()


def is_changed_line(line: str) -> bool:
    """A diff line that removes or adds (git's `-`/`+` prefix). Spelled once: the inline
    `line[:1] in "+-"` is also true for an empty line, a blank unchanged one once stripped."""
    return line[:1] in ("-", "+")


@dataclass
class Hunk:
    """One diff hunk; `lines` keep git's prefixes (' ', '-', '+')."""

    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    header: str
    lines: list[str] = field(default_factory=list)


@dataclass
class FileChange:
    """One file touched by a commit. `before`/`after` are None when the text is not kept
    (binary, too large, undecodable); `skip_reason` then says why. `encoding` names the
    fallback codec when the text was not UTF-8 (None: UTF-8)."""

    old_path: str | None
    new_path: str | None
    change_type: str  # added | deleted | modified | renamed | copied
    language: str | None
    before: str | None
    after: str | None
    added: int
    deleted: int
    hunks: list[Hunk] = field(default_factory=list)
    skip_reason: str | None = None
    encoding: str | None = None

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


@dataclass
class Commit:
    sha: str
    parents: list[str]
    author_time: int
    committer_time: int
    author: str
    message: str
    files: list[FileChange] = field(default_factory=list)
    # The repository's name in a run of several (`repotune run A B`); None in a run of one.
    repo: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Commit:
        files = []
        for f in d.get("files") or []:
            hunks = [Hunk(**h) for h in (f.get("hunks") or [])]
            files.append(FileChange(**{**f, "hunks": hunks}))
        return cls(**{**d, "files": files, "parents": list(d.get("parents") or [])})


@dataclass
class Example:
    """One training/eval row. `prompt + completion` is the whole text; loss on `completion`."""

    id: str
    task: str
    prompt: str
    completion: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        return cls(
            id=d["id"],
            task=d["task"],
            prompt=d["prompt"],
            completion=d["completion"],
            meta=dict(d.get("meta") or {}),
        )


@dataclass
class Candidate:
    """A model's output for an example; `outcome` is set once validated."""

    example_id: str
    model: str
    rank: int
    text: str
    score: float | None = None
    outcome: str | None = None  # applied|compile_error|test_fail|test_pass|timeout|error
    log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
