"""Repair evaluation: IR4 prompts for manifest bugs, N candidates per model, validation,
plausible@k, multi-turn feedback, the per-bug table and the `bugs` section of summary.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from repotune.config import EvalExecConfig, RunConfig
from repotune.evaluate.compare import Contender
from repotune.evaluate.repair_eval import (
    evaluate_repair,
    feedback_prompt,
    repair_prompt_for,
    write_bug_report,
)
from repotune.infer.generate import Completion
from repotune.sandbox import Limits, Sandbox
from repotune.sandbox.bugsuite import make_suite
from repotune.sandbox.manifest import Bug, load_bugs, save_bugs
from repotune.sandbox.validate import Validator
from tests.support.fakeopenai import FakeOpenAI


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return make_suite(tmp_path_factory.mktemp("suite"))


def _subset(suite, tmp_path, ids) -> tuple[list[Bug], object]:
    bugs = [b for b in load_bugs(suite) if b.id in ids]
    path = tmp_path / "bugs.jsonl"
    save_bugs(path, bugs)
    return bugs, path


def test_repair_prompt_is_ir4_without_comments_outside_the_span():
    text = "def f(x):\n    # a note\n\n    y = x + 1\n    return y\n\n\ndef g():\n    pass\n"
    bug = Bug(id="b", repo=".", file="m.py", span=(4, 4), test_command="true")
    prompt = repair_prompt_for(bug, text)
    assert "# a note" not in prompt and "def g" not in prompt
    assert "# buggy code\n#     y = x + 1\n    <FILL_ME>\n    return y" in prompt
    assert prompt.startswith("def f(x):\n")


def test_feedback_prompt_puts_attempts_and_errors_above_the_function():
    fb = feedback_prompt("int f(void)\n<FILL_ME>\n", [("\treturn 1\n", "a.c:3: error: x")], "c")
    assert fb.startswith("// A previous fix was wrong:\n//   \treturn 1\n// It failed with:\n")
    assert fb.endswith("//   a.c:3: error: x\nint f(void)\n<FILL_ME>\n")


class ScriptedBackend:
    """Answers by bug: the first turn gives the listed candidates, a feedback turn the fix."""

    name = "scripted"

    def __init__(self, first: dict[str, tuple[str, list[str]]], after: dict[str, str]) -> None:
        self.first, self.after, self.prompts = first, after, []

    def complete(self, prompts, decoding, instruction=None, on_batch=None):
        out = []
        for p in prompts:
            self.prompts.append(p)
            bug = next(b for b, (marker, _) in self.first.items() if marker in p)
            if "It failed with:" in p:
                out.append([Completion(self.after.get(bug, "    pass\n"))])
            else:
                out.append([Completion(t) for t in self.first[bug][1]][: decoding.n])
        return out

    def close(self):
        pass


def test_plausible_at_k_and_a_second_turn(suite, tmp_path):
    bugs, path = _subset(suite, tmp_path, {"sum-to", "is-even", "c-abs"})
    first = {  # bug: (a marker in its prompt, the first turn's candidates)
        "sum-to": (
            "range(1, n)",
            ["    for i in range(1, n):\n", "    for i in range(1, n + 1):\n", "    x\n"],
        ),
        "is-even": (
            "n % 2",
            ["    return n % 2 == 1\n", "    return n % 2 == 1\n", "    return 3\n"],
        ),
        "c-abs": ("my_abs", ["\treturn -x\n", "\treturn x > 0 ? x : x;\n", "\treturn x\n"]),
    }
    backend = ScriptedBackend(first, {"is-even": "    return n % 2 == 0\n"})
    cfg = EvalExecConfig(candidates=3, decoding="sample", turns=1, k=[1, 2, 3])
    with Sandbox(Limits(max_processes=32)) as sb, Validator(bugs, sb, workers=2) as v:
        result = evaluate_repair(
            bugs, [Contender("scripted", "x")], v, cfg, tmp_path / "out",
            say=lambda s: None, opener=lambda c: backend,
        )  # fmt: skip
    s = result["models"]["scripted"]
    assert s["plausible@1"] == pytest.approx((1 / 3) / 3)
    assert s["plausible@3"] == pytest.approx(1 / 3)
    assert s["plausible_bugs"] == 1 and s["plausible_after_turns"] == 2
    assert s["fixed_by_turn"] == {"0": 1, "1": 1}
    assert s["outcomes"]["compile_error"] >= 2  # the C candidates without ";" and the bare "x"
    rows = [json.loads(x) for x in (tmp_path / "out" / "scripted.jsonl").read_text().splitlines()]
    assert len(rows) == 9 + 2 and {r["turn"] for r in rows} == {0, 1}
    c_feedback = next(p for p in backend.prompts if "It failed with:" in p and "//" in p)
    assert "error: expected" in c_feedback  # the compiler's message went back to the model
    assert "<FILL_ME>" in c_feedback

    run = tmp_path / "run"
    table = write_bug_report(run, path, bugs, result, None, cfg, "sandbox line")
    assert "| is-even | 3 | 0 | 3 | 0 | 0 | 0 | turn 1 |" in table
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["bugs"]["models"]["scripted"]["plausible_after_turns"] == 2
    assert summary["bugs"]["per_bug"]["is-even"]["models"]["scripted"]["fixed_turn"] == 1
    assert summary["tasks"] == {}


def test_tiny_model_end_to_end_with_static_row(suite, tmp_path, tiny_model, monkeypatch):
    from repotune.evaluate.exec_run import run_bug_evaluation

    monkeypatch.setenv("REPOTUNE_CACHE", str(tmp_path / "cache"))
    bugs, path = _subset(suite, tmp_path, {"circle-area", "c-max"})
    cfg = RunConfig()
    cfg.model.dtype = "float32"
    cfg.eval_exec = EvalExecConfig(candidates=2, max_new_tokens=8, turns=1, k=[1, 2])
    run = tmp_path / "run"
    table = run_bug_evaluation(run, path, [tiny_model], cfg, say=lambda s: None)
    summary = json.loads((run / "eval" / "summary.json").read_text())["bugs"]
    model = summary["models"][tiny_model]
    assert model["candidates"] == 2 and model["n_bugs"] == 2
    assert set(model) >= {"plausible@1", "plausible@2", "ranked@1", "outcomes"}
    assert sum(model["outcomes"].values()) == 4
    assert "sandbox" in summary and "namespaces" in summary["sandbox"]
    assert summary["static"]["ruff"] == {"flagged": 1, "n": 1}  # pi is undefined on line 5
    assert 5 in summary["per_bug"]["circle-area"]["static"]["ruff"]["lines"]
    assert "flagged" in table


def test_cli_compares_an_openai_compatible_model(suite, tmp_path):
    _, path = _subset(suite, tmp_path, {"reverse", "c-abs"})

    def reply(kind, body):
        prompt = body["messages"][1]["content"]
        fix = "    return s[::-1]" if "s[::1]" in prompt else "\treturn x > 0 ? x : -x;"
        return [f"```\n{fix}\n```"] * body["n"]

    with FakeOpenAI(reply) as server:
        env = {
            **{k: v for k, v in os.environ.items() if "PROXY" not in k.upper()},
            "REPOTUNE_OPENAI_BASE_URL": server.url,
            "REPOTUNE_CACHE": str(tmp_path / "cache"),
        }
        res = subprocess.run(
            [sys.executable, "-m", "repotune.cli", "evaluate", "--out", str(tmp_path / "run"),
             "--bugs", str(path), "--model", "openai:fake", "-n", "2",
             "--set", "eval_exec.decoding=sample", "--set", "eval_exec.static_analysers=false",
             "--set", "eval_exec.k=[1, 2]"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "openai:fake: 2/2 bugs plausible (plausible@1 1.000, plausible@2 1.000)" in res.stderr
    assert "| reverse | 2 | 2 | 0 | 0 | 0 | 0 | yes |" in res.stdout
    assert (tmp_path / "run" / "eval" / "bugs" / "openai_fake.jsonl").is_file()
    assert all(body["n"] == 2 for _, body in server.requests)
