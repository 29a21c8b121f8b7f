"""Source files of a git tree (HEAD by default), for the tasks that learn from the current code
rather than its history (fill-in-the-middle, explanations).

Read from git objects with pygit2, never from the work tree: uncommitted edits, ignored build
outputs and the user's checkout stay out of it. Text is scrubbed of secrets the way the mine
stage scrubs commits, since it may be sent to a teacher model.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from repotune.code.languages import language_for_path
from repotune.code.paths import path_filter, text_path
from repotune.errors import UserError

_SYMLINK = 0o120000
# Minified or generated text: one enormous line teaches nothing and wrecks every length cap.
_MAX_LINE_CHARS = 1000


@dataclass(frozen=True)
class SourceFile:
    path: str
    language: str | None
    text: str


@dataclass
class Snapshot:
    """The files kept from one commit's tree, and how many were skipped and why."""

    sha: str
    time: int
    files: list[SourceFile] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def read_tree(
    repo_path: str | Path,
    ref: str = "HEAD",
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    languages: list[str] | None = None,
    max_file_bytes: int = 200_000,
    scrub_secrets: bool = True,
) -> Snapshot:
    """Text files of `ref`'s tree that pass the path and language filters, sorted by path."""
    from repotune.code.secrets import Scrubber  # detect-secrets: loaded when first needed

    try:
        repo = pygit2.Repository(str(repo_path))
    except (pygit2.GitError, KeyError):
        raise UserError(f"not a git repository: {repo_path}") from None
    check_loose_objects(repo, Path(repo_path))
    try:
        commit = repo.revparse_single(ref).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        raise UserError(f"{repo_path}: unknown revision '{ref}'") from None
    keep = path_filter(include or [], exclude or [])
    wanted = set(languages or [])
    scrubber = Scrubber() if scrub_secrets else None
    snap = Snapshot(sha=str(commit.id), time=commit.commit_time)
    for path, entry in _blobs(repo, commit.tree, ""):
        language = language_for_path(path)
        if not keep(path) or (wanted and language not in wanted):
            continue
        reason, text = _text(repo, entry, max_file_bytes)
        if reason is None and text is not None and scrubber is not None:
            text, _ = scrubber.text(text, path)
        if reason is not None or text is None:
            snap.skipped[reason or "empty_file"] += 1
            continue
        snap.files.append(SourceFile(path, language, text))
    snap.files.sort(key=lambda f: f.path)
    return snap


def _blobs(repo, tree, prefix: str) -> Iterator[tuple[str, object]]:
    """Every entry but folders (files, symlinks, submodules), walking into folders."""
    for entry in tree:
        path = f"{prefix}{text_path(entry.name)}"
        if entry.type_str == "tree":
            yield from _blobs(repo, repo[entry.id], path + "/")
        else:
            yield path, entry


def _text(repo, entry, max_bytes: int) -> tuple[str | None, str | None]:
    if entry.type_str != "blob":
        return "submodule", None
    if entry.filemode == _SYMLINK:  # its text is a path, maybe outside the repository
        return "symlink", None
    try:
        blob = repo[entry.id]
    except (KeyError, pygit2.GitError):  # a partial clone's absent blob, or damage
        return "missing_object", None
    if blob.size > max_bytes:
        return "too_large", None
    if blob.is_binary:
        return "binary", None
    try:
        text = blob.data.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8", None
    if not text.strip():
        return "empty_file", None
    text = text.replace("\r\n", "\n")
    if max(len(line) for line in text.split("\n")) > _MAX_LINE_CHARS:
        return "minified", None
    return None, text


def check_loose_objects(repo: pygit2.Repository, repo_path: Path) -> None:
    """UserError if a loose object file is not a whole zlib stream. libgit2 (as bundled with
    pygit2 1.21) loops forever reading a truncated one (libgit2 issue 7342), so a damaged
    object must be found before anything reads it. Git's auto gc packs loose objects past a
    few thousand, so this reads little; packed objects have their own checksums."""
    gitdir = Path(repo.path)
    common = gitdir / "commondir"  # a worktree's objects are its repository's
    if common.is_file():
        gitdir = (gitdir / common.read_text().strip()).resolve()
    objects = gitdir / "objects"
    if not objects.is_dir():
        return
    for folder in os.scandir(objects):
        if len(folder.name) != 2 or not folder.is_dir():
            continue
        for entry in os.scandir(folder.path):
            z = zlib.decompressobj()
            try:
                with open(entry.path, "rb") as fh:
                    while not z.eof and (data := fh.read(1 << 16)):
                        while data and not z.eof:
                            z.decompress(data, 1 << 20)
                            data = z.unconsumed_tail
                why = None if z.eof else "truncated"
            except zlib.error:
                why = "not a zlib stream"
            except OSError as exc:
                why = exc.strerror or "unreadable"
            if why is not None:
                raise UserError(
                    f"{repo_path}: damaged object {folder.name}{entry.name} ({why}); see `git fsck`"
                )
