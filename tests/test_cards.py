"""Model and dataset cards: huggingface_hub reads back the README.md that train, merge and
evaluate write, and every number on them is the one in the run's JSON files."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repotune.config import BuildConfig, MineConfig, ModelConfig
from repotune.evaluate.paired import compare
from tests.build.test_complete_task import N_COMMITS, T0, make_repo
from tests.train.test_train import small


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model) -> Path:
    """Mined, built (complete + commit), trained two steps, merged; then an evaluation summary
    in evaluate's format (the real one is tests/evaluate/test_evaluate_complete.py's)."""
    from repotune.build import run_build
    from repotune.cards import write_cards
    from repotune.cli import app
    from repotune.mine import run_mine
    from repotune.train.sft import run_train

    root = tmp_path_factory.mktemp("cards")
    run = root / "myproject"
    run_mine(make_repo(root / "repo"), run, MineConfig(dedup="off", max_changed_lines=None))
    build = BuildConfig(tasks=["complete", "commit"])
    run_build(run, build, model=tiny_model, say=lambda _: None)
    run_train(run, ModelConfig(name=tiny_model, dtype="float32"), small(max_steps=2), build.tasks)
    res = CliRunner().invoke(app, ["merge", "--out", str(run), "--set", f"model.name={tiny_model}"])
    assert res.exit_code == 0, res.output
    _write_eval_summary(run, tiny_model)
    write_cards(run)  # what run_evaluate does after writing eval/summary.json
    return run


def _write_eval_summary(run: Path, model: str) -> None:
    base = [True, False, False, True, False, False, False, False]
    tuned = [True, True, True, True, False, True, False, False]

    def row(hits, loss):
        return {"loss": loss, "perplexity": math.exp(loss), "tokens": 80,
                "exact_match": sum(hits) / len(hits), "edit_similarity": 0.5 + sum(hits) / 40,
                "n_generated": len(hits), "decoding": "greedy, to the end of the line or block",
                "n": len(hits), "n_loss": len(hits)}  # fmt: skip

    complete = {
        "base": row(base, 2.5),
        "base+retrieval": {"exact_match": 0.25, "edit_similarity": 0.6, "n": 4, "n_generated": 4},
        "tuned": row(tuned, 1.5),
        "comparisons": {"tuned vs base": compare(base, tuned)},
    }
    commit = {
        label: {"loss": loss, "perplexity": math.exp(loss), "tokens": 300, "exact_match": None,
                "edit_similarity": None, "change_similarity": None, "n": 5, "n_generated": 0,
                "decoding": "greedy"}
        for label, loss in (("base", 1.2), ("tuned", 0.9))
    }  # fmt: skip
    (run / "eval").mkdir(exist_ok=True)
    summary = {"model": model, "tasks": {"complete": complete, "commit": commit}}
    (run / "eval" / "summary.json").write_text(json.dumps(summary))


def _metrics(card) -> dict[tuple[str, str], float]:
    """(task, metric name) -> value, from the card's model-index as huggingface_hub reads it."""
    return {
        (r.task_name.split(" ")[0], r.metric_name): r.metric_value for r in card.data.eval_results
    }


