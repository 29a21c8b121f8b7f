"""Training data: the task splits as token rows, and the fingerprint that ties checkpoints to them.

Rows are tokenized here with the same `encode_example` evaluation uses, so training and the
evaluated loss see identical tokens; TRL turns `completion_mask` into labels.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from repotune.config import ModelConfig, TrainConfig
from repotune.errors import UserError
from repotune.models.encode import encode_example
from repotune.rundir import load_split, split_path

# Settings that change how a run is watched or saved, not what it learns: a checkpoint made
# under other values of these is still the same run, so changing them must not restart it.
RESUMABLE_FIELDS = {
    "max_minutes", "save_steps", "save_minutes", "save_total_limit", "logging_steps",
    "report_to", "mlflow_tracking_uri", "mlflow_experiment", "progress", "eval_steps",
    "max_val_examples", "keep_best", "early_stopping_patience", "early_stopping_threshold",
}  # fmt: skip


def load_rows(run_dir: Path, tasks: list[str]) -> tuple[list[dict], list[dict]]:
    """Train and validation rows of every task, in task order."""
    train = [r for t in tasks for r in load_split(run_dir, t, "train")]
    val = [r for t in tasks for r in load_split(run_dir, t, "val")]
    if not train:
        raise UserError(
            f"no training examples in {run_dir}/datasets/{{{','.join(tasks)}}}: mine more commits "
            "or relax the filters (mine.max_changed_lines, build.max_*_chars)"
        )
    return train, val


# Rows per step times this is the window `order: newest` shuffles within: steps still mix
# commits, and the first windows hold only the newest code.
NEWEST_WINDOW_STEPS = 32


def order_rows(rows: list[dict], order: str, window: int, seed: int) -> list[dict]:
    """Rows in the order training takes them. `newest`: newest commit first (rows without a
    commit time, such as external fix sets, last), shuffled within consecutive windows of
    `window` rows. A time budget of fewer steps than an epoch then spends them on the code as
    it stood just before the held-out commits, which is what completion is measured on; a
    random order spreads them over the whole history (docs/results.md)."""
    if order != "newest":
        return rows
    ranked = sorted(rows, key=lambda r: -((r.get("meta") or {}).get("time") or float("-inf")))
    rng = random.Random(seed)
    out: list[dict] = []
    for start in range(0, len(ranked), window):
        chunk = ranked[start : start + window]
        rng.shuffle(chunk)
        out.extend(chunk)
    return out


def encode(rows: list[dict], tokenizer, max_length: int) -> Dataset:
    """input_ids + completion_mask per row, cut to max_length the way evaluation cuts them.
    A row whose task asks for loss on all of it (`meta.loss: all`, the `complete` task's
    continued pretraining on the repository's code) is masked for every token but the first."""
    enc = []
    for r in rows:
        e = encode_example(tokenizer, r["prompt"], r["completion"], max_length)
        if (r.get("meta") or {}).get("loss") == "all":
            e["completion_mask"] = [0] + [1] * (len(e["input_ids"]) - 1)
        enc.append(e)
    return Dataset.from_list(enc)


def fingerprint(run_dir: Path, tasks: list[str], model_cfg: ModelConfig, cfg: TrainConfig) -> str:
    """Checkpoints are only resumed for the same data and settings they were trained on."""
    h = hashlib.sha256()
    for task in tasks:
        h.update(split_path(run_dir, task, "train").read_bytes())
    h.update(model_cfg.model_dump_json().encode())
    # Hashed as before train.tasks (in the data above) and the renames to TRL's names, so the
    # checkpoints of a run started by an older repotune still resume.
    settings = cfg.model_dump_json(exclude=RESUMABLE_FIELDS | {"tasks"})
    for old, new in TrainConfig.renamed.items():
        settings = settings.replace(f'"{new}":', f'"{old}":', 1)
    h.update(settings.encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Batching:
    """How `train.packing` and `train.per_device_train_batch_size` map onto TRL/Trainer
    arguments."""

    micro_batch: int  # examples (bfd: rows) per forward pass
    grad_accum: int  # forward passes per optimizer step
    padding_free: bool  # TRL: the micro-batch's examples end to end in one row
    packing: bool  # TRL: best-fit packing into max_length rows
    max_length: int | None  # TRL truncation / row length (None: rows are already cut)


def batching(cfg: TrainConfig, on_gpu: bool) -> Batching:
    """No pad tokens and no attention across examples, by the means fastest on the device.

    padding_free on a GPU is TRL's single packed row with per-example position ids (flash
    attention's varlen kernels skip other examples' tokens). On a CPU the attention kernels
    take a dense block-diagonal mask and still compute the masked blocks (~30% of a step for
    4 x 400 tokens), so there each example is its own forward pass and gradients accumulate to
    the same step: identical loss (token-normalized over the step), no padding, no waste.
    """
    batch, accum = cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
    if cfg.packing == "padding_free" and not on_gpu:
        return Batching(1, batch * accum, False, False, cfg.max_length)
    if cfg.packing == "padding_free":
        return Batching(batch, accum, True, False, None)
    return Batching(batch, accum, False, cfg.packing == "bfd", cfg.max_length)
