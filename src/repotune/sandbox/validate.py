"""Validate candidate patches by running each bug's build and tests on them, in the sandbox.

Each bug's project is exported and set up once (a template folder); each candidate runs in a
fresh copy of it. A Python project's import roots (`src/`, then the root) go first on
PYTHONPATH, so its tests import that copy, not one installed in the environment (importpath.py).
Identical candidates (after trimming trailing whitespace) run once, and outcomes are cached by
(bug, project content, candidate) so a re-run only runs what is new.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from repotune.errors import UserError
from repotune.sandbox.box import Limits, RunResult, Sandbox
from repotune.sandbox.importpath import check_imports, import_roots, pythonpath_env
from repotune.sandbox.manifest import (
    Bug,
    apply_candidate,
    bug_fingerprint,
    export_project,
    normalize_candidate,
    source_fingerprint,
    span_text,
)

OUTCOMES = ("test_pass", "test_fail", "compile_error", "timeout", "error")
LOG_CHARS = 3000


@dataclass
class Outcome:
    outcome: str
    log: str
    seconds: float
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Prepared:
    template: Path | None
    original: str
    fingerprint: str
    error: str | None = None
    roots: list[str] = field(default_factory=list)


class OutcomeCache:
    """Append-only JSONL of {key, outcome, log, seconds}; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file_lock = FileLock(str(self.path) + ".lock")
        self._rows: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._rows[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by a crash: that candidate simply runs again

    def get(self, key: str) -> Outcome | None:
        row = self._rows.get(key)
        if row is None:
            return None
        return Outcome(row["outcome"], row.get("log", ""), row.get("seconds", 0.0), cached=True)

    def put(self, key: str, outcome: Outcome) -> None:
        if outcome.outcome == "error":
            return  # infrastructure trouble may be gone next time
        row = {
            "key": key,
            "outcome": outcome.outcome,
            "log": outcome.log,
            "seconds": outcome.seconds,
        }
        with self._lock, self._file_lock:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            self._rows[key] = row


class Validator:
    """Runs candidates for a set of bugs; `validate` is safe to call several times."""

    def __init__(
        self,
        bugs: Sequence[Bug],
        sandbox: Sandbox,
        workers: int | None = None,
        cache: OutcomeCache | None = None,
    ) -> None:
        self.bugs = {b.id: b for b in bugs}
        self.sandbox = sandbox
        self.workers = workers or os.cpu_count() or 1
        self.cache = cache
        self._prepared: dict[str, _Prepared] = {}
        self._locks = {b.id: threading.Lock() for b in bugs}

    def close(self) -> None:
        for prep in self._prepared.values():
            if prep.template is not None:
                self.sandbox.remove(prep.template)
        self._prepared.clear()

    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def original(self, bug_id: str) -> str:
        """The buggy file's text (exported once)."""
        return self._prepare(self.bugs[bug_id]).original

    def template(self, bug_id: str) -> Path | None:
        """The bug's exported, set-up project (None when preparing it failed)."""
        prep = self._prepare(self.bugs[bug_id])
        return None if prep.error else prep.template

    def problem(self, bug_id: str) -> str | None:
        """Why the bug's project could not be exported or set up, if it could not."""
        return self._prepare(self.bugs[bug_id]).error

    def import_notes(self, bug_id: str) -> list[str]:
        """What a probe finds about where the bug's tests import the project from (one line
        each; nothing when all is as expected or the project is not Python)."""
        bug = self.bugs[bug_id]
        prep = self._prepare(bug)
        if prep.error or prep.template is None or not prep.roots:
            return []
        env = self._env(bug, prep, prep.template)
        return check_imports(self.sandbox, prep.template, prep.roots, env, bug.test_command)

    def buggy_span(self, bug_id: str) -> str:
        bug = self.bugs[bug_id]
        return span_text(self.original(bug_id), bug.span)

    def validate(
        self,
        jobs: Sequence[tuple[str, str]],
        on_done: Callable[[int], None] | None = None,
    ) -> list[Outcome]:
        """Outcomes for (bug id, candidate text) pairs, in order."""
        for bug_id, _ in jobs:
            if bug_id not in self.bugs:
                raise KeyError(bug_id)
        needed = list(dict.fromkeys(bug_id for bug_id, _ in jobs))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:  # setups run in parallel
            list(pool.map(lambda b: self._prepare(self.bugs[b]), needed))
        keys = [self._key(bug_id, text) for bug_id, text in jobs]
        copies = Counter(keys)
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        results: dict[str, Outcome] = {}
        for key in first:
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                results[key] = hit
        if on_done and results:
            on_done(sum(copies[k] for k in results))

        def work(key: str) -> tuple[str, Outcome]:
            bug_id, text = jobs[first[key]]
            out = self._run_one(self.bugs[bug_id], text)
            if self.cache:
                self.cache.put(key, out)
            return key, out

        todo = [key for key in first if key not in results]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for key, out in pool.map(work, todo):
                results[key] = out
                if on_done:
                    on_done(copies[key])
        return [
            results[key] if first[key] == i else _dup(results[key]) for i, key in enumerate(keys)
        ]

    def _key(self, bug_id: str, text: str) -> str:
        prep = self._prepare(self.bugs[bug_id])
        norm = normalize_candidate(text)
        lim = self._limits(self.bugs[bug_id])
        roots = ",".join(prep.roots)
        return hashlib.sha256(f"{prep.fingerprint}\0{lim}\0{roots}\0{norm}".encode()).hexdigest()

    def _prepare(self, bug: Bug) -> _Prepared:
        """Export and set up the bug's project once; later candidates copy the result."""
        with self._locks[bug.id]:
            if bug.id in self._prepared:
                return self._prepared[bug.id]
            prep = _Prepared(None, "", "")
            try:
                prep.fingerprint = bug_fingerprint(bug, source_fingerprint(bug))
                template = self.sandbox.scratch(f"{bug.id}-template")
                prep.template = template
                export_project(bug, template)
                prep.original = (template / bug.file).read_text(encoding="utf-8")
                prep.roots = import_roots(template)
                self.sandbox.hand_over(template)
                if bug.setup_command:
                    env = self._env(bug, prep, template)
                    res = self.sandbox.run(bug.setup_command, template, self._limits(bug), env)
                    if not res.ok:
                        prep.error = _log("setup failed", bug.setup_command, res)
            except Exception as exc:  # noqa: BLE001 - a broken bug must not stop the others
                prep.error = (
                    str(exc)
                    if isinstance(exc, UserError)
                    else (f"could not prepare bug {bug.id}: {type(exc).__name__}: {exc}")
                )
                prep.fingerprint = prep.fingerprint or f"broken:{bug.id}"
            self._prepared[bug.id] = prep
            return prep

    @staticmethod
    def _env(bug: Bug, prep: _Prepared, folder: Path) -> dict[str, str]:
        """The bug's own variables win: a manifest may set PYTHONPATH itself."""
        return {**pythonpath_env(folder, prep.roots), **bug.env}

    def _limits(self, bug: Bug) -> Limits:
        # The bug's own timeout; CPU seconds then follow it (see Limits).
        return replace(self.sandbox.limits, wall_seconds=bug.timeout, cpu_seconds=None)

    def _run_one(self, bug: Bug, text: str) -> Outcome:
        prep = self._prepare(bug)
        if prep.error or prep.template is None:
            return Outcome("error", prep.error or "not prepared", 0.0)
        try:
            patched = apply_candidate(text, prep.original, bug.span)
        except ValueError as exc:
            return Outcome("error", f"patch does not apply: {exc}", 0.0)
        if bug.lang() == "python":
            try:
                compile(patched, bug.file, "exec", dont_inherit=True)
            except SyntaxError as exc:
                return Outcome("compile_error", _syntax_error(exc), 0.0)
            except (ValueError, RecursionError, MemoryError) as exc:
                return Outcome("compile_error", f"{type(exc).__name__}: {exc}", 0.0)
        work = self.sandbox.scratch(bug.id)
        try:
            from repotune.sandbox.box import copy_tree

            copy_tree(prep.template, work, ignore=())
            (work / bug.file).write_text(patched, encoding="utf-8")
            self.sandbox.hand_over(work)
            limits = self._limits(bug)
            env = self._env(bug, prep, work)
            total = 0.0
            if bug.build_command:
                res = self.sandbox.run(bug.build_command, work, limits, env)
                total += res.seconds
                if not res.ok:
                    return Outcome(
                        _failed(res, "compile_error"), _log("build", bug.build_command, res), total
                    )
            res = self.sandbox.run(bug.test_command, work, limits, env)
            total += res.seconds
            if res.ok:
                return Outcome("test_pass", _log("test", bug.test_command, res), total)
            return Outcome(_failed(res, "test_fail"), _log("test", bug.test_command, res), total)
        finally:
            self.sandbox.remove(work)


def _failed(res: RunResult, otherwise: str) -> str:
    if res.error:
        return "error"
    return "timeout" if res.timed_out else otherwise


def _log(step: str, command: str, res: RunResult) -> str:
    if res.error:
        status = res.error
    elif res.timed_out:
        status = f"timed out after {res.seconds:.1f} s"
    else:
        status = f"exit {res.returncode}"
    return f"$ {command}\n{res.output[-LOG_CHARS:]}\n[{step}: {status}]"


def _syntax_error(exc: SyntaxError) -> str:
    where = f"{exc.filename}:{exc.lineno}" if exc.lineno else str(exc.filename)
    line = (exc.text or "").rstrip()
    return f"{where}: SyntaxError: {exc.msg}" + (f"\n    {line}" if line else "")


def _dup(o: Outcome) -> Outcome:
    return Outcome(o.outcome, o.log, 0.0, cached=True)
