"""One commit -> one Commit row, with pygit2, faithful to `git log --numstat --first-parent`
(renames paired by libgit2's similarity, not git's: `rename_measure`).

Each blob is read once (a small cache serves the next commit, whose `after` is often this one's
`before`), diffed with libgit2's xdiff, decoded and scrubbed once. Rows are plain dicts in the
Parquet schema (`store.COMMIT_SCHEMA`), so a worker never builds dataclasses it would only
convert back. `mine_commits` keeps the small in-memory API: select, mine, dedup, in one process.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import DeltaStatus, DiffFind, FileMode

from repotune.code.languages import language_for_path
from repotune.code.secrets import (
    PRIVATE_KEY,
    LineEdits,
    Scrubber,
    file_type,
    has_private_key,
    replace_lines,
)
from repotune.config import MineConfig
from repotune.mine.dedup import Deduper, signature
from repotune.mine.select import (
    commit_message,
    open_repo,
    path_filter,
    resolve_ref,
    select_commits,
    text_path,
)
from repotune.records import Commit

__all__ = [
    "CommitMiner",
    "Mined",
    "mine_commits",
    "open_repo",
    "path_filter",
    "rename_measure",
    "resolve_ref",
]

_CHANGE_TYPES = {
    DeltaStatus.ADDED: "added",
    DeltaStatus.DELETED: "deleted",
    DeltaStatus.MODIFIED: "modified",
    DeltaStatus.RENAMED: "renamed",
    DeltaStatus.COPIED: "copied",
    DeltaStatus.TYPECHANGE: "modified",
}
# git's defaults for `git log -M`: 50 % similarity, diff.renameLimit 1000. The similarity
# itself is libgit2's, which git's is not (see `rename_measure`).
RENAME_THRESHOLD = 50
RENAME_LIMIT = 1000
_HUNK = re.compile(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_HUNK_LINE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@.*$", re.MULTILINE)
_SIGNS = (" ", "+", "-")
_CACHE_BYTES = 32 << 20  # per cache (blobs, texts), per worker
# Trailers that name people (`Signed-off-by: Ada <ada@example.com>`): hashed with the author.
_TRAILER = re.compile(r"^([A-Za-z-]+-by|Cc):[ \t]*([^<\n]*?)[ \t]*<([^>\n]*)>", re.MULTILINE)


def rename_measure(cfg: MineConfig) -> dict[str, Any]:
    """How renames were paired, for mine_stats.json. libgit2 scores a pair by its sampled
    line-hash signature (leading whitespace ignored); git by the bytes of 64-byte-or-line
    chunks the new file keeps. Both cut at 50, yet near it they can decide a pair differently
    (8 of 2,145 commits on pallets/click), and pygit2 takes no other measure, so the row's
    pairing is libgit2's, and this says so."""
    return {
        "by": f"libgit2 {pygit2.LIBGIT2_VERSION}",
        "similarity": "libgit2 (line-hash signature), not git's byte count",
        "threshold": RENAME_THRESHOLD,
        "rename_limit": RENAME_LIMIT,
        "copies": cfg.find_copies,
    }


@dataclass
class Mined:
    """A kept commit: its row, plus what the run needs later (dedup keys, counts)."""

    row: dict[str, Any]
    changed_lines: int
    secrets: list[str] = field(default_factory=list)
    exact: bytes | None = None
    minhash: bytes | None = None


@dataclass
class _Side:
    """One blob as a file's text: decoded (or why not) and scrubbed, cached by blob id."""

    text: str | None
    encoding: str | None
    skip: str | None
    secrets: list[str]
    edits: LineEdits = field(default_factory=dict)  # its lines that scrubbing changed

    @property
    def derivable(self) -> bool:
        """UTF-8 text, scrubbed: another version of it can be scrubbed from its edits."""
        return self.skip is None and self.encoding is None

    @property
    def clean(self) -> bool:
        """UTF-8 text in which nothing was scrubbed."""
        return self.derivable and not self.secrets


