"""The build stage over every task: dispatch, splits, leakage, mixture, stats; then `repotune
run` trains and evaluates several tasks named in the config."""

import json
import subprocess
import sys

import pytest

from repotune.build import run_build
from repotune.build.split import drop_leaks, split_paths
from repotune.build.stats import percentiles, stats_tables
from repotune.config import MineConfig, load_config
from repotune.mine import run_mine
from tests.support.gitrepo import git
from tests.support.teacherserver import FakeTeacher

FILES = {
    "util.py": "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    return min(x, hi)\n",
    "lib/sum.c": "int sum(int *v, int n)\n{\n\tint s = 0;\n\tfor (int i = 0; i < n; i++)\n"
    "\t\ts += v[i];\n\treturn s;\n}\n",
    "cmd/main.go": "package main\n\nfunc main() {\n\tx := 1\n\tprintln(x)\n}\n",
    "tools/run.sh": "#!/bin/sh\nset -e\n\necho start\nmake all\n",
}


def make_repo(repo, n_commits=16):
    """Five files at the start, then fixes to one function of calc.py per commit."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for path, text in FILES.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    funcs = [f"def f{i}(x):\n    return x + {i}\n" for i in range(8)]
    (repo / "calc.py").write_text("\n\n".join(funcs))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Start the project")
    for c in range(n_commits):
        k = c % len(funcs)
        funcs[k] = f"def f{k}(x):\n    total = x * {c + 2}\n    return total + {k}\n"
        (repo / "calc.py").write_text("\n\n".join(funcs))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"Fix the scale of f{k}", time=1_700_000_000 + 3600 * c)
    return repo


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    repo = make_repo(root / "repo")
    run_mine(repo, root / "mined", MineConfig(dedup="off"))
    return root


def _rows(run, task, split):
    path = run / "datasets" / task / f"{split}.jsonl"
    return [json.loads(line) for line in path.open()]


def test_every_task_builds_example_shaped_rows(mined, tiny_model, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(mined / "mined", run)
    data = tmp_path / "instruct.jsonl"
    data.write_text(
        "\n".join(json.dumps({"instruction": f"Say {i}", "output": str(i)}) for i in range(20))
    )
    cfg = load_config(
        None,
        [
            "build.tasks=[fim, commit, repair, explain, instruct]",
            f"build.model={tiny_model}",
            f"build.instruct.sources=[{data}]",
            "build.mixture={instruct: 0.5, fim: 2}",
            f"build.explain.cache_dir={tmp_path / 'cache'}",
            "build.explain.teacher_model=teach",
            "build.explain.backoff_seconds=0.01",
        ],
    ).build
    said = []
    with FakeTeacher() as server:
        monkeypatch.setenv("REPOTUNE_TEACHER_BASE_URL", server.url)
        stats = run_build(run, cfg, token_stats=True, say=said.append)
    assert list(stats) == cfg.tasks  # in the order asked for
    head = git(mined / "repo", "rev-parse", "HEAD").strip()
    for task in cfg.tasks:
        assert sum(stats[task]["examples"].values()) > 0, task
        assert "prompt_tokens" in stats[task]["lengths"], task
        for split in ("train", "val", "test"):
            for row in _rows(run, task, split):
                assert set(row) == {"id", "task", "prompt", "completion", "meta"}
                assert row["task"] == task and row["meta"]["split"] == split
                assert {"path", "time", "language"} <= set(row["meta"])
    # current-code tasks read the tree from before any val/test commit of the history tasks
    fim_rows = _rows(run, "fim", "train")
    newest_train = max(r["meta"]["time"] for r in _rows(run, "repair", "train"))
    assert fim_rows[0]["meta"]["sha"] != head and fim_rows[0]["meta"]["time"] <= newest_train
    assert any("<fim_prefix>" in r["prompt"] for r in fim_rows)  # the tiny model's tokens
    assert any(s.startswith("fim: starcoder tokens") for s in said)
    assert any(s.startswith("explain: ") and "requests to teach" in s for s in said)
    # mixture: fim repeated twice, instruct halved (train split only)
    assert stats["fim"]["mixture"]["weight"] == 2
    assert stats["fim"]["examples"]["train"] == 2 * stats["fim"]["mixture"]["train_before"]
    assert stats["instruct"]["examples"]["train"] == 8
    saved = json.loads((run / "datasets" / "stats.json").read_text())
    assert saved["repair"]["examples"] == stats["repair"]["examples"]
    assert stats_tables(saved).row_count == 5


def test_splits_paths_and_leaks():
    labels = split_paths(["a.py", "b.py", "c.py"], (0.8, 0.1, 0.1))
    assert sorted(labels.values()) == ["test", "train", "val"]  # few files: one each
    many = [f"src/m{i}.py" for i in range(300)]
    big = split_paths(many, (0.8, 0.1, 0.1))
    assert 200 < list(big.values()).count("train") < 280
    assert split_paths(many[:150], (0.8, 0.1, 0.1)) == {p: big[p] for p in many[:150]}
    splits = {
        "train": [{"prompt": "def f():\n  return 1", "completion": "x\n"}],
        "val": [],
        "test": [{"prompt": "def f():\n    return 1 ", "completion": "x"}],  # whitespace only
    }
    assert drop_leaks(splits) == {"val": 0, "test": 1}
    assert percentiles([5, 1, 3, 2, 4]) == {"p50": 3, "p90": 5, "p99": 5, "max": 5}


def test_repotune_run_trains_and_evaluates_named_tasks(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo", n_commits=12)
    data = tmp_path / "chat.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"Q{i}"},
                        {"role": "assistant", "content": f"A{i}"},
                    ]
                }
            )
            for i in range(20)
        )  # fmt: skip
    )
    out = tmp_path / "run"
    sets = [
        "build.tasks=[repair, fim, explain, instruct]",
        "build.repair.commits=all",
        f"build.instruct.sources=[{data}]",
        f"build.explain.cache_dir={tmp_path / 'cache'}",
        "build.explain.teacher_model=teach",
        f"model.name={tiny_model}",
        "model.dtype=float32",
        "train.max_steps=2",
        "train.per_device_train_batch_size=2",
        "train.max_length=128",
        "evaluate.generate_examples=1",
        "evaluate.max_new_tokens=4",
        "evaluate.max_examples=4",
    ]
    args = [sys.executable, "-m", "repotune.cli", "run", str(repo), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    with FakeTeacher() as server:
        env = {**__import__("os").environ, "REPOTUNE_TEACHER_BASE_URL": server.url}
        res = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert set(summary["tasks"]) == {"repair", "fim", "explain", "instruct"}
    train = json.loads((out / "train" / "summary.json").read_text())
    assert train["tasks"] == ["repair", "fim", "explain", "instruct"] and train["steps"] == 2


def test_build_model_names_the_tokenizer_over_model_name(
    mined, tiny_model, tmp_path, monkeypatch, capsys
):
    """`repotune build` passes model.name, which always has a value; build.model still wins.
    model.name here names no model at all, so reading its tokenizer would fail."""
    import shutil

    from tests.support.clirun import in_process

    run = tmp_path / "run"
    shutil.copytree(mined / "mined", run)
    args = ["build", "--out", str(run), "--set", "build.tasks=[fim]"]
    args += ["--set", f"build.model={tiny_model}", "--set", "model.name=no-such-model/anywhere"]
    ran = in_process(monkeypatch, capsys, *args)
    assert ran.code == 0, ran.err
    assert any("<fim_prefix>" in r["prompt"] for r in _rows(run, "fim", "train"))
