"""Bugs from the user's own history: bug-fix commits whose tests fail before the fix and pass
after become a manifest, a benchmark of their own code (the Defects4J recipe: the fix commit's
tree, including any tests it added, with the one fixed source file put back as it was).

A commit qualifies when its message reads like a fix, it has one parent, and it changes exactly
one non-test source file in one chunk (first to last changed line, as RepairLLaMA counts it) of
at most `max_span` lines; test files may change too. Each candidate is then run twice in the
sandbox: with the developer's fix (must pass) and without it (must fail).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repotune.errors import UserError
from repotune.evaluate.manifest import Bug

FIX_PATTERN = r"(?i)\b(fix(e[sd])?|bug|repair|correct(s|ed)?|crash|wrong|regression|broken)\b"
_TEST_PATH = re.compile(r"(^|/)(tests?|spec|testing)(/|$)|(^|/)test_[^/]*$|_test\.[^/]+$", re.I)


@dataclass(frozen=True)
class FixChunk:
    """Lines first..last (1-based) of the buggy file, and what the fix put in their place."""

    first: int
    last: int
    fix: str


def fix_chunk(before: str, after: str, max_span: int) -> FixChunk | None:
    """The one chunk from the first to the last changed line; None when too big or empty.

    A pure insertion takes the line above it into the chunk (or below, at the top of a file),
    so that every chunk replaces at least one line.
    """
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    ops = [op for op in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()]
    changed = [op for op in ops if op[0] != "equal"]
    if not changed:
        return None
    a, b = changed[0][1], changed[-1][2]
    c, d = changed[0][3], changed[-1][4]
    if a == b:  # nothing removed: widen by one unchanged line
        if a > 0:
            a, c = a - 1, c - 1
        elif b < len(old):
            b, d = b + 1, d + 1
        else:
            return None
    if b - a > max_span:
        return None
    return FixChunk(a + 1, b, "".join(new[c:d]))


def is_test_path(path: str) -> bool:
    return bool(_TEST_PATH.search(path))


def candidate_bugs(
    repo: Path,
    test_command: str,
    setup_command: str | None = None,
    build_command: str | None = None,
    timeout: float = 60.0,
    max_commits: int = 500,
    max_span: int = 10,
    pattern: str = FIX_PATTERN,
) -> list[Bug]:
    """Bug-fix commits that fit the shape above, newest first (not yet run)."""
    import pygit2

    from repotune.code.languages import language_for_path

    try:
        pyrepo = pygit2.Repository(str(repo))
    except pygit2.GitError:
        raise UserError(f"not a git repository: {repo}") from None
    if pyrepo.head_is_unborn:
        raise UserError(f"{repo} has no commits")
    regex = re.compile(pattern)
    bugs: list[Bug] = []
    walker = pyrepo.walk(pyrepo.head.target, pygit2.enums.SortMode.TIME)
    for i, commit in enumerate(walker):
        if i >= max_commits:
            break
        if len(commit.parents) != 1 or not regex.search(commit.message):
            continue
        parent = commit.parents[0]
        diff = pyrepo.diff(parent, commit)
        sources = []
        ok = True
        for patch in diff:
            delta = patch.delta
            path = delta.new_file.path
            if is_test_path(path):
                continue
            if delta.status_char() != "M" or language_for_path(path) is None:
                ok = False
                break
            sources.append(path)
        if not ok or len(sources) != 1:
            continue
        path = sources[0]
        try:
            before = pyrepo[parent.tree[path].id].data.decode("utf-8")
            after = pyrepo[commit.tree[path].id].data.decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            continue
        chunk = fix_chunk(before, after, max_span)
        if chunk is None:
            continue
        bugs.append(
            Bug(
                id=f"{str(commit.id)[:12]}",
                repo=str(Path(repo).resolve()),
                file=path,
                span=(chunk.first, chunk.last),
                test_command=test_command,
                commit=str(commit.id),
                buggy_commit=str(parent.id),
                setup_command=setup_command,
                build_command=build_command,
                timeout=timeout,
                fix=chunk.fix,
                meta={"subject": commit.message.split("\n", 1)[0][:200]},
            )
        )
    return bugs


def confirm_bugs(
    bugs: list[Bug],
    validator_factory: Callable[[list[Bug]], object],
    max_bugs: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[Bug]:
    """Keep the bugs whose fix passes and whose buggy version fails its tests; add context."""
    from repotune.evaluate.repair_eval import function_context

    if not bugs:
        return []
    with validator_factory(bugs) as validator:
        jobs = []
        for bug in bugs:
            jobs += [(bug.id, bug.fix or ""), (bug.id, validator.buggy_span(bug.id))]
        outcomes = validator.validate(jobs, on_done=on_done)
        kept = []
        for i, bug in enumerate(bugs):
            fixed, buggy = outcomes[2 * i], outcomes[2 * i + 1]
            if fixed.outcome == "test_pass" and buggy.outcome == "test_fail":
                bug.context = function_context(bug, validator.original(bug.id))
                kept.append(bug)
            if max_bugs is not None and len(kept) >= max_bugs:
                break
    return kept
