"""Train stage: a PEFT LoRA adapter with TRL's SFTTrainer, loss on completions only.

Reads top to bottom: data -> model -> trainer -> train (resuming a checkpoint if one is
there) -> save adapter and the loss history. Glue only: TRL, PEFT and transformers do the work.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from repotune.config import ModelConfig, TrainConfig
from repotune.errors import UserError
from repotune.fsutil import write_json
from repotune.models.encode import encode_example
from repotune.models.load import load_model, load_tokenizer, pick_dtype
from repotune.models.registry import resolve_model
from repotune.tasks import load_split


class TimeBudget(TrainerCallback):
    """Stops training (after saving a checkpoint) once the wall-clock budget is spent."""

    def __init__(self, minutes: float | None):
        self.deadline = None if minutes is None else time.monotonic() + minutes * 60
        self.hit = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.hit = True
            control.should_training_stop = True
            control.should_save = True
        return control


def _encoded(rows: list[dict], tokenizer, max_length: int) -> Dataset:
    enc = [encode_example(tokenizer, r["prompt"], r["completion"], max_length) for r in rows]
    return Dataset.from_list(enc)


def _fingerprint(
    run_dir: Path, tasks: list[str], model_cfg: ModelConfig, cfg: TrainConfig
) -> str:
    """Checkpoints are only resumed for the same data and settings they were trained on."""
    h = hashlib.sha256()
    for task in tasks:
        h.update((run_dir / "datasets" / task / "train.jsonl").read_bytes())
    h.update(model_cfg.model_dump_json().encode())
    h.update(cfg.model_dump_json(exclude={"max_minutes", "save_steps", "logging_steps"}).encode())
    return h.hexdigest()


def _checkpoint_to_resume(ckpt_dir: Path, fingerprint: str) -> str | None:
    stamp = ckpt_dir / "fingerprint.txt"
    if ckpt_dir.is_dir() and (not stamp.is_file() or stamp.read_text() != fingerprint):
        shutil.rmtree(ckpt_dir)  # stale: other data or settings
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    return get_last_checkpoint(str(ckpt_dir))


def run_train(
    run_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig, tasks: list[str] | None = None
) -> dict:
    """Train one adapter on the mix of `tasks` into run_dir/adapter; returns a summary."""
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    tasks = tasks or ["commit"]
    train_rows = [r for t in tasks for r in load_split(run_dir, t, "train")]
    val_rows = [r for t in tasks for r in load_split(run_dir, t, "val")]
    if not train_rows:
        raise UserError(
            f"no training examples in {run_dir}/datasets/{{{','.join(tasks)}}}: mine more commits "
            "or relax the filters (mine.max_changed_lines, build.max_*_chars)"
        )

    model_path = resolve_model(model_cfg.name)
    tokenizer = load_tokenizer(model_path)
    dtype = pick_dtype(model_cfg.dtype)
    model = load_model(model_path, dtype=model_cfg.dtype)
    model.train()

    train_ds = _encoded(train_rows, tokenizer, cfg.max_length)
    # Validation during training is a progress signal, not the verdict: a bounded sample.
    val_rows = val_rows[: cfg.max_val_examples]
    val_ds = _encoded(val_rows, tokenizer, cfg.max_length) if val_rows else None

    ckpt_dir = run_dir / "train" / "checkpoints"
    on_cuda = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=max(int(cfg.warmup_ratio * cfg.max_steps), 0),
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if val_ds is not None else "no",
        eval_steps=cfg.eval_steps or max(cfg.max_steps // 2, 1),
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=not on_cuda,
        completion_only_loss=True,
        max_length=cfg.max_length,
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=False,
        dataloader_num_workers=0,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    # FIM on a model without FIM tokens: the build wrote reserved tokens (<unusedN>,
    # <|reserved_special_token_N|>) as the sentinels. Their embeddings were never trained, so
    # those rows train too where the embeddings are untied (PEFT trainable tokens, saved in the
    # adapter; no resize, so the base tokenizer stays valid). See models/fim.py.
    from repotune.models.fim import trainable_fim_ids

    fim_ids = trainable_fim_ids(tokenizer, train_rows, model)
    peft_cfg = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
        trainable_token_indices=fim_ids or None,
    )
    budget = TimeBudget(cfg.max_minutes)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_cfg,
        callbacks=[budget],
    )

    last = _checkpoint_to_resume(ckpt_dir, _fingerprint(run_dir, tasks, model_cfg, cfg))
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.monotonic() - started

    adapter_dir = run_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    history = trainer.state.log_history
    (run_dir / "train").mkdir(parents=True, exist_ok=True)
    (run_dir / "train" / "log_history.json").write_text(json.dumps(history, indent=1))
    summary = {
        "model": model_cfg.name,
        "tasks": tasks,
        "dtype": str(dtype).removeprefix("torch."),
        "steps": trainer.state.global_step,
        "train_examples": len(train_rows),
        "val_examples": len(val_rows),
        "train_loss": result.training_loss,
        "seconds": round(seconds, 1),
        "stopped_by_time_budget": budget.hit,
        "resumed_from": last,
    }
    write_json(run_dir / "train" / "summary.json", summary)
    return summary
