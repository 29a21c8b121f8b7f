"""Bug manifests: one bug a JSONL line, the benchmark format `validate` and `evaluate` read.

A bug names a project (`repo`, a folder or a git repository, optionally at `commit`), a `file`
and the `span` of 1-based lines a candidate replaces, and the commands that set up, build and
test the project. Four optional fields extend the issue's list: `buggy_commit` (take `file` from
this commit, the rest from `commit`: how bugs mined from history keep the fix's new tests) and
`fix` (the known-correct replacement of the span, used by `repotune bugs check`), `env`
(variables every command of the bug gets: how `bugs mine` records the warning filter it ran
with, so checks and evaluations run the bug as it was mined), and `label` (the bug's class,
such as a CWE: `evaluate --bugs` reports per label, and shows it in the prompt when
`build.repair.show_label` is on, as the training prompts did).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repotune.errors import UserError
from repotune.fsutil import read_jsonl, write_jsonl

_FIELDS = {
    "id", "repo", "commit", "buggy_commit", "file", "span", "context", "setup_command",
    "build_command", "test_command", "timeout", "fix", "language", "env", "label", "meta",
}  # fmt: skip


@dataclass
class Bug:
    id: str
    repo: str
    file: str
    span: tuple[int, int]
    test_command: str
    commit: str | None = None
    buggy_commit: str | None = None
    context: tuple[int, int] | None = None
    setup_command: str | None = None
    build_command: str | None = None
    timeout: float = 60.0
    fix: str | None = None
    language: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["span"] = list(self.span)
        d["context"] = list(self.context) if self.context else None
        return {k: v for k, v in d.items() if v not in (None, {}) or k in ("span",)}

    def lang(self) -> str | None:
        if self.language:
            return self.language
        from repotune.code.languages import language_for_path

        return language_for_path(self.file)


def parse_bug(d: dict[str, Any], where: str, base: Path | None = None) -> Bug:
    """Check one manifest line; relative `repo` paths are relative to the manifest's folder."""
    unknown = set(d) - _FIELDS
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("id", "repo", "file", "span", "test_command"):
        if d.get(key) in (None, ""):
            raise UserError(f"{where}: missing '{key}'")
    span = _pair(d["span"], f"{where}: span")
    context = _pair(d["context"], f"{where}: context") if d.get("context") else None
    if context and not (context[0] <= span[0] and span[1] <= context[1]):
        raise UserError(f"{where}: span {list(span)} is not inside context {list(context)}")
    repo = Path(str(d["repo"])).expanduser()
    if not repo.is_absolute() and base is not None:
        repo = base / repo
    timeout = d.get("timeout", 60.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise UserError(f"{where}: timeout must be a positive number of seconds")
    env = d.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise UserError(f"{where}: env must map variable names to strings")
    label = d.get("label")
    if label is not None and not isinstance(label, str):
        raise UserError(f'{where}: label must be text, such as "CWE-476"')
    return Bug(
        id=str(d["id"]),
        repo=str(repo),
        file=str(d["file"]),
        span=span,
        test_command=str(d["test_command"]),
        commit=d.get("commit"),
        buggy_commit=d.get("buggy_commit"),
        context=context,
        setup_command=d.get("setup_command"),
        build_command=d.get("build_command"),
        timeout=float(timeout),
        fix=d.get("fix"),
        language=d.get("language"),
        env=dict(env),
        label=(" ".join(label.split()) or None) if label else None,
        meta=dict(d.get("meta") or {}),
    )


def _pair(value: Any, what: str) -> tuple[int, int]:
    ok = isinstance(value, list | tuple) and len(value) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or value[0] < 1 or value[1] < value[0]:
        raise UserError(f"{what} must be [first, last] 1-based lines with first <= last")
    return int(value[0]), int(value[1])


def load_bugs(path: Path) -> list[Bug]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"bug manifest not found: {path}")
    bugs = [parse_bug(d, f"{path}:{i}", path.parent) for i, d in enumerate(read_jsonl(path), 1)]
    seen: set[str] = set()
    for bug in bugs:
        if bug.id in seen:
            raise UserError(f"{path}: duplicate bug id '{bug.id}'")
        seen.add(bug.id)
    if not bugs:
        raise UserError(f"{path}: no bugs")
    return bugs