class CommitMiner:
    """Mines commits of one repository; one per process, since it owns caches."""

    def __init__(self, repo: pygit2.Repository, cfg: MineConfig) -> None:
        self.repo = repo
        self.cfg = cfg
        self.keep_path = path_filter(cfg.include, cfg.exclude)
        self.languages = set(cfg.languages)
        self.scrubber = Scrubber(cfg.secret_placeholder) if cfg.scrub_secrets else None
        self.find_flags = DiffFind.FIND_RENAMES | (DiffFind.FIND_COPIES if cfg.find_copies else 0)
        self._blobs: dict[pygit2.Oid, pygit2.Blob] = {}
        self._blob_bytes = 0
        self._sides: dict[tuple[pygit2.Oid, object], _Side] = {}
        self._side_chars = 0

    def mine(self, commit: pygit2.Commit) -> Mined | str:
        """The commit's row, or the reason it is dropped. Cheap checks come before text."""
        try:
            if commit.parents:
                diff = commit.parents[0].tree.diff_to_tree(commit.tree)
            else:  # root commit: against the empty tree
                diff = commit.tree.diff_to_tree(swap=True)
        except pygit2.GitError:  # a tree missing (a partial clone) or damaged
            return "missing_object"
        diff.find_similar(
            self.find_flags,
            rename_threshold=RENAME_THRESHOLD,
            copy_threshold=RENAME_THRESHOLD,
            rename_limit=RENAME_LIMIT,
        )
        deltas = list(diff.deltas)
        if not deltas:
            return "empty"
        deltas = [d for d in deltas if self._keep(d)]
        if not deltas:
            return "no_files_after_filters"
        if self.cfg.max_changed_files is not None and len(deltas) > self.cfg.max_changed_files:
            return "too_many_files"
        files = [self._diff_file(d) for d in deltas]
        changed = sum(f.added + f.deleted for f in files if f.kind_skip is None)
        if self.cfg.max_changed_lines is not None and changed > self.cfg.max_changed_lines:
            return "too_many_lines"
        secrets: list[str] = []
        rows = [self._file_row(f, secrets) for f in files]
        message = commit_message(commit)
        if self.scrubber is not None:
            message, found = self.scrubber.message(message)
            secrets += found
        author = commit.author.raw_name.decode("utf-8", "replace")
        if self.cfg.hash_authors:
            author = self._pseudonym(commit.author.raw_email.decode("utf-8", "replace"))
            message = _TRAILER.sub(lambda m: f"{m[1]}: {self._pseudonym(m[3])}", message)
        row = {
            "sha": str(commit.id),
            "parents": [str(p) for p in commit.parent_ids],
            "author_time": int(commit.author.time),
            "committer_time": int(commit.commit_time),
            "author": author,
            "message": message,
            "files": rows,
        }
        exact = minhash = None
        if self.cfg.dedup != "off":
            exact, minhash = signature(rows, near=self.cfg.dedup == "near")
        return Mined(row, changed, secrets, exact, minhash)

    def _keep(self, delta: pygit2.DiffDelta) -> bool:
        path = _delta_path(delta)
        if not self.keep_path(path):
            return False
        return not self.languages or language_for_path(path) in self.languages

    def _pseudonym(self, email: str) -> str:
        """Same person, same pseudonym across a run (and across runs with the same salt)."""
        key = (self.cfg.author_salt + email.strip().lower()).encode("utf-8")
        return "author-" + hashlib.sha256(key).hexdigest()[:16]

    # --- one file ----------------------------------------------------------------------------

    def _diff_file(self, delta: pygit2.DiffDelta) -> _FileDiff:
        status = delta.status
        modes = {delta.old_file.mode, delta.new_file.mode}
        old_id = None if status == DeltaStatus.ADDED else delta.old_file.id
        new_id = None if status == DeltaStatus.DELETED else delta.new_file.id
        f = _FileDiff(delta, old_id, new_id)
        if FileMode.COMMIT in modes:  # git counts a gitlink change as one "Subproject" line
            f.kind_skip = "submodule"
            f.added = int(new_id is not None and FileMode.COMMIT == delta.new_file.mode)
            f.deleted = int(old_id is not None and FileMode.COMMIT == delta.old_file.mode)
            return f
        try:
            old, new = self._blob(old_id), self._blob(new_id)
        except (KeyError, pygit2.GitError):  # a partial clone's absent blob, or damage:
            f.kind_skip = "missing_object"  # count nothing, keep the path
            return f
        patch = pygit2.Patch.create_from(old, new, context_lines=self.cfg.context_lines)
        f.old, f.new = old, new
        if patch.delta.is_binary:
            f.kind_skip = "binary"
        else:
            _, f.added, f.deleted = patch.line_stats
            f.patch = patch.data
        if FileMode.LINK in modes:
            f.kind_skip = "symlink"
        return f

    def _file_row(self, f: _FileDiff, secrets: list[str]) -> dict[str, Any]:
        delta = f.delta
        old_path = None if f.old_id is None else text_path(delta.old_file.path)
        new_path = None if f.new_id is None else text_path(delta.new_file.path)
        path = new_path or old_path or ""
        skip, before, after, encoding, hunks = f.kind_skip, None, None, None, []
        if skip is None:
            skip, sides = self._texts(f, path)
            if skip == "secret":
                secrets.append(PRIVATE_KEY)
        if skip is None:
            old, new = sides
            before, after = (s.text if s is not None else None for s in sides)
            encoding = (old and old.encoding) or (new and new.encoding)
            codecs = tuple((s and s.encoding) or "utf-8" for s in (old, new or old))
            secrets += (old.secrets if old else []) + (new.secrets if new else [])
            scrub = not all(side.clean for side in sides if side is not None)
            hunks = self._hunks(f.patch, path, codecs, secrets, scrub)
        return {
            "old_path": old_path,
            "new_path": new_path,
            "change_type": _CHANGE_TYPES.get(delta.status, "modified"),
            "language": language_for_path(path),
            "before": before,
            "after": after,
            "added": f.added,
            "deleted": f.deleted,
            "hunks": hunks,
            "skip_reason": skip,
            "encoding": encoding,
        }

    def _texts(self, f: _FileDiff, path: str) -> tuple[str | None, list[_Side | None]]:
        """(skip reason, [old side, new side]). If either side cannot be kept, neither is, so
        a record never pairs real text with a hole."""
        blobs = [b for b in (f.old, f.new) if b is not None]
        if any(b.size > self.cfg.max_file_bytes for b in blobs):
            return "too_large", []
        ftype = file_type(path) if self.scrubber is not None else None
        pair = (f.old, f.new)
        sides = [self._sides.get((b.id, ftype)) if b is not None else None for b in pair]
        for i, blob in enumerate(pair):
            if blob is not None and sides[i] is None:
                other = sides[1 - i]
                if self.scrubber is not None and other is not None and other.derivable:
                    side = self._derived_side(blob, f.patch, b"-+"[i : i + 1], other, path)
                else:
                    side = self._read_side(blob, path)
                self._remember((blob.id, ftype), side)
                sides[i] = side
        for side in sides:
            if side is not None and side.skip is not None:
                return side.skip, []
        return None, sides

    def _remember(self, key: tuple[pygit2.Oid, object], side: _Side) -> None:
        """Sides are cached by blob and file type (scrubbing depends on the path only through
        detect-secrets' file type): the next older commit's `after` is this one's `before`."""
        size = len(side.text or "")
        while self._sides and self._side_chars + size > _CACHE_BYTES:
            old = self._sides.pop(next(iter(self._sides)))
            self._side_chars -= len(old.text or "")
        self._sides[key] = side
        self._side_chars += size

    def _read_side(self, blob: pygit2.Blob, path: str) -> _Side:
        data = _content(blob)
        encoding = None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if self.cfg.encoding_fallback is None:
                return _Side(None, None, "not_utf8", [])
            encoding = self.cfg.encoding_fallback
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return _Side(None, None, "not_decodable", [])
            data = text.encode("utf-8", "surrogatepass")
        secrets: list[str] = []
        if self.scrubber is not None:
            if has_private_key(data):
                return _Side(None, None, "secret", [])
            scrubbed, secrets, edits = self.scrubber.scan(data, path)
            if secrets:
                text = scrubbed.decode("utf-8", "surrogatepass")
                return _Side(text, encoding, None, secrets, edits)
        return _Side(text, encoding, None, secrets)

    def _derived_side(
        self, blob: pygit2.Blob, patch: bytes, sign: bytes, other: _Side, path: str
    ) -> _Side:
        """A side scrubbed from the other side of the patch, UTF-8 text already scrubbed.
        Scrubbing decides line by line, on the line alone, and each line of this side is
        either a line of the other side or one the patch marks with `sign`: so only those are
        scanned, and the lines to replace are the other side's edits and theirs."""
        data = _content(blob)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._read_side(blob, path)
        start = patch.find(b"\n@@") + 1  # where the hunks start
        lines = patch[start:].split(b"\n")
        changed = b"\n".join([line[1:] for line in lines if line[:1] == sign])
        if not start or has_private_key(changed):
            return self._read_side(blob, path)  # rare: as a text never seen
        assert self.scrubber is not None
        edits = {**other.edits, **self.scrubber.scan(changed, path)[2]}
        if not edits:
            return _Side(text, None, None, [])
        scrubbed, secrets, edits = replace_lines(data, edits)
        if secrets:
            text = scrubbed.decode("utf-8", "surrogatepass")
        return _Side(text, None, None, secrets, edits)

    def _hunks(
        self, patch: bytes, path: str, codecs: tuple[str, str], secrets: list[str], scrub: bool
    ) -> list[dict[str, Any]]:
        """Hunks parsed from the patch text: ' ', '-', '+' lines (no newline); libgit2's
        '\\ No newline at end of file' markers dropped. '-' lines decode as the old side,
        the others as the new side. `scrub=False`: no line can hold a secret (both sides are
        clean), only the headers' function context is checked."""
        if codecs == ("utf-8", "utf-8"):  # '\n' is never inside a UTF-8 character
            hunks = _utf8_hunks(patch.decode("utf-8", "replace"))
        else:
            hunks = _coded_hunks(patch, codecs)
        if self.scrubber is not None:
            for h in hunks:
                if scrub:
                    h["lines"], found = self.scrubber.diff_lines(h["lines"], path)
                    secrets += found
                h["header"], found_in_header = self.scrubber.header(h["header"], path)
                secrets += found_in_header
        return hunks

    def _blob(self, oid: pygit2.Oid | None) -> pygit2.Blob | None:
        """A blob, loaded once; recent ones are kept since consecutive commits share them."""
        if oid is None:
            return None
        blob = self._blobs.get(oid)
        if blob is None:
            blob = self.repo[oid]
            size = blob.size
            while self._blobs and self._blob_bytes + size > _CACHE_BYTES:
                self._blob_bytes -= self._blobs.pop(next(iter(self._blobs))).size
            self._blobs[oid] = blob
            self._blob_bytes += size
        return blob


