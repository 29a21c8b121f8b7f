"""Git history -> Commit records, in-process with pygit2 (≈3.5× faster than PyDriller), with
per-file counts that match `git log --numstat --first-parent` so later stages can trust them."""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, DiffFind, FileMode, SortMode
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from repotune.code.languages import language_for_path
from repotune.config import MineConfig
from repotune.errors import UserError
from repotune.records import Commit, FileChange, Hunk

_CHANGE_TYPES = {
    DeltaStatus.ADDED: "added",
    DeltaStatus.DELETED: "deleted",
    DeltaStatus.MODIFIED: "modified",
    DeltaStatus.RENAMED: "renamed",
    DeltaStatus.COPIED: "copied",
    DeltaStatus.TYPECHANGE: "modified",
}
# Skip reasons whose files are not text: they do not count towards max_changed_lines.
_NOT_TEXT = {"binary", "symlink", "submodule"}


def mine_commits(repo_path: Path, cfg: MineConfig) -> tuple[list[Commit], dict[str, int]]:
    """Walk non-merge history from `cfg.ref`, newest first; return kept commits and a count
    of dropped commits by reason (merge, empty, no_files_after_filters, too_many_lines)."""
    repo_path = Path(repo_path)
    repo = open_repo(repo_path)
    start = resolve_ref(repo, repo_path, cfg.ref)
    keep_path = path_filter(cfg.include, cfg.exclude)
    kept: list[Commit] = []
    dropped: Counter[str] = Counter()
    with _progress(cfg.max_commits) as advance:
        for commit in _walk(repo, start, cfg.max_commits, dropped):
            result = _mine_commit(repo, commit, cfg, keep_path)
            if isinstance(result, str):
                dropped[result] += 1
            else:
                kept.append(result)
            advance()
    return kept, dict(dropped)


def open_repo(path: Path) -> pygit2.Repository:
    """Open a repository (a subfolder finds its repository, as with git) or raise UserError."""
    if not path.exists():
        raise UserError(f"repository path does not exist: {path}")
    try:
        repo = pygit2.Repository(str(path))
    except pygit2.GitError:
        raise UserError(f"not a git repository: {path}") from None
    if repo.head_is_unborn and not list(repo.references):
        raise UserError(f"repository has no commits: {path}")
    return repo


def resolve_ref(repo: pygit2.Repository, repo_path: Path, ref: str) -> pygit2.Commit:
    """The commit a revision (branch, tag, sha, HEAD~3, ...) names, or UserError."""
    try:
        obj = repo.revparse_single(ref)
    except (KeyError, ValueError, pygit2.GitError):
        raise UserError(f"unknown ref '{ref}' in {repo_path}") from None
    try:
        return obj.peel(pygit2.Commit)
    except (ValueError, pygit2.GitError):
        raise UserError(f"ref '{ref}' in {repo_path} does not name a commit") from None


def path_filter(include: list[str], exclude: list[str]) -> Callable[[str], bool]:
    """Keep a path if it matches any include glob (or there are none) and no exclude glob.

    Globs: `*` and `?` stay inside one path segment, `**` spans segments. A glob without '/'
    matches any segment (`*.py`, `vendor`); one with '/' is anchored at the repository root.
    A glob that matches a folder matches everything under it (`src/vendor` = `src/vendor/**`).
    """
    inc = [_compile_glob(g) for g in include]
    exc = [_compile_glob(g) for g in exclude]

    def keep(path: str) -> bool:
        if inc and not any(m(path) for m in inc):
            return False
        return not any(m(path) for m in exc)

    return keep


def _compile_glob(glob: str) -> Callable[[str], bool]:
    anchored = "/" in glob.strip("/")
    rx = re.compile(_glob_to_regex(glob.strip("/")))

    def match(path: str) -> bool:
        parts = path.split("/")
        if not anchored:
            return any(rx.fullmatch(p) for p in parts)
        return any(rx.fullmatch("/".join(parts[:k])) for k in range(1, len(parts) + 1))

    return match


def _glob_to_regex(glob: str) -> str:
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**", i):
            i += 2
            if glob.startswith("/", i):  # `a/**/b` also matches `a/b`
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            neg = body[0] in "!^"
            body = re.escape(body[1:] if neg else body).replace(r"\-", "-")
            out.append(f"[{'^' if neg else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _walk(
    repo: pygit2.Repository, start: pygit2.Commit, limit: int | None, dropped: Counter[str]
) -> Iterator[pygit2.Commit]:
    """Non-merge commits, children before parents, newest first; stop after `limit`."""
    seen = 0
    for commit in repo.walk(start.id, SortMode.TOPOLOGICAL | SortMode.TIME):
        if limit is not None and seen >= limit:
            return
        if len(commit.parent_ids) > 1:
            dropped["merge"] += 1
            continue
        seen += 1
        yield commit


