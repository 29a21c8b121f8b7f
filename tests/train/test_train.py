"""Train stage on the tiny model: methods, packing without cross-example attention, tracking,
best checkpoint and early stopping, Ctrl-C, and kill -9 followed by a resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repotune.config import ModelConfig, TrainConfig
from repotune.errors import UserError
from repotune.fsutil import write_jsonl


def write_rows(run_dir: Path, n: int = 24) -> None:
    """A commit-task dataset whose examples differ in length (so padding would show)."""
    rows = [
        {
            "id": str(i),
            "task": "commit",
            "prompt": f"### Instruction:\nAdd {i} to x\n### Code:\n"
            + "x = 1\n" * (i % 5 + 1)
            + "### Diff:\n",
            "completion": f"-x = {i}\n+x = {i + 1}\n" * (1 + i % 3),
            "meta": {},
        }
        for i in range(n)
    ]
    for split, part in (("train", rows), ("val", rows[:6]), ("test", rows[:4])):
        write_jsonl(run_dir / "datasets" / "commit" / f"{split}.jsonl", part)


def load_adapter(base: str, adapter: Path):
    """The adapter loads onto its base (what evaluate and serve do with RUN/adapter)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter))


def small(**overrides) -> TrainConfig:
    base = dict(
        max_steps=4, per_device_train_batch_size=4, max_length=64, save_steps=2, logging_steps=1,
        learning_rate=5e-3, report_to=[], progress=False, save_minutes=None,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def _train(run_dir: Path, tiny_model: str, cfg: TrainConfig, dtype: str = "float32") -> dict:
    from repotune.train.sft import run_train

    return run_train(run_dir, ModelConfig(name=tiny_model, dtype=dtype), cfg, ["commit"])


# -- tasks: what the last build wrote, or train.tasks of those ---------------------------------


def test_trains_on_the_tasks_build_wrote_or_train_tasks(tmp_path, tiny_model):
    """Build's record (datasets/stats.json) says which tasks there are, not build.tasks and
    not every folder: an older build's `repair` folder is left out; train.tasks picks one."""
    from repotune.fsutil import read_jsonl, write_json
    from repotune.train.sft import run_train

    model = ModelConfig(name=tiny_model, dtype="float32")
    runs = {}
    for name, tasks in (("all", None), ("fim", ["fim"])):
        run = tmp_path / name
        write_rows(run)
        for split in ("train", "val", "test"):
            rows = read_jsonl(run / "datasets" / "commit" / f"{split}.jsonl")[:8]
            for task in ("fim", "repair"):
                write_jsonl(run / "datasets" / task / f"{split}.jsonl", rows)
        write_json(run / "datasets" / "stats.json", {"commit": {}, "fim": {}})
        runs[name] = run_train(run, model, small(max_steps=1, tasks=tasks))
    assert runs["all"]["tasks"] == ["commit", "fim"] and runs["all"]["train_examples"] == 32
    assert runs["fim"]["tasks"] == ["fim"] and runs["fim"]["train_examples"] == 8
    with pytest.raises(UserError, match="train.tasks names repair, which the last build did not"):
        run_train(tmp_path / "all", model, small(tasks=["repair"]))


# -- packing: examples packed into one row never see each other ------------------------------


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_unpacked(tiny_model, attn):
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    from trl.trainer.utils import add_fused_lm_head

    from repotune.train.head import compact_label_positions

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attn).eval()
    gen = torch.Generator().manual_seed(0)
    # Longer than the sliding window (64) so the sliding layers' packed mask is exercised too.
    seqs = [torch.randint(5, model.config.vocab_size, (n,), generator=gen).tolist()
            for n in (40, 90, 17)]  # fmt: skip
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": s} for s in seqs]
    )
    assert batch["input_ids"].shape == (1, sum(map(len, seqs))) and "attention_mask" not in batch
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed = model(**inputs, use_cache=False).logits[0]
        start = 0
        for s in seqs:
            alone = model(input_ids=torch.tensor([s]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[start : start + len(s)], alone, atol=1e-4, rtol=0)
            start += len(s)

        # The training loss path (TRL's fused head, scoring labelled positions only) agrees too.
        compact_label_positions()
        add_fused_lm_head(model)
        fused = model(**batch, fused_lm_head=True, use_cache=False)
        start = 0
        for s in seqs:
            ids = torch.tensor([s])
            alone = model(input_ids=ids, labels=ids, fused_lm_head=True, use_cache=False)
            got = fused.log_probs[0, start : start + len(s) - 1]
            torch.testing.assert_close(got, alone.log_probs[0], atol=1e-4, rtol=0)
            start += len(s)


# -- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lora", "dora", "qlora", "lora-8bit", "full"])
def test_method_trains_and_saves(tmp_path, tiny_model, method):
    if method in ("qlora", "lora-8bit"):
        pytest.importorskip("bitsandbytes")
    write_rows(tmp_path)
    s = _train(tmp_path, tiny_model, small(method=method, max_steps=2), dtype="bfloat16")
    assert s["steps"] == 2 and s["method"] == method and s["val_loss"] is not None
    from transformers import AutoModelForCausalLM

    if method == "full":
        assert s["output"] == str(tmp_path / "merged")
        assert (tmp_path / "merged" / "model.safetensors").is_file()
        AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
        return
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter["use_dora"] == (method == "dora")
    load_adapter(tiny_model, tmp_path / "adapter")


def test_target_presets(tiny_model):
    from transformers import AutoModelForCausalLM

    from repotune.train.methods import target_modules

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert target_modules("attention", model) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert target_modules("qv", model) == ["q_proj", "v_proj"]
    assert target_modules("all-linear", model) == "all-linear"


def test_methods_that_cannot_run_say_why(monkeypatch):
    import importlib.util

    from repotune.train.methods import check_supported

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    with pytest.raises(UserError, match=r"pip install 'repotune\[qlora\]'") as err:
        check_supported(TrainConfig(method="qlora"), torch.bfloat16, on_gpu=False)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="float16 mixed precision needs a GPU"):
        check_supported(TrainConfig(), torch.float16, on_gpu=False)