@dataclass
class _FileDiff:
    delta: pygit2.DiffDelta
    old_id: pygit2.Oid | None
    new_id: pygit2.Oid | None
    old: pygit2.Blob | None = None
    new: pygit2.Blob | None = None
    added: int = 0
    deleted: int = 0
    kind_skip: str | None = None
    patch: bytes = b""


def _hunk(m: re.Match[str] | re.Match[bytes], header: str) -> dict[str, Any]:
    return {
        "old_start": int(m[1]),
        "old_lines": 1 if m[2] is None else int(m[2]),
        "new_start": int(m[3]),
        "new_lines": 1 if m[4] is None else int(m[4]),
        "header": header,
        "lines": [],
    }


def _utf8_hunks(patch: str) -> list[dict[str, Any]]:
    """`_coded_hunks` of a patch decoded as a whole: one split per hunk, no loop per line."""
    heads = list(_HUNK_LINE.finditer(patch))
    hunks = []
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(patch)
        body = patch[m.end() + 1 : end].removesuffix("\n")
        lines = body.split("\n") if body else []
        if body.startswith("\\") or "\n\\" in body:  # a "\ No newline ..." marker
            lines = [line for line in lines if line[:1] in _SIGNS]
        hunk = _hunk(m, m[0])
        hunk["lines"] = lines
        hunks.append(hunk)
    return hunks


