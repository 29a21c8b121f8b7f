"""The run directory's rules: which weights are "the tuned model" after each kind of training,
and every consumer (evaluate, evaluate --bugs/--humaneval/--questions, serve, chat) agreeing;
which tasks were built, which train and evaluate then take."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from repotune.config import EvaluateConfig, ModelConfig
from repotune.errors import UserError
from repotune.evaluate.compare import contenders
from repotune.fsutil import write_json, write_jsonl
from repotune.rundir import built_tasks, stage_tasks, tuned_model
from repotune.serve.engine import _from_run
from tests.support.clirun import in_process

BASE = "base-model"


def _adapter(run, when: float) -> None:
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    os.utime(run / "adapter" / "adapter_config.json", (when, when))


def _merged(run, when: float) -> None:
    (run / "merged").mkdir(parents=True)
    (run / "merged" / "config.json").write_text("{}")
    os.utime(run / "merged" / "config.json", (when, when))


def _trained(run, method: str) -> None:
    write_json(run / "train" / "summary.json", {"method": method})


# (what is in the run folder) -> (kind, loaded from, adapter)
SCENARIOS = {
    # A full fine-tune after an earlier LoRA run: the old adapter is not the tuned model.
    "full over an old adapter": (
        lambda r: (_adapter(r, 100), _merged(r, 200), _trained(r, "full")),
        ("full", "merged", None),
    ),
    "full": (lambda r: (_merged(r, 200), _trained(r, "full")), ("full", "merged", None)),
    "lora": (lambda r: (_adapter(r, 100), _trained(r, "lora")), ("adapter", BASE, "adapter")),
    # `repotune merge` after training: the same weights, served from RUN/merged.
    "lora, then merge": (
        lambda r: (_adapter(r, 100), _merged(r, 200), _trained(r, "lora")),
        ("merged", BASE, "adapter"),
    ),
    # Trained again after a merge: RUN/merged is an older model, not this adapter's.
    "merge, then lora again": (
        lambda r: (_merged(r, 100), _adapter(r, 200), _trained(r, "lora")),
        ("adapter", BASE, "adapter"),
    ),
    "merged folder only, no summary": (lambda r: _merged(r, 100), ("full", "merged", None)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_consumer_takes_the_same_tuned_model(tmp_path, scenario):
    make, (kind, source, adapter) = SCENARIOS[scenario]
    make(tmp_path)
    want_model = str(tmp_path / source) if source == "merged" else BASE
    want_adapter = str(tmp_path / adapter) if adapter else None
    tuned = tuned_model(tmp_path, BASE)
    assert tuned.kind == kind
    # evaluate: base + adapter (folded in at load time), or a full fine-tune's folder
    assert tuned.load_args() == (want_model, want_adapter)
    # evaluate --bugs / --humaneval / --questions: base and tuned by default, both named
    base, tuned_c = contenders(None, tmp_path, ModelConfig(name=BASE))
    assert base.spec == BASE and base.adapter is None
    assert (tuned_c.spec, tuned_c.adapter) == (want_model, want_adapter)
    # serve and chat: the same weights, from RUN/merged whenever it holds them
    write_json(tmp_path / "config.yaml", {"model": {"name": BASE}})  # JSON is YAML
    weights, served_adapter, _ = _from_run(tmp_path, None, "auto")
    if kind == "adapter":
        assert (weights, served_adapter) == (BASE, want_adapter)
    else:
        assert (weights, served_adapter) == (str(tmp_path / "merged"), None)


def test_untrained_runs_have_no_tuned_model(tmp_path):
    assert [c.label for c in contenders(None, tmp_path, ModelConfig(name=BASE))] == ["base"]
    with pytest.raises(UserError, match="run `repotune train` first"):
        contenders(["tuned"], tmp_path, ModelConfig(name=BASE))
    _trained(tmp_path, "full")  # a full fine-tune that wrote nothing
    _adapter(tmp_path, 100)
    with pytest.raises(UserError, match="method full"):
        tuned_model(tmp_path, BASE)


def test_evaluate_after_full_fine_tune_ignores_an_older_adapter(tmp_path, tiny_model, monkeypatch):
    """The tuned rows come from RUN/merged, not from base + the adapter an earlier run left."""
    import repotune.evaluate.run as run_mod

    rows = [
        {"id": str(i), "task": "commit", "prompt": f"Bump {i}\n", "completion": "x\n", "meta": {}}
        for i in range(3)
    ]
    write_jsonl(tmp_path / "datasets" / "commit" / "test.jsonl", rows)
    _adapter(tmp_path, 100)
    shutil.copytree(tiny_model, tmp_path / "merged")
    _trained(tmp_path, "full")
    loads = []
    real = run_mod.load_model

    def spy(path, dtype="auto", adapter=None, merge=False):
        loads.append((path, adapter))
        return real(tiny_model, dtype=dtype)  # the adapter folder here holds no weights

    monkeypatch.setattr(run_mod, "load_model", spy)
    model = ModelConfig(name=tiny_model, dtype="float32")
    run_mod.run_evaluate(tmp_path, model, EvaluateConfig(generate_examples=1, max_new_tokens=2), 64)
    assert loads == [(tiny_model, None), (str(tmp_path / "merged"), None)]


def _rows(task: str, n: int = 3) -> list[dict]:
    return [
        {"id": f"{task}{i}", "task": task, "prompt": f"Bump {i}\n", "completion": "x\n", "meta": {}}
        for i in range(n)
    ]


def _built(run, tasks: list[str], stale: tuple[str, ...] = ()) -> None:
    """Datasets as build leaves them: a folder per task and stats.json naming exactly those
    tasks; `stale`: folders an older build wrote, not in the record."""
    for task in [*tasks, *stale]:
        for split in ("train", "val", "test"):
            write_jsonl(run / "datasets" / task / f"{split}.jsonl", _rows(task))
    counts = {"examples": {"train": 3, "val": 3, "test": 3}}
    write_json(run / "datasets" / "stats.json", {t: counts for t in tasks})


def test_built_tasks_are_builds_record_not_every_folder(tmp_path):
    _built(tmp_path, ["complete", "commit"], stale=("fim",))
    assert built_tasks(tmp_path) == ["complete", "commit"]  # build's order, without fim
    assert stage_tasks(tmp_path, None, "train.tasks") == ["complete", "commit"]
    assert stage_tasks(tmp_path, ["commit"], "train.tasks") == ["commit"]
    with pytest.raises(UserError, match=r"train.tasks names fim, which the last build did not"):
        stage_tasks(tmp_path, ["commit", "fim"], "train.tasks")
    (tmp_path / "datasets" / "stats.json").unlink()  # datasets written by hand: the folders
    assert built_tasks(tmp_path) == ["commit", "complete", "fim"]
    with pytest.raises(UserError, match="run `repotune build` first"):
        stage_tasks(tmp_path / "empty", None, "evaluate.tasks")


def _evaluate_cli(run, tiny_model, monkeypatch, capsys, *sets: str):
    """`repotune evaluate` on a run whose tuned model is the tiny model (a full fine-tune)."""
    if not (run / "merged").is_dir():
        shutil.copytree(tiny_model, run / "merged")
        _trained(run, "full")
    args = ["evaluate", "--out", str(run), "--set", f"model.name={tiny_model}"]
    for s in ["model.dtype=float32", "train.max_length=64", "evaluate.generate_examples=1",
              "evaluate.max_new_tokens=2", *sets]:  # fmt: skip
        args += ["--set", s]
    return in_process(monkeypatch, capsys, *args)


def test_evaluate_takes_the_tasks_build_wrote_not_build_tasks(
    tmp_path, tiny_model, monkeypatch, capsys
):
    """RUN/config.yaml still lists two tasks, but the last build wrote only commit (the
    complete folder is an older build's): evaluate scores commit, and evaluate.tasks picks
    from what was built, a task not built being one line."""
    _built(tmp_path, ["commit"], stale=("complete",))
    write_json(tmp_path / "config.yaml", {"build": {"tasks": ["commit", "complete"]}})
    ran = _evaluate_cli(tmp_path, tiny_model, monkeypatch, capsys)
    assert ran.code == 0, ran.err
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert list(summary["tasks"]) == ["commit"]
    ran = _evaluate_cli(tmp_path, tiny_model, monkeypatch, capsys, "evaluate.tasks=[complete]")
    assert ran.one_line_error().startswith(
        "error: evaluate.tasks names complete, which the last build did not write (built: commit)"
    )


def test_run_refuses_stage_tasks_build_does_not_build(tmp_path, monkeypatch, capsys):
    from tests.support.gitrepo import make_history

    repo = make_history(tmp_path / "repo", n_commits=2)
    out = tmp_path / "run"
    ran = in_process(
        monkeypatch, capsys, "run", str(repo), "--out", str(out),
        "--set", "build.tasks=[commit]", "--set", "train.tasks=[commit,fim]",
    )  # fmt: skip
    assert "train.tasks names fim, which build.tasks (commit) does not build" in (
        ran.one_line_error()
    )
    assert not out.exists()  # before mining
