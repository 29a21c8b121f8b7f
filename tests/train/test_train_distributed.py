"""The multi-process path: `accelerate launch` with the shipped DDP config runs the same train
code in 2 CPU processes (gloo), as it would on 2 GPUs (NCCL)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.train.test_train import load_adapter, write_rows

ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_train_one_adapter(tmp_path, tiny_model):
    write_rows(tmp_path)
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate's launcher is installed with the package"
    sets = [
        f"model.name={tiny_model}", "model.dtype=float32", "train.max_steps=4",
        "train.per_device_train_batch_size=2", "train.max_length=64", "train.save_steps=2",
        "train.logging_steps=1", "train.report_to=[]", "train.progress=false",
    ]  # fmt: skip
    ddp = str(ROOT / "configs" / "accelerate" / "ddp.yaml")
    cmd = [accelerate, "launch", "--config_file", ddp, "--num_processes", "2",
           "-m", "repotune.cli", "train", "--out", str(tmp_path)]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 4
    assert res.stderr.count("trained 4 steps") == 1  # the result is reported once
    state = json.loads(
        (tmp_path / "train" / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text()
    )
    # 2 processes x batch 2: each step saw 4 examples, one epoch of 24 takes 6 steps.
    assert abs(state["epoch"] - 4 / 6) < 1e-6

    load_adapter(tiny_model, tmp_path / "adapter")