# -- outputs, tracking, best checkpoint, early stopping ---------------------------------------


def test_tracks_padding_tokens_and_keeps_the_best(tmp_path, tiny_model):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    write_rows(tmp_path)
    mlruns = tmp_path / "mlruns"
    cfg = small(
        max_steps=6, eval_steps=2, packing="none", report_to=["tensorboard", "mlflow"],
        mlflow_tracking_uri=mlruns.as_uri(), save_total_limit=1,
    )  # fmt: skip
    s = _train(tmp_path, tiny_model, cfg)
    history = json.loads((tmp_path / "train" / "log_history.json").read_text())
    train_logs = [h for h in history if "loss" in h]
    assert all(h["tokens_per_second"] > 0 for h in train_logs)
    assert any(h["padding_share"] > 0 for h in train_logs)  # padded batches: some padding
    evals = {h["step"]: h["eval_loss"] for h in history if "eval_loss" in h}
    assert sorted(evals) == [2, 4, 6] and s["best_val_loss"] == min(evals.values())
    best_step = min(evals, key=evals.get)
    assert s["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    assert Path(s["best_checkpoint"], "adapter_model.safetensors").is_file()  # kept, limit 1
    assert list((tmp_path / "train" / "tensorboard").glob("events.out.tfevents.*"))
    metric_files = list(mlruns.glob("*/*/metrics/eval_loss"))
    assert len(metric_files) == 1 and len(metric_files[0].read_text().splitlines()) == 3

    write_rows(tmp_path / "free")
    s = _train(tmp_path / "free", tiny_model, small(max_steps=2))
    history = json.loads((tmp_path / "free" / "train" / "log_history.json").read_text())
    assert all(h["padding_share"] == 0 for h in history if "loss" in h)


def test_early_stopping(tmp_path, tiny_model):
    write_rows(tmp_path)
    cfg = small(
        max_steps=20, eval_steps=2, learning_rate=1e-9,
        early_stopping_patience=1, early_stopping_threshold=0.5,
    )  # fmt: skip
    s = _train(tmp_path, tiny_model, cfg)
    assert s["steps"] == 4 and s["stopped_early"]


# -- never lose a run -------------------------------------------------------------------------


def test_time_budget_and_timed_checkpoints(tmp_path, tiny_model):
    write_rows(tmp_path)
    s = _train(tmp_path, tiny_model, small(max_steps=50, save_steps=100, max_minutes=1e-9))
    assert s["stopped_by_time_budget"] and s["steps"] == 1 and not s["interrupted"]
    assert (tmp_path / "train" / "checkpoints" / "checkpoint-1" / "trainer_state.json").is_file()

    write_rows(tmp_path / "timed")
    cfg = small(max_steps=3, save_steps=100, save_minutes=1e-9, save_total_limit=5)
    _train(tmp_path / "timed", tiny_model, cfg)  # every step is "10 minutes later"
    names = sorted(p.name for p in (tmp_path / "timed" / "train" / "checkpoints").glob("check*"))
    assert names == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]


