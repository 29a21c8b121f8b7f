"""Bugs from history: only fix commits whose tests fail before and pass after become bugs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from repotune.config import EvalExecConfig
from repotune.evaluate.bugs import Funnel, candidate_bugs, confirm_bugs, fix_chunk, is_test_path
from repotune.evaluate.exec_run import run_bugs_check
from tests.support.gitrepo import git

CALC = "def add(a, b):\n    return a {op} b\n\n\ndef mul(a, b):\n    return a * b\n"
TESTS = "from calc import add, mul\n\nassert mul(2, 3) == 6\n"


def _commit(repo, message, files, t):
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, time=t)
    return git(repo, "rev-parse", "HEAD").strip()


def _history(repo):
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    t = 1_700_000_000
    _commit(repo, "Add a calculator", {"calc.py": CALC.format(op="-"), "test_calc.py": TESTS}, t)
    fix = _commit(
        repo,
        "Fix add returning the difference",
        {"calc.py": CALC.format(op="+"), "test_calc.py": TESTS + "assert add(2, 3) == 5\n"},
        t + 10,
    )
    fixed = CALC.format(op="+")
    _commit(repo, "Fix wording", {"calc.py": "# Calculator.\n" + fixed}, t + 20)
    faster = "# Calculator.\n" + fixed.replace("a * b", "b * a")
    _commit(repo, "Make mul faster", {"calc.py": faster}, t + 30)
    _commit(repo, "Fix two files", {"other.py": "X = 2\n", "calc.py": faster + "\n"}, t + 40)
    return fix


def test_fix_chunk_shapes():
    assert fix_chunk("a\nb\nc\n", "a\nB\nc\n", 5).__dict__ == {"first": 2, "last": 2, "fix": "B\n"}
    # a pure insertion takes the line above into the chunk
    assert fix_chunk("a\nc\n", "a\nb\nc\n", 5).__dict__ == {"first": 1, "last": 1, "fix": "a\nb\n"}
    assert fix_chunk("c\n", "b\nc\n", 5).__dict__ == {"first": 1, "last": 1, "fix": "b\nc\n"}
    assert fix_chunk("a\n", "a\n", 5) is None
    assert fix_chunk("a\nb\nc\nd\n", "A\nb\nc\nD\n", 3) is None  # first..last is 4 lines
    assert is_test_path("tests/x.py") and is_test_path("pkg/test_x.py")
    assert is_test_path("x_test.go") and not is_test_path("src/contest.py")


def test_mines_only_real_bugs_and_the_manifest_checks(tmp_path):
    repo = tmp_path / "repo"
    fix = _history(repo)
    funnel = Funnel()
    shaped = candidate_bugs(repo, "python test_calc.py", funnel=funnel)
    assert [b.meta["subject"] for b in shaped] == ["Fix add returning the difference"]
    assert funnel.commits == 5 and funnel.fix_messages == 3 and funnel.candidates == 1
    assert funnel.dropped == {"cosmetic": 1, "several_files": 1}  # a comment; other.py added

    out = tmp_path / "bugs.jsonl"
    env = {**os.environ, "REPOTUNE_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, "-m", "repotune.cli", "bugs", "mine", str(repo),
         "--test-command", "python test_calc.py", "--output", str(out), "--timeout", "20"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (bug,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert bug["commit"] == fix and bug["buggy_commit"] == git(repo, "rev-parse", "HEAD~4").strip()
    assert bug["file"] == "calc.py" and bug["span"] == [2, 2]
    assert bug["fix"] == "    return a + b\n" and bug["context"] == [1, 2]
    assert "1 bugs ->" in res.stderr

    table, ok = run_bugs_check(out, EvalExecConfig(cache=False), say=lambda s: None)
    assert ok, table


# -- a src/ layout project whose older release is installed in the environment ----------------
CALC_SRC = '''def add(a, b):
    return a {add} b


def mean(xs):
    """Average of xs."""
    return {mean}


def neg(x):
    return {neg}
'''
BUGGY = {"add": "-", "mean": "sum(xs) / len(xs)", "neg": "x"}
FIXED = {"add": "+", "mean": "sum(xs) / len(xs) if xs else 0.0", "neg": "-x"}
PYPROJECT = '[tool.pytest.ini_options]\ntestpaths = ["tests"]\nfilterwarnings = ["error"]\n'
# every version warns on import, as old code does under today's libraries
INIT = 'import warnings\n\nwarnings.warn("old API", DeprecationWarning)\nfrom .calc import *\n'
TEST_MEAN = "from planted import mean\n\n\ndef test_mean():\n    assert mean([]) == 0.0\n"


def _calc(**fixed) -> str:
    return CALC_SRC.format(**{k: FIXED[k] if fixed.get(k) else BUGGY[k] for k in BUGGY})


def _src_history(repo) -> dict[str, str]:
    """Two planted bugs among commits that must each drop out for a named reason."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "src" / "planted").mkdir(parents=True)
    (repo / "tests").mkdir()
    t, ids = 1_700_000_000, {}
    steps = [
        ("Add planted", {"pyproject.toml": PYPROJECT, "src/planted/__init__.py": INIT,
                         "src/planted/calc.py": _calc(),
                         "tests/test_add.py": "def test_nothing():\n    pass\n"}),
        ("Fix add returning the difference", {"src/planted/calc.py": _calc(add=1),
         "tests/test_add.py": "from planted import add\n\n\ndef test_add():\n"
                              "    assert add(2, 3) == 5\n"}),
        ("Fix a typo in the README", {"README.md": "Planted bugs.\n"}),
        ("Fix the docstring of mean", {"src/planted/calc.py": _calc(add=1).replace(
            '"""Average of xs."""', '"""The average of xs\n    (the arithmetic mean)."""')}),
        ("Fix mean of an empty list", {"src/planted/calc.py": _calc(add=1, mean=1),
                                       "tests/test_mean.py": TEST_MEAN}),
        ("Add a changelog", {"CHANGES.md": "- fixes\n"}),
        ("Fix neg, which no test checks", {"src/planted/calc.py": _calc(add=1, mean=1, neg=1)}),
        ("Fix a flaky test", {"tests/test_mean.py": TEST_MEAN + "\n"}),
    ]  # fmt: skip
    for i, (message, files) in enumerate(steps):
        ids[message] = _commit(repo, message, files, t + 10 * i)
    return ids


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory):
    """The project's history, and a throwaway virtualenv whose python sees repotune and pytest
    and has the project's first commit installed: the copy a src/ layout's tests would import."""
    import sysconfig

    root = tmp_path_factory.mktemp("shadowed")
    repo = root / "planted-repo"
    ids = _src_history(repo)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    main_site = sysconfig.get_paths()["purelib"]
    (site / "_repotune_env.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
    old = root / "old"
    old.mkdir()
    subprocess.run(
        f"git -C {repo} archive {ids['Add planted']} src | tar -x -C {old}", shell=True, check=True
    )
    shutil.copytree(old / "src" / "planted", site / "planted")
    return repo, venv, ids


def _mine(shadowed, tmp_path, *args):
    repo, venv, _ = shadowed
    out = tmp_path / "bugs.jsonl"
    env = {**os.environ, "REPOTUNE_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "repotune.cli", "bugs", "mine", str(repo),
         "--test-command", "python -m pytest -q", "--output", str(out), "--timeout", "30", *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    stats = json.loads((tmp_path / "bugs.stats.json").read_text())
    return [json.loads(line) for line in out.read_text().splitlines()], stats, res.stderr


def test_src_layout_finds_the_planted_bugs_over_an_installed_old_copy(shadowed, tmp_path):
    repo, venv, ids = shadowed
    bugs, stats, err = _mine(shadowed, tmp_path)
    assert [b["commit"] for b in bugs] == [
        ids["Fix mean of an empty list"],
        ids["Fix add returning the difference"],
    ]
    assert all(b["file"] == "src/planted/calc.py" for b in bugs)
    # the installed copy was there to shadow the project, and was not what the tests imported
    (note,) = [line for line in err.splitlines() if line.startswith("planted:")]
    assert "(src/ first on PYTHONPATH)" in note and str(venv) in note
    assert stats["commits"] == 8 and stats["fix_messages"] == 6 and stats["candidates"] == 3
    assert stats["dropped"] == {"no_code": 2, "cosmetic": 1, "buggy_passes": 1}
    assert stats["test_runs"] == 6 and stats["bugs"] == 2
    assert stats["deprecations_ignored"] and not stats["warnings_as_errors"]
    assert "-1 comment, docstring or layout change only" in err and "= 2 bugs" in err

    # the manifest carries the warning filter it was mined with, so the check agrees
    env = {**os.environ, "REPOTUNE_CACHE": str(tmp_path / "cache2")}
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "repotune.cli", "bugs", "check",
         str(tmp_path / "bugs.jsonl")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("| yes |") == 2


def test_max_bugs_stops_at_the_first_confirmed_bug(shadowed, tmp_path):
    _, _, ids = shadowed
    bugs, stats, _ = _mine(shadowed, tmp_path, "--max-bugs", "1", "--set", "eval_exec.workers=1")
    assert [b["commit"] for b in bugs] == [ids["Fix mean of an empty list"]]
    # newest first: 'Fix neg' (fix passes, bug passes), then 'Fix mean': 4 runs, not 6
    assert stats["test_runs"] == 4
    assert stats["dropped"]["not_run"] == 1 and stats["dropped"]["buggy_passes"] == 1


def test_a_warning_that_breaks_collection_is_named_with_its_flag(shadowed, tmp_path):
    bugs, stats, err = _mine(shadowed, tmp_path, "--keep-deprecations")
    assert bugs == []
    assert stats["dropped"]["warning_error"] == 3 and stats["test_runs"] == 3
    assert stats["warnings_as_errors"] == {"DeprecationWarning": 3}
    assert "collection error: a warning turned into an error" in err
    assert (
        "-W ignore::DeprecationWarning (the default: drop --keep-deprecations)" in err
        and "-p no:warnings" in err
    )


class _CountingValidator:
    """Stands in for the sandbox: bug 'b<i>' is real when i is in `real`; counts every run."""

    def __init__(self, real: set[int], workers: int) -> None:
        self.real, self.workers, self.runs = real, workers, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def import_notes(self, bug_id):
        return []

    def buggy_span(self, bug_id):
        return "BUGGY"

    def original(self, bug_id):
        return "x = 1\n"

    def validate(self, jobs):
        from repotune.sandbox.validate import Outcome

        (bug_id, text), i = jobs[0], int(jobs[0][0][1:])
        self.runs.append((bug_id, text))
        fails = text == "BUGGY" and i in self.real
        return [Outcome("test_fail" if fails else "test_pass", "", 0.0)]


@pytest.mark.parametrize("workers", [1, 3])
def test_max_bugs_starts_nothing_once_enough_bugs_are_confirmed(workers):
    from repotune.sandbox.manifest import Bug

    bugs = [Bug(f"b{i}", "r", "f.py", (1, 1), "t", fix="FIX") for i in range(20)]
    validator = _CountingValidator(real={2, 3, 9, 15}, workers=workers)
    funnel = Funnel()
    kept = confirm_bugs(bugs, lambda _: validator, max_bugs=2, funnel=funnel)
    assert [b.id for b in kept] == ["b2", "b3"]
    # each candidate runs its fix, then its bug; at most workers - 1 others were in flight
    assert len(validator.runs) <= 2 * (4 + workers - 1)
    assert funnel.runs == len(validator.runs) and funnel.bugs == 2
    assert funnel.dropped["not_run"] >= 20 - 4 - (workers - 1)
    assert sum(funnel.dropped.values()) + len(kept) == 20


def test_a_test_command_that_bypasses_the_scratch_copy_is_named(shadowed, tmp_path):
    """`python -I` ignores PYTHONPATH: its tests would import the installed copy, and the
    probe says so in one line."""
    from repotune.sandbox import Sandbox
    from repotune.sandbox.manifest import Bug
    from repotune.sandbox.validate import Validator

    repo, venv, ids = shadowed
    fix = ids["Fix mean of an empty list"]
    lines = {}
    for name, cmd in [("isolated", f"{venv}/bin/python -I -m pytest -q"), ("plain", "pytest")]:
        bug = Bug(name, str(repo), "src/planted/calc.py", (7, 7), cmd, commit=fix)
        with Sandbox(read_paths=[venv]) as sandbox, Validator([bug], sandbox) as validator:
            lines[name] = validator.import_notes(name)
    (warning,) = lines["isolated"]
    assert warning.startswith(f"warning: `{venv}/bin/python -I` in the test command imports")
    assert "planted from" in warning and "site-packages" in warning
    assert lines["plain"] == []  # this interpreter has no other planted: nothing to say