def save_bugs(path: Path, bugs: list[Bug]) -> None:
    write_jsonl(path, (b.to_dict() for b in bugs))


# -- the project a bug lives in ---------------------------------------------------------------
def export_project(bug: Bug, dst: Path) -> None:
    """Write the buggy project into `dst`: the folder as it is, or the tree at `commit`
    (with `file` from `buggy_commit` when given). `.git` is never copied."""
    from repotune.sandbox.box import copy_tree

    repo = Path(bug.repo)
    if not repo.is_dir():
        raise UserError(f"bug {bug.id}: repo not found: {repo}")
    if bug.commit is None:
        copy_tree(repo, dst)
    else:
        pyrepo = _open_git(repo, bug)
        _write_tree(pyrepo, _commit(pyrepo, bug.commit, bug).tree, dst)
    if bug.buggy_commit is not None:
        pyrepo = _open_git(repo, bug)
        blob = _commit(pyrepo, bug.buggy_commit, bug).tree[bug.file]
        (dst / bug.file).parent.mkdir(parents=True, exist_ok=True)
        (dst / bug.file).write_bytes(pyrepo[blob.id].data)
    if not (dst / bug.file).is_file():
        raise UserError(f"bug {bug.id}: {bug.file} is not in the project")


def source_fingerprint(bug: Bug) -> str:
    """What identifies the project's content, for caching: commit ids, or a hash of the files."""
    repo = Path(bug.repo)
    if bug.commit is not None:
        pyrepo = _open_git(repo, bug)
        ids = [str(_commit(pyrepo, bug.commit, bug).id)]
        if bug.buggy_commit:
            ids.append(str(_commit(pyrepo, bug.buggy_commit, bug).id))
        return ":".join(ids)
    h = hashlib.sha256()
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            p = Path(root) / name
            h.update(str(p.relative_to(repo)).encode() + b"\0")
            try:
                h.update(p.read_bytes() if not p.is_symlink() else os.readlink(p).encode())
            except OSError:
                h.update(b"?")
    return h.hexdigest()


def bug_fingerprint(bug: Bug, source: str) -> str:
    """Everything that changes what a candidate's run means."""
    d = bug.to_dict()
    for k in ("fix", "meta", "language", "label"):
        d.pop(k, None)
    return hashlib.sha256(json.dumps([d, source], sort_keys=True).encode()).hexdigest()


def _open_git(repo: Path, bug: Bug):
    import pygit2

    try:
        return pygit2.Repository(str(repo))
    except pygit2.GitError:
        raise UserError(f"bug {bug.id}: {repo} is not a git repository") from None


def _commit(pyrepo, rev: str, bug: Bug):
    import pygit2

    try:
        return pyrepo.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise UserError(f"bug {bug.id}: commit {rev} not found") from None


def _write_tree(pyrepo, tree, dst: Path) -> None:
    from pygit2.enums import FileMode

    dst.mkdir(parents=True, exist_ok=True)
    for entry in tree:
        path = dst / entry.name
        if entry.type_str == "tree":
            _write_tree(pyrepo, pyrepo[entry.id], path)
        elif entry.type_str == "blob":
            data = pyrepo[entry.id].data
            if entry.filemode == FileMode.LINK:
                os.symlink(data.decode(), path)
            else:
                path.write_bytes(data)
                if entry.filemode == FileMode.BLOB_EXECUTABLE:
                    path.chmod(0o755)
        # submodules (commit entries) are left out: their content is not in this repository


# -- candidates --------------------------------------------------------------------------------
def apply_candidate(text: str, original: str, span: tuple[int, int]) -> str:
    """`original` with lines span[0]..span[1] (1-based, inclusive) replaced by `text`."""
    lines = original.splitlines(keepends=True)
    first, last = span
    if last > len(lines):
        raise ValueError(f"span {list(span)} is past the end of the file ({len(lines)} lines)")
    new = text if text.endswith("\n") or not text else text + "\n"
    return "".join(lines[: first - 1]) + new + "".join(lines[last:])


def span_text(original: str, span: tuple[int, int]) -> str:
    lines = original.splitlines(keepends=True)
    return "".join(lines[span[0] - 1 : span[1]])


def normalize_candidate(text: str) -> str:
    """Trailing spaces and blank lines at the ends never change behaviour: identical after this
    means run once."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines) + ("\n" if lines else "")
