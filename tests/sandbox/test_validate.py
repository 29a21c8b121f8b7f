"""Validation on a manifest of 12 Python and 3 C bugs built on the fly: known fixes pass, the
unchanged bugs fail, broken candidates are compile errors, identical ones run once, and a
re-run comes from the cache."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from repotune.errors import UserError
from repotune.sandbox import Limits, Sandbox
from repotune.sandbox.bugsuite import C_BUGS, PYTHON_BUGS, make_suite
from repotune.sandbox.manifest import (
    apply_candidate,
    load_bugs,
    normalize_candidate,
    parse_bug,
)
from repotune.sandbox.validate import OutcomeCache, Validator


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return make_suite(tmp_path_factory.mktemp("suite"))


@pytest.fixture()
def sandbox():
    with Sandbox(Limits(memory_mb=1024, max_processes=32)) as sb:
        yield sb


def test_known_fixes_pass_and_unchanged_bugs_fail(suite, sandbox, tmp_path):
    bugs = load_bugs(suite)
    assert len([b for b in bugs if b.lang() == "python"]) >= 10
    assert len([b for b in bugs if b.lang() == "c"]) >= 3
    with Validator(bugs, sandbox, workers=2) as v:
        jobs = []
        for b in bugs:
            jobs += [(b.id, b.fix), (b.id, v.buggy_span(b.id))]
        outcomes = v.validate(jobs)
    got = {(jobs[i][0], i % 2): o.outcome for i, o in enumerate(outcomes)}
    for b in bugs:
        assert got[(b.id, 0)] == "test_pass", (b.id, outcomes)
        assert got[(b.id, 1)] == "test_fail", b.id


def test_compile_errors_timeouts_and_errors(suite, sandbox):
    bugs = {b.id: b for b in load_bugs(suite)}
    bugs["maximum"].timeout = 1.5
    with Validator(list(bugs.values()), sandbox, workers=2) as v:
        outcomes = v.validate(
            [
                ("sum-to", "    for i in range(1, n + 1:\n"),  # Python syntax error
                ("c-abs", "\treturn x > 0 ? x : -x\n"),  # C: missing semicolon
                ("maximum", "        while True:\n            pass\n"),  # never ends
                ("reverse", "    return s[::-1]\n" * 2 + "x = (\n"),  # syntax error
            ]
        )
    assert [o.outcome for o in outcomes] == [
        "compile_error",
        "compile_error",
        "timeout",
        "compile_error",
    ]
    assert "SyntaxError" in outcomes[0].log
    assert "error" in outcomes[1].log and "[build: exit" in outcomes[1].log


def test_identical_candidates_run_once_and_reruns_are_cached(suite, sandbox, tmp_path):
    bugs = load_bugs(suite)
    cache = OutcomeCache(tmp_path / "cache.jsonl")
    jobs = [
        ("is-even", "    return n % 2 == 0\n"),
        ("is-even", "    return n % 2 == 0   \n\n"),  # same after trimming
        ("is-even", "    return n % 2 != 1\n"),
    ]
    with Validator(bugs, sandbox, workers=2, cache=cache) as v:
        first = v.validate(jobs)
    assert [o.outcome for o in first] == ["test_pass", "test_pass", "test_pass"]
    assert [o.cached for o in first] == [False, True, False]
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2

    with Validator(bugs, sandbox, cache=OutcomeCache(tmp_path / "cache.jsonl")) as v:
        again = v.validate([*jobs, ("is-even", "    return not n % 2\n")])
    assert [o.cached for o in again] == [True, True, True, False]


def test_bad_span_is_an_error_not_a_crash(suite, sandbox, tmp_path):
    line = json.loads(suite.read_text().splitlines()[0])
    line.update(id="too-far", span=[40, 41], repo=str(suite.parent / line["repo"]))
    bug = parse_bug(line, "test")
    with Validator([bug], sandbox) as v:
        (out,) = v.validate([("too-far", "pass\n")])
    assert out.outcome == "error" and "past the end" in out.log


def test_manifest_checks():
    good = {"id": "a", "repo": "r", "file": "f.py", "span": [2, 3], "test_command": "true"}
    assert parse_bug(good, "x").span == (2, 3)
    for bad, msg in [
        ({**good, "span": [3, 2]}, "span"),
        ({**good, "span": [0, 1]}, "span"),
        ({**good, "context": [3, 9]}, "not inside context"),
        ({**good, "oops": 1}, "unknown field"),
        ({k: v for k, v in good.items() if k != "test_command"}, "test_command"),
    ]:
        with pytest.raises(UserError, match=msg):
            parse_bug(bad, "x")


def test_apply_and_normalize():
    text = "a\nb\nc\n"
    assert apply_candidate("B1\nB2", text, (2, 2)) == "a\nB1\nB2\nc\n"
    assert apply_candidate("", text, (1, 2)) == "c\n"
    with pytest.raises(ValueError):
        apply_candidate("x", text, (3, 4))
    assert normalize_candidate("\n  x  \n\n") == "  x\n"


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "repotune.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_validate_and_bugs_check(suite, tmp_path, monkeypatch):
    import os

    env = {**os.environ, "REPOTUNE_CACHE": str(tmp_path / "cache")}
    patches = tmp_path / "patches.jsonl"
    rows = [{"id": b[0], "text": b[3], "model": "fixes"} for b in PYTHON_BUGS[:3]]
    rows += [{"id": C_BUGS[0][0], "text": "\treturn x;\n", "model": "wrong"}]
    patches.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = _cli("validate", "--bugs", str(suite), "--patches", str(patches), env=env)
    assert res.returncode == 0, res.stderr
    assert "| sum-to | 1/1 | – |" in res.stdout
    assert "| c-abs | – | 0/1 |" in res.stdout
    assert "sandbox:" in res.stderr
    out = [json.loads(x) for x in (tmp_path / "patches.outcomes.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in out] == ["test_pass"] * 3 + ["test_fail"]

    res = _cli("bugs", "check", str(suite), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("| yes |") == len(PYTHON_BUGS) + len(C_BUGS)

    res = _cli("validate", "--bugs", str(suite), "--patches", str(tmp_path / "nope.jsonl"))
    assert res.returncode == 2 and "patches not found" in res.stderr