def _mine_commit(
    repo: pygit2.Repository,
    commit: pygit2.Commit,
    cfg: MineConfig,
    keep_path: Callable[[str], bool],
) -> Commit | str:
    """The Commit record, or the reason it is dropped. Cheap checks run before blobs are read."""
    if commit.parents:
        diff = commit.parents[0].tree.diff_to_tree(commit.tree, context_lines=cfg.context_lines)
    else:  # root commit: against the empty tree
        diff = commit.tree.diff_to_tree(context_lines=cfg.context_lines, swap=True)
    diff.find_similar(DiffFind.FIND_RENAMES)
    deltas = list(diff.deltas)
    if not deltas:
        return "empty"
    patches = [diff[i] for i, d in enumerate(deltas) if keep_path(_delta_path(d))]
    if not patches:
        return "no_files_after_filters"
    changed = sum(sum(_line_counts(p)) for p in patches if _kind_skip(p.delta) is None)
    if cfg.max_changed_lines is not None and changed > cfg.max_changed_lines:
        return "too_many_lines"
    return Commit(
        sha=str(commit.id),
        parents=[str(p) for p in commit.parent_ids],
        author_time=int(commit.author.time),
        committer_time=int(commit.commit_time),
        author=_decode(commit.author.raw_name),
        message=_message(commit),
        files=[_file_change(repo, p, cfg.max_file_bytes) for p in patches],
    )


def _delta_path(delta: pygit2.DiffDelta) -> str:
    if delta.status == DeltaStatus.DELETED:
        return delta.old_file.path
    return delta.new_file.path


def _file_change(repo: pygit2.Repository, patch: pygit2.Patch, max_bytes: int) -> FileChange:
    delta = patch.delta
    status = delta.status
    old_path = None if status == DeltaStatus.ADDED else delta.old_file.path
    new_path = None if status == DeltaStatus.DELETED else delta.new_file.path
    added, deleted = _line_counts(patch)
    skip = _kind_skip(delta)
    before = after = None
    if skip is None:
        before, after, skip = _texts(repo, delta, max_bytes)
    return FileChange(
        old_path=old_path,
        new_path=new_path,
        change_type=_CHANGE_TYPES.get(status, "modified"),
        language=language_for_path(new_path or old_path or ""),
        before=before,
        after=after,
        added=added,
        deleted=deleted,
        hunks=_hunks(patch) if skip is None else [],
        skip_reason=skip,
    )


def _kind_skip(delta: pygit2.DiffDelta) -> str | None:
    """Why a file's text is not kept, judged from modes and libgit2's binary check."""
    modes = {delta.old_file.mode, delta.new_file.mode}
    if FileMode.COMMIT in modes:
        return "submodule"
    if FileMode.LINK in modes:
        return "symlink"
    if delta.is_binary:
        return "binary"
    return None


def _line_counts(patch: pygit2.Patch) -> tuple[int, int]:
    """(added, deleted) as `git log --numstat` counts them; 0, 0 for binary files."""
    if patch.delta.is_binary:
        return 0, 0
    _, added, deleted = patch.line_stats
    return added, deleted


def _texts(
    repo: pygit2.Repository, delta: pygit2.DiffDelta, max_bytes: int
) -> tuple[str | None, str | None, str | None]:
    """(before, after, skip_reason); a side that does not exist is None. If either side cannot
    be kept, neither is, so that a record never pairs real text with a hole."""
    sides = [
        None if delta.status == DeltaStatus.ADDED else delta.old_file.id,
        None if delta.status == DeltaStatus.DELETED else delta.new_file.id,
    ]
    blobs = [repo[oid] if oid is not None else None for oid in sides]
    if any(b is not None and b.size > max_bytes for b in blobs):
        return None, None, "too_large"
    try:
        before, after = (b.data.decode("utf-8") if b is not None else None for b in blobs)
    except UnicodeDecodeError:
        return None, None, "not_utf8"
    return before, after, None


def _hunks(patch: pygit2.Patch) -> list[Hunk]:
    """Hunks with ' ', '-', '+' lines; libgit2's end-of-file markers ('=', '<', '>') dropped."""
    return [
        Hunk(
            old_start=h.old_start,
            old_lines=h.old_lines,
            new_start=h.new_start,
            new_lines=h.new_lines,
            header=h.header.rstrip("\n"),
            lines=[
                ln.origin + ln.content.removesuffix("\n") for ln in h.lines if ln.origin in " -+"
            ],
        )
        for h in patch.hunks
    ]


def _message(commit: pygit2.Commit) -> str:
    try:
        return commit.message
    except (LookupError, UnicodeDecodeError):  # unknown or wrong `encoding` header
        return _decode(commit.raw_message)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed or 0.0
        return Text(f"{speed:,.0f} commits/s", style="progress.data.speed")


@contextmanager
def _progress(total: int | None) -> Iterator[Callable[[], None]]:
    """A transient bar on stderr; off when stderr is not a terminal or REPOTUNE_QUIET=1."""
    quiet = os.environ.get("REPOTUNE_QUIET") == "1" or not sys.stderr.isatty()
    columns = (SpinnerColumn(), TextColumn("mining"), BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns,
        _RateColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("mine", total=total)
        yield lambda: bar.advance(task)
