"""Which commits to mine: open the repository, resolve `ref` (or a range `A..B`), walk it newest
first and apply the filters that need only commit metadata (merges, dates, authors, messages).

This runs in the main process before any worker starts, so the list of commits, and therefore
the shards and their keys, is fixed by the arguments and the repository alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pygit2
from pygit2.enums import SortMode

from repotune.code.paths import path_filter, text_path  # noqa: F401 (mine's API)
from repotune.code.tree import check_loose_objects
from repotune.config import MineConfig
from repotune.errors import UserError


@dataclass
class Selection:
    """Commits to mine, newest first, and counts of the ones left out by reason."""

    shas: list[str]
    dropped: Counter[str] = field(default_factory=Counter)
    shallow: bool = False


def open_repo(path: Path) -> pygit2.Repository:
    """Open a repository, bare or not, or a worktree (a subfolder finds its repository, as with
    git), or raise UserError."""
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
        if ref == "HEAD" and repo.head_is_unborn:  # e.g. just after `git checkout --orphan`
            raise UserError(
                f"HEAD of {repo_path} is a branch without commits yet: set mine.ref to a "
                "branch, tag or commit"
            ) from None
        raise UserError(f"unknown ref '{ref}' in {repo_path}") from None
    try:
        return obj.peel(pygit2.Commit)
    except (ValueError, pygit2.GitError):
        raise UserError(f"ref '{ref}' in {repo_path} does not name a commit") from None


def select_commits(repo: pygit2.Repository, repo_path: Path, cfg: MineConfig) -> Selection:
    """Walk `cfg.ref` newest first (children before parents); keep up to `max_commits` commits
    that pass the metadata filters. Commits dropped here are counted by reason."""
    check_loose_objects(repo, repo_path)
    start, hide = _range(repo, repo_path, cfg.ref)
    walker = repo.walk(start.id, SortMode.TOPOLOGICAL | SortMode.TIME)
    if hide is not None:
        walker.hide(hide.id)
    boundary = shallow_boundary(repo)
    reject = _metadata_filter(cfg)
    selection = Selection(shas=[], shallow=repo.is_shallow)
    try:
        for commit in walker:
            if cfg.max_commits is not None and len(selection.shas) >= cfg.max_commits:
                break
            sha = str(commit.id)
            reason = "shallow_boundary" if sha in boundary else reject(commit)
            if reason is None:
                selection.shas.append(sha)
            else:
                selection.dropped[reason] += 1
    except pygit2.GitError as exc:  # a commit of the history is missing or unreadable
        detail = exc.args[0] if exc.args else exc
        raise UserError(f"{repo_path}: damaged history ({detail}); see `git fsck`") from None
    return selection


def shallow_boundary(repo: pygit2.Repository) -> set[str]:
    """Commits whose parents a shallow clone cut off: git shows them as root commits, so their
    diff would be the whole tree, not what the commit changed."""
    if not repo.is_shallow:
        return set()
    gitdir = Path(repo.path)
    common = gitdir / "commondir"  # a worktree shares its repository's `shallow` file
    if common.is_file():
        gitdir = (gitdir / common.read_text().strip()).resolve()
    try:
        return set((gitdir / "shallow").read_text().split())
    except OSError:
        return set()


def _range(
    repo: pygit2.Repository, repo_path: Path, ref: str
) -> tuple[pygit2.Commit, pygit2.Commit | None]:
    """`B` -> (B, None); `A..B` -> (B, A): commits reachable from B and not from A."""
    if "..." in ref:
        raise UserError(f"ref '{ref}': symmetric ranges (A...B) are not supported; use A..B")
    if ".." not in ref:
        return resolve_ref(repo, repo_path, ref), None
    old, new = ref.split("..", 1)
    return resolve_ref(repo, repo_path, new or "HEAD"), resolve_ref(repo, repo_path, old or "HEAD")


# --- metadata filters -------------------------------------------------------------------------

_MESSAGE_RULES: dict[str, re.Pattern[str]] = {
    "merge": re.compile(
        r"^merge (?:branch|remote-tracking branch|pull request|tag|commit|changes from)\b"
        r"|^merged? (?:in )?(?:branch )?'[^']+' (?:of|into)\b",
        re.IGNORECASE,
    ),
    "revert": re.compile(r"^revert\b|^this reverts commit [0-9a-f]{7,}", re.IGNORECASE | re.M),
    "version_bump": re.compile(
        r"^(?:\[?(?:chore|build|release)(?:\([^)]*\))?\]?:?\s*)?"
        r"(?:(?:bump(?:ed|s)?|release[sd]?|releasing|prepare(?: for)?(?: release)?|"
        r"preparing(?: release)?|update|set|increment)\s+)?"
        r"(?:(?:the\s+)?(?:version|release)\s+)?(?:to\s+)?v?\d+(?:\.\d+)+(?:[-+.][\w.]+)?\.?$"
        r"|^bump(?:ed|s)? (?:\S+ )?(?:version|from \S+ to \S+)",
        re.IGNORECASE,
    ),
}


def message_reason(message: str, rules: list[str]) -> str | None:
    """Why a message drops its commit (`empty_message`, `merge_message`, `revert`,
    `version_bump`), or None. Rules are CommitPackFT's, on the subject line."""
    subject = message.strip().split("\n", 1)[0].strip()
    if "empty" in rules and not subject:
        return "empty_message"
    for name in ("merge", "revert", "version_bump"):
        if name in rules:
            text = message.strip() if name == "revert" else subject
            if _MESSAGE_RULES[name].search(text):
                return "merge_message" if name == "merge" else name
    return None


def author_filter(globs: list[str]) -> Callable[[str, str], bool]:
    """`excluded(name, email)`: True if a glob matches 'Name <email>', the name or the e-mail,
    ignoring case. Only `*` and `?` are wildcards (so `*[bot]*` means a literal "[bot]")."""
    if not globs:
        return lambda name, email: False
    parts = [re.escape(g).replace(r"\*", ".*").replace(r"\?", ".") for g in globs]
    rx = re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE | re.DOTALL)

    def excluded(name: str, email: str) -> bool:
        return any(rx.fullmatch(s) for s in (f"{name} <{email}>", name, email))

    return excluded


def _metadata_filter(cfg: MineConfig) -> Callable[[pygit2.Commit], str | None]:
    since = _timestamp(cfg.since)
    until = _timestamp(cfg.until)
    excluded = author_filter(cfg.exclude_authors)
    rules = list(cfg.drop_messages)

    def reject(commit: pygit2.Commit) -> str | None:
        if len(commit.parent_ids) > 1 and not cfg.include_merges:
            return "merge"
        t = commit.commit_time
        if (since is not None and t < since) or (until is not None and t >= until):
            return "outside_dates"
        if cfg.exclude_authors:
            author = commit.author
            if excluded(_decode(author.raw_name), _decode(author.raw_email)):
                return "excluded_author"
        if rules:
            return message_reason(commit_message(commit), rules)
        return None

    return reject


def _timestamp(when: datetime | None) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def commit_message(commit: pygit2.Commit) -> str:
    try:
        return commit.message
    except (LookupError, UnicodeDecodeError):  # unknown or wrong `encoding` header
        return _decode(commit.raw_message)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