@pytest.mark.parametrize("folder", ["adapter", "merged"])
def test_model_cards_carry_the_runs_numbers(run, tiny_model, folder):
    from huggingface_hub import ModelCard

    card = ModelCard.load(run / folder / "README.md")
    summary = json.loads((run / "eval" / "summary.json").read_text())
    complete, commit = summary["tasks"]["complete"], summary["tasks"]["commit"]
    got = _metrics(card)
    assert got[("complete", "exact match (tuned)")] == complete["tuned"]["exact_match"]
    assert got[("complete", "exact match (base)")] == complete["base"]["exact_match"]
    assert got[("complete", "exact match (base+retrieval)")] == 0.25
    assert got[("complete", "loss ratio (tuned / base)")] == pytest.approx(1.5 / 2.5)
    p = complete["comparisons"]["tuned vs base"]["mcnemar_p"]
    assert got[("complete", "McNemar p, exact match tuned vs base")] == p
    assert got[("commit", "loss (tuned)")] == commit["tuned"]["loss"]
    ratio = commit["tuned"]["loss"] / commit["base"]["loss"]
    assert got[("commit", "loss ratio (tuned / base)")] == pytest.approx(ratio)
    assert ("commit", "exact match (tuned)") not in got  # no generations: no number
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}

    assert card.data.library_name == ("peft" if folder == "adapter" else "transformers")
    assert card.data.base_model is None  # a local folder is no Hub id
    assert card.data.model_name == "myproject"
    text = card.text
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert f"LoRA, r = {adapter['r']}, alpha = {adapter['lora_alpha']}" in text
    kinds = "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"
    assert f"Target modules: all-linear ({kinds})" in text  # not every layer's module name
    train = json.loads((run / "train" / "summary.json").read_text())
    assert f"Steps: {train['steps']} of 2" in text
    assert f"Learning rate: {train['settings']['learning_rate']}" in text
    batch = train["settings"]["per_device_train_batch_size"]
    assert f"Batch size: {batch} x 1 accumulation" in text
    mine = json.loads((run / "mine_stats.json").read_text())
    assert f"Commits mined: {mine['kept']} kept" in text and "Repository: `repo`" in text
    day = lambda t: datetime.fromtimestamp(t, UTC).date().isoformat()  # noqa: E731
    assert f"Commit dates: {day(T0)} to {day(T0 + 3600 * (N_COMMITS - 1))}" in text
    stats = json.loads((run / "datasets" / "stats.json").read_text())
    for task in ("complete", "commit"):
        ex = stats[task]["examples"]
        assert f"| {task} | {ex['train']} | {ex['val']} | {ex['test']} |" in text
    assert str(run.parent) not in card.content  # the repository by name, never its path


def test_dataset_card_lists_tasks_and_splits(run, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(run / "datasets" / "README.md")
    stats = json.loads((run / "datasets" / "stats.json").read_text())
    configs = {c["config_name"]: c["data_files"] for c in card.data.configs}
    assert set(configs) == set(stats) == {"complete", "commit"}
    for task, files in configs.items():
        for f in files:
            assert (run / "datasets" / f["path"]).is_file()
        counted = {f["split"]: sum(1 for _ in open(run / "datasets" / f["path"])) for f in files}
        ex = stats[task]["examples"]
        assert counted == {"train": ex["train"], "validation": ex["val"], "test": ex["test"]}
        assert f"| {task} | {ex['train']} | {ex['val']} | {ex['test']} |" in card.text
        # each split loads as the card says (one file at a time: held-out rows carry more meta)
        for f in files:
            path = str(run / "datasets" / f["path"])
            rows = datasets.load_dataset("json", data_files=path, cache_dir=str(tmp_path))
            assert len(rows["train"]) == counted[f["split"]]
    assert card.data.task_categories == ["text-generation"]


def test_a_fresh_adapter_card_before_evaluation(tmp_path, tiny_model):
    """Train writes the card (replacing PEFT's template); without eval/summary.json it has no
    model-index and says how to get one. The embedded default names its Hub source."""
    from huggingface_hub import ModelCard

    from repotune.cards import EMBEDDED_SOURCE, base_model_id
    from repotune.train.sft import run_train
    from tests.train.test_train import write_rows

    write_rows(tmp_path)
    run_train(tmp_path, ModelConfig(name=tiny_model, dtype="float32"), small(max_steps=1))
    card = ModelCard.load(tmp_path / "adapter" / "README.md")
    assert not card.data.eval_results and "Not evaluated yet" in card.text
    assert "[More Information Needed]" not in card.text  # PEFT's template is gone
    assert base_model_id("gemma-3-270m") == EMBEDDED_SOURCE
    assert base_model_id("Qwen/Qwen2.5-Coder-0.5B") == "Qwen/Qwen2.5-Coder-0.5B"
