"""Bugs from the user's own history: bug-fix commits whose tests fail before the fix and pass
after become a manifest, a benchmark of their own code (the Defects4J recipe: the fix commit's
tree, including any tests it added, with the one fixed source file put back as it was).

A commit qualifies when its message reads like a fix, it has one parent, and it changes exactly
one non-test source file (code in a known language; docs, config and tests may change too) in
one chunk (first to last changed line, as RepairLLaMA counts it) of at most `max_span` lines,
and not only in comments, docstrings or layout. Each candidate then runs in the sandbox, newest
first: with the developer's fix (must pass), then without it (must fail, and get past test
collection: tests that cannot load on the buggy version need code the fix added). Every commit
that does not become a bug is counted under the reason it was dropped (`Funnel`).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from repotune.config import BUGFIX_PATTERN
from repotune.errors import UserError
from repotune.sandbox.manifest import Bug

_TEST_PATH = re.compile(r"(^|/)(tests?|spec|testing)(/|$)|(^|/)test_[^/]*$|_test\.[^/]+$", re.I)

# Old commits run under today's pytest and Python, whose new deprecation warnings the project
# never saw; a project that turns warnings into errors (click: filterwarnings = ["error"]) then
# fails at collection on every old commit. pytest's own -W filters come after the project's, so
# they win (PYTHONWARNINGS does not: the ini filters are applied after it). Tests that check a
# deprecation still see it: pytest.warns and deprecated_call record every warning.
IGNORE_DEPRECATIONS = {
    "PYTEST_ADDOPTS": "-W ignore::DeprecationWarning -W ignore::PendingDeprecationWarning"
}

# Why candidates were dropped, in funnel order: first the commit's shape, then the test runs.
REASONS = {
    "merge": "merge commit",
    "no_code": "no source file changed (docs, config or tests only)",
    "several_files": "more than one source file changed",
    "not_modified": "source file added, deleted or renamed",
    "not_text": "source file is not UTF-8 text",
    "too_big": "changed lines span more than --max-span",
    "cosmetic": "comment, docstring or layout change only",
    "setup_error": "setup failed or the sandbox could not run it",
    "no_build": "fixed or buggy version does not build",
    "warning_error": "collection error: a warning turned into an error",
    "collection_error": "collection error: the tests could not be loaded",
    "timeout": "timeout",
    "fixed_fails": "fixed version fails its tests",
    "buggy_passes": "buggy version passes its tests",
    "buggy_collection": "buggy version fails at collection (the tests need code the fix added)",
    "not_run": "left out: --max-bugs reached (not run, or confirmed past the limit)",
}
_STATIC = ("merge", "no_code", "several_files", "not_modified", "not_text", "too_big", "cosmetic")

# pytest's signs that the tests never ran: a collection error (a path without ::test in the
# short summary), or a conftest or test module that failed to import.
_COLLECTION = re.compile(
    r"(?m)^ERROR [^\s:]+(?: - .*)?$|errors? during collection|^_+ ERROR collecting "
    r"|ImportError while (?:loading conftest|importing test module)"
)
_WARNING = re.compile(r"(?m)^(?:E\s+|ERROR \S+ - )((?:\w+\.)*\w*Warning):")


@dataclass
class Funnel:
    """How many commits were looked at, and where each one that is not a bug dropped out."""

    commits: int = 0
    fix_messages: int = 0
    dropped: Counter = field(default_factory=Counter)
    candidates: int = 0
    runs: int = 0
    bugs: int = 0
    warnings: Counter = field(default_factory=Counter)  # categories that failed collection
    warnings_ignored: bool = False

    def to_dict(self) -> dict:
        return {
            "commits": self.commits,
            "fix_messages": self.fix_messages,
            "dropped": {r: self.dropped[r] for r in REASONS if self.dropped[r]},
            "candidates": self.candidates,
            "test_runs": self.runs,
            "bugs": self.bugs,
            "warnings_as_errors": dict(self.warnings),
            "deprecations_ignored": self.warnings_ignored,
        }

    def lines(self) -> list[str]:
        """The funnel as the command prints it, one reason a line."""
        out = [f"{self.commits} commits, {self.fix_messages} with a fix message"]
        out += self._dropped(_STATIC)
        out.append(f"  = {self.candidates} candidates, run in the sandbox ({self.runs} test runs)")
        out += self._dropped([r for r in REASONS if r not in _STATIC])
        out.append(f"  = {self.bugs} bugs")
        if self.warnings:
            out.append(self.warning_hint())
        return out

    def warning_hint(self) -> str:
        """Which warnings broke collection, and the pytest flag that avoids them."""
        names = ", ".join(f"{c} ({n})" for c, n in self.warnings.most_common())
        cats = list(self.warnings)
        if all(re.search(r"Deprecat|RemovedIn", c) for c in cats):
            flag = "-W ignore::DeprecationWarning"
            how = "(the default: drop --keep-deprecations)" if not self.warnings_ignored else ""
        else:
            flag = " ".join(f"-W ignore::{c}" for c in cats)
            how = "in the test command or PYTEST_ADDOPTS"
        return (
            f"  warnings the project's filterwarnings turned into collection errors: {names}; "
            f"pytest's {flag} {how} avoids them, as does -p no:warnings"
        ).replace("  avoids", " avoids")

    def _dropped(self, reasons) -> list[str]:
        width = len(str(max(self.dropped.values(), default=0)))
        return [f"  -{self.dropped[r]:<{width}} {REASONS[r]}" for r in reasons if self.dropped[r]]


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
    pattern: str = BUGFIX_PATTERN,
    env: dict[str, str] | None = None,
    funnel: Funnel | None = None,
) -> list[Bug]:
    """Bug-fix commits that fit the shape above, newest first (not yet run)."""
    import pygit2

    try:
        pyrepo = pygit2.Repository(str(repo))
    except pygit2.GitError:
        raise UserError(f"not a git repository: {repo}") from None
    if pyrepo.head_is_unborn:
        raise UserError(f"{repo} has no commits")
    funnel = funnel if funnel is not None else Funnel()
    regex = re.compile(pattern, re.IGNORECASE)  # as build.repair.bugfix_pattern is matched
    bugs: list[Bug] = []
    walker = pyrepo.walk(pyrepo.head.target, pygit2.enums.SortMode.TIME)
    for i, commit in enumerate(walker):
        if i >= max_commits:
            break
        funnel.commits += 1
        if not regex.search(commit.message):
            continue
        funnel.fix_messages += 1
        shaped = _shape(pyrepo, commit, max_span)
        if isinstance(shaped, str):
            funnel.dropped[shaped] += 1
            continue
        path, chunk = shaped
        parent = commit.parents[0]
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
                env=dict(env or {}),
                meta={"subject": commit.message.split("\n", 1)[0][:200]},
            )
        )
    funnel.candidates = len(bugs)
    return bugs


def _shape(pyrepo, commit, max_span: int) -> tuple[str, FixChunk] | str:
    """(the fixed file, its chunk), or why the commit is no candidate (a REASONS key)."""
    from repotune.code.cosmetic import is_cosmetic
    from repotune.code.languages import is_code, language_for_path

    if len(commit.parents) != 1:
        return "merge"
    parent = commit.parents[0]
    sources = []
    for patch in pyrepo.diff(parent, commit):
        delta = patch.delta
        for path in dict.fromkeys((delta.old_file.path, delta.new_file.path)):
            if not is_test_path(path) and is_code(language_for_path(path)):
                sources.append((path, delta.status_char()))
    if not sources:
        return "no_code"
    if len(sources) > 1:
        return "several_files"
    path, status = sources[0]
    if status != "M":
        return "not_modified"
    try:
        before = pyrepo[parent.tree[path].id].data.decode("utf-8")
        after = pyrepo[commit.tree[path].id].data.decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return "not_text"
    chunk = fix_chunk(before, after, max_span)
    if chunk is None:
        return "too_big"
    if is_cosmetic(before, after, language_for_path(path)):
        return "cosmetic"
    return path, chunk


@dataclass
class _Checked:
    reason: str | None  # None: a confirmed bug
    warning: str | None  # the category, when a warning broke collection
    runs: int


def confirm_bugs(
    bugs: list[Bug],
    validator_factory: Callable[[list[Bug]], object],
    max_bugs: int | None = None,
    on_done: Callable[[int], None] | None = None,
    funnel: Funnel | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Bug]:
    """Keep the bugs whose fix passes and whose buggy version fails its tests; add context.

    Candidates run newest first, as many at a time as the validator has workers; once
    `max_bugs` are confirmed no new one starts (those running finish). The buggy version runs
    only after the fix passed: a fix that fails makes no bug either way.
    """
    from repotune.evaluate.repair_eval import function_context

    funnel = funnel if funnel is not None else Funnel()
    if not bugs:
        return []
    with validator_factory(bugs) as validator:
        if say is not None:  # where the tests import the project from, once, before the runs
            for line in validator.import_notes(bugs[0].id):
                say(line)

        def check(bug: Bug) -> _Checked:
            fixed = validator.validate([(bug.id, bug.fix or "")])[0]
            runs = int(not fixed.cached)  # cached outcomes ran in an earlier mine or check
            if fixed.outcome != "test_pass":
                return _Checked(*_why_failed(fixed, "fixed_fails"), runs)
            buggy = validator.validate([(bug.id, validator.buggy_span(bug.id))])[0]
            runs += not buggy.cached
            if buggy.outcome == "test_pass":
                return _Checked("buggy_passes", None, runs)
            if buggy.outcome == "test_fail" and not _COLLECTION.search(buggy.log):
                return _Checked(None, None, runs)
            return _Checked(*_why_failed(buggy, "buggy_collection", "buggy_collection"), runs)

        # A window of `workers` candidates in flight, topped up one by one, so that nothing
        # new starts once enough bugs are confirmed (an executor fed every candidate up front
        # starts the next one before the last result can be looked at).
        checked: dict[int, _Checked] = {}
        todo = iter(enumerate(bugs))
        workers = max(1, getattr(validator, "workers", 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            running: dict = {}
            while True:
                enough = max_bugs is not None and (
                    sum(c.reason is None for c in checked.values()) >= max_bugs
                )
                while not enough and len(running) < workers:
                    i, bug = next(todo, (None, None))
                    if bug is None:
                        break
                    running[pool.submit(check, bug)] = i
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    checked[running.pop(future)] = future.result()
                    if on_done:
                        on_done(1)
        kept = []
        for i, bug in enumerate(bugs):
            result = checked.get(i, _Checked("not_run", None, 0))
            if result.reason is None and max_bugs is not None and len(kept) >= max_bugs:
                result = _Checked("not_run", None, result.runs)  # confirmed past the limit
            funnel.runs += result.runs
            if result.warning:
                funnel.warnings[result.warning] += 1
            if result.reason is not None:
                funnel.dropped[result.reason] += 1
                continue
            bug.context = function_context(bug, validator.original(bug.id))
            kept.append(bug)
    funnel.bugs = len(kept)
    return kept


def _why_failed(
    outcome, otherwise: str, collection: str = "collection_error"
) -> tuple[str, str | None]:
    """The funnel reason for a failed run, and the warning category if a warning broke
    collection."""
    if outcome.outcome == "error":
        return "setup_error", None
    if outcome.outcome == "timeout":
        return "timeout", None
    if outcome.outcome == "compile_error":
        return "no_build", None
    if _COLLECTION.search(outcome.log):
        if warning := _WARNING.search(outcome.log):
            return "warning_error", warning.group(1)
        return collection, None
    return otherwise, None