def test_ctrl_c_writes_a_checkpoint_and_stops(tmp_path, tiny_model, monkeypatch):
    from repotune.train.callbacks import StopAndSave

    original = StopAndSave.on_step_end

    def press_ctrl_c_at_step_3(self, args, state, control, **kw):
        if state.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, args, state, control, **kw)

    monkeypatch.setattr(StopAndSave, "on_step_end", press_ctrl_c_at_step_3)
    write_rows(tmp_path)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs as a background job
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, tiny_model, small(max_steps=20, save_steps=100))
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    state = json.loads(
        (tmp_path / "train" / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text()
    )
    assert state["global_step"] == 3
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["interrupted"] and summary["steps"] == 3
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def _cli_train(run_dir: Path, tiny_model: str, max_steps: int) -> subprocess.Popen:
    sets = [
        f"model.name={tiny_model}", "model.dtype=float32", f"train.max_steps={max_steps}",
        "train.per_device_train_batch_size=2", "train.max_length=64", "train.save_steps=4",
        "train.logging_steps=1", "train.report_to=[]", "train.progress=false",
        "train.learning_rate=5e-3",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "repotune.cli", "train", "--out", str(run_dir)]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.is_file():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_kill_9_or_ctrl_c_then_the_same_command_resumes(tmp_path, tiny_model):
    from transformers import get_scheduler

    write_rows(tmp_path)
    max_steps = 60
    ckpt = tmp_path / "train" / "checkpoints"
    first = _cli_train(tmp_path, tiny_model, max_steps)
    _wait_for(ckpt / "checkpoint-8" / "trainer_state.json", first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "train" / "summary.json").exists()  # it really died mid-run

    second = _cli_train(tmp_path, tiny_model, max_steps)  # resumes, then gets Ctrl-C
    _wait_for(ckpt / "checkpoint-16" / "trainer_state.json", second)
    second.send_signal(signal.SIGINT)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 130 and "interrupted" in err, err[-3000:]
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    stopped = summary["steps"]
    assert summary["interrupted"] and 16 <= stopped < max_steps
    assert (ckpt / f"checkpoint-{stopped}" / "trainer_state.json").is_file()

    third = _cli_train(tmp_path, tiny_model, max_steps)
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["resumed_from"].endswith(f"checkpoint-{stopped}")
    assert summary["steps"] == max_steps and not summary["interrupted"]

    # The learning-rate schedule continued where it was, as if never interrupted.
    history = json.loads((tmp_path / "train" / "log_history.json").read_text())
    steps = [h["step"] for h in history if "learning_rate" in h]
    assert steps == list(range(1, max_steps + 1))  # each step once: none redone, none lost
    logged = {h["step"]: h["learning_rate"] for h in history if "learning_rate" in h}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=5e-3)
    sched = get_scheduler("cosine", opt, num_warmup_steps=3, num_training_steps=max_steps)
    expected = {}  # the Trainer logs the rate a step was taken with
    for step in range(1, max_steps + 1):
        expected[step] = sched.get_last_lr()[0]
        opt.step()
        sched.step()
    for step, lr in logged.items():
        assert lr == pytest.approx(expected[step], rel=1e-6, abs=1e-12), step

    load_adapter(tiny_model, tmp_path / "adapter")


# -- order: which rows a budget shorter than an epoch trains on -------------------------------


def test_order_rows_newest_first_within_windows():
    from repotune.train.data import order_rows

    rows = [{"id": str(t), "meta": {"time": t}} for t in range(10)] + [{"id": "ext", "meta": {}}]
    assert order_rows(rows, "shuffle", 4, 0) is rows
    got = [r["id"] for r in order_rows(rows, "newest", 4, 0)]
    assert sorted(got[:4]) == ["6", "7", "8", "9"] and sorted(got[4:8]) == ["2", "3", "4", "5"]
    assert "ext" in got[8:] and sorted(got) == sorted(r["id"] for r in rows)
    assert got[:4] != ["9", "8", "7", "6"] or got[4:8] != ["5", "4", "3", "2"]  # shuffled


@pytest.mark.parametrize("order", ["newest", "shuffle"])
def test_newest_order_trains_on_the_newest_rows_first(tmp_path, tiny_model, monkeypatch, order):
    from repotune.train import sft
    from repotune.train.trainer import Trainer

    write_rows(tmp_path, n=40)
    path = tmp_path / "datasets" / "commit" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        r["meta"]["time"] = 1000 + int(r["id"])  # row i is the i-th oldest
    write_jsonl(path, rows)
    monkeypatch.setattr(sft, "NEWEST_WINDOW_STEPS", 1)  # windows of one step's rows
    seen: list[str] = []
    step = Trainer.training_step

    def record(self, model, inputs, *args, **kwargs):
        seen.append(self.processing_class.decode(inputs["input_ids"][0]))
        return step(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", record)
    _train(tmp_path, tiny_model, small(order=order, max_steps=2, per_device_train_batch_size=2))
    ids = {int(t.split("-x = ")[1].split("\n")[0]) for t in seen}  # prompts are cut on the left
    assert len(seen) == 4
    assert (ids == {36, 37, 38, 39}) == (order == "newest")
