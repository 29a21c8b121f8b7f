"""Continued training for `repotune refresh`: the adapter goes on from its last checkpoint
(weights, optimizer, step count) for a few more steps on the rows it has not trained on yet
plus a seeded replay sample of old ones, so the new code is learnt and the old is not
forgotten. The number of steps follows the rows, so the cost grows with the new commits.

It is the train stage's own resume: the Trainer's checkpoint, with `max_steps` raised and the
checkpoint stamped as belonging to these rows and settings (train/checkpoints.py removes
checkpoints of other data)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from repotune.config import ModelConfig, RefreshConfig, TrainConfig
from repotune.errors import UserError
from repotune.fsutil import atomic_write_text
from repotune.train import checkpoints
from repotune.train.data import fingerprint, load_rows


def continue_training(
    run_dir: Path,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    tasks: list[str],
    trained_ids: set[str],
    refresh: RefreshConfig,
    index: int,
) -> dict:
    """Train the rows whose id is not in `trained_ids` plus `refresh.replay` old rows each,
    from the last checkpoint on. Returns the train summary with a `refresh` entry (steps 0
    and no training when nothing is new)."""
    run_dir = Path(run_dir)
    if cfg.method == "full":
        raise UserError("refresh continues an adapter; train.method full is not supported")
    rows, _ = load_rows(run_dir, tasks)
    new = [r for r in rows if r["id"] not in trained_ids]
    old = [r for r in rows if r["id"] in trained_ids]
    rng = random.Random(cfg.seed + index)
    replay = rng.sample(old, min(len(old), round(refresh.replay * len(new))))
    ckpt_dir = run_dir / "train" / "checkpoints"
    last = checkpoints.last_complete(ckpt_dir)
    if last is None:
        raise UserError(f"no checkpoint in {ckpt_dir} to continue: run `repotune train` first")
    start = checkpoints.state(last)["global_step"]
    info = {"index": index, "new_rows": len(new), "replay_rows": len(replay), "from_step": start}
    if not new:
        return {"steps": start, "refresh": {**info, "steps": 0}}
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    steps = refresh.steps or max(1, math.ceil(refresh.epochs * (len(new) + len(replay)) / per_step))
    leg = cfg.model_copy(
        update={
            "max_steps": start + steps,
            "lr_scheduler_type": refresh.lr_scheduler_type,
            "warmup_ratio": 0.0,
            "keep_best": False,  # a best checkpoint of an older leg would undo the refresh
            "early_stopping_patience": None,
        }
    )
    # These rows and settings own the checkpoints now, so run_train resumes from `last`.
    atomic_write_text(
        ckpt_dir / checkpoints.STAMP_FILE, fingerprint(run_dir, tasks, model_cfg, leg)
    )
    from repotune.train.sft import run_train

    summary = run_train(run_dir, model_cfg, leg, tasks, rows=new + replay)
    summary["refresh"] = {**info, "steps": summary["steps"] - start}
    return summary
