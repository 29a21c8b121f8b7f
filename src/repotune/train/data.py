"""Training data: the task splits as token rows, and the fingerprint that ties checkpoints to them.

Rows are tokenized here with the same `encode_example` evaluation uses, so training and the
evaluated loss see identical tokens; TRL turns `completion_mask` into labels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from datasets import Dataset

from repotune.config import ModelConfig, TrainConfig
from repotune.errors import UserError
from repotune.models.encode import encode_example
from repotune.tasks import load_split

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


def encode(rows: list[dict], tokenizer, max_length: int) -> Dataset:
    """input_ids + completion_mask per row, cut to max_length the way evaluation cuts them."""
    enc = [encode_example(tokenizer, r["prompt"], r["completion"], max_length) for r in rows]
    return Dataset.from_list(enc)


def fingerprint(run_dir: Path, tasks: list[str], model_cfg: ModelConfig, cfg: TrainConfig) -> str:
    """Checkpoints are only resumed for the same data and settings they were trained on."""
    h = hashlib.sha256()
    for task in tasks:
        h.update((run_dir / "datasets" / task / "train.jsonl").read_bytes())
    h.update(model_cfg.model_dump_json().encode())
    h.update(cfg.model_dump_json(exclude=RESUMABLE_FIELDS).encode())
    return h.hexdigest()