def _coded_hunks(patch: bytes, codecs: tuple[str, str]) -> list[dict[str, Any]]:
    hunks: list[dict[str, Any]] = []
    old_codec, new_codec = codecs
    for raw in patch.split(b"\n"):
        head = raw[:1]
        if head == b"@":
            m = _HUNK.match(raw)
            if m is not None:
                hunks.append(_hunk(m, raw.decode(new_codec, "replace")))
        elif hunks and head in (b" ", b"+", b"-"):
            codec = old_codec if head == b"-" else new_codec
            hunks[-1]["lines"].append(raw.decode(codec, "replace"))
    return hunks


def _content(blob: pygit2.Blob) -> bytes:
    """A loaded blob's bytes. Not `blob.data`, which reads (inflates) the object again: the
    buffer a blob exposes is the content libgit2 already holds."""
    return bytes(memoryview(blob))


def _delta_path(delta: pygit2.DiffDelta) -> str:
    if delta.status == DeltaStatus.DELETED:
        return text_path(delta.old_file.path)
    return text_path(delta.new_file.path)


def mine_commits(repo_path: Path, cfg: MineConfig) -> tuple[list[Commit], dict[str, int]]:
    """Mine in this process, in memory: kept commits newest first, and dropped counts by
    reason. `run_mine` does the same work in parallel shards on disk; use it for real runs."""
    repo_path = Path(repo_path)
    repo = open_repo(repo_path)
    selection = select_commits(repo, repo_path, cfg)
    miner = CommitMiner(repo, cfg)
    dropped: Counter[str] = Counter(selection.dropped)
    mined: list[Mined] = []
    with fast_reads():
        for sha in selection.shas:
            result = miner.mine(repo[sha])
            if isinstance(result, str):
                dropped[result] += 1
            else:
                mined.append(result)
    deduper = Deduper(cfg.dedup, cfg.near_dup_threshold)
    keep = [True] * len(mined)
    for i in reversed(range(len(mined))):  # oldest first: the first copy is the one kept
        reason = deduper.check(i, mined[i].exact, mined[i].minhash)
        if reason is not None:
            dropped[reason] += 1
            keep[i] = False
    commits = [Commit.from_dict(m.row) for m, k in zip(mined, keep) if k]
    return commits, dict(dropped)


@contextmanager
def fast_reads() -> Iterator[None]:
    """libgit2 re-hashes every object it reads unless told not to; git itself does not (it
    checks on fsck and fetch), and skipping it makes mining ~2x faster."""
    pygit2.settings.enable_strict_hash_verification(False)
    try:
        yield
    finally:
        pygit2.settings.enable_strict_hash_verification(True)
