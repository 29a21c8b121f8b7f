"""Bugs from history: only fix commits whose tests fail before and pass after become bugs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gitrepo import git

from repotune.config import EvalExecConfig
from repotune.evaluate.bugs import candidate_bugs, fix_chunk, is_test_path
from repotune.evaluate.exec_run import run_bugs_check

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
    shaped = candidate_bugs(repo, "python test_calc.py")
    assert [b.meta["subject"] for b in shaped] == [
        "Fix wording",
        "Fix add returning the difference",
    ]

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
