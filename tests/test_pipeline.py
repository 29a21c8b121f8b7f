"""End to end: `repotune run` on a repository made here, with a tiny random model."""

import json
import subprocess
import sys

from datasets import load_dataset

from tests.support.gitrepo import make_history


def test_run_writes_every_output(tmp_path, tiny_model):
    repo = make_history(tmp_path / "repo", n_commits=20)
    before = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--ignored"],
        capture_output=True,
        text=True,
    ).stdout
    out = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "repotune.cli",
            "run",
            str(repo),
            "--out",
            str(out),
            "--set",
            f"model.name={tiny_model}",
            "--set",
            "model.dtype=float32",
            "--set",
            "train.max_steps=12",
            "--set",
            "train.per_device_train_batch_size=2",
            "--set",
            "train.learning_rate=5e-3",
            "--set",
            "train.save_steps=5",
            "--set",
            "evaluate.generate_examples=2",
            "--set",
            "evaluate.max_new_tokens=16",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]

    assert (out / "commits.parquet").is_file()
    ds = load_dataset(
        "json",
        data_files={
            s: str(out / "datasets" / "commit" / f"{s}.jsonl") for s in ("train", "val", "test")
        },
    )
    assert ds["train"].num_rows > ds["test"].num_rows > 0
    newest_train = max(r["meta"]["time"] for r in ds["train"])
    assert all(r["meta"]["time"] > newest_train for r in ds["test"])

    assert (out / "adapter" / "adapter_config.json").is_file()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), str(out / "adapter")
    )

    summary = json.loads((out / "eval" / "summary.json").read_text())
    commit = summary["tasks"]["commit"]
    for label in ("base", "tuned"):
        keys = {"loss", "perplexity", "exact_match", "edit_similarity", "n"}
        assert keys <= commit[label].keys()
        assert commit[label]["n"] == ds["test"].num_rows
    # a high learning rate on a tiny random model must lower the held-out loss
    assert commit["tuned"]["loss"] < commit["base"]["loss"]
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "| tuned |" in report
    train = json.loads((out / "train" / "summary.json").read_text())
    assert train["steps"] == 12

    after = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--ignored"],
        capture_output=True,
        text=True,
    ).stdout
    assert after == before  # the user's checkout is untouched
