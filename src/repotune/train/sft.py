"""Train stage: TRL's SFTTrainer with PEFT (LoRA, DoRA, QLoRA, 8-bit) or full fine-tuning.

Reads top to bottom: data -> arguments -> checkpoint to resume -> model -> trainer -> train
(Ctrl-C and the time budget end it with a checkpoint) -> save RUN/adapter (or RUN/merged for
full fine-tuning), the loss history, a summary and the model card. Glue only: TRL, PEFT,
transformers and accelerate do the work, so `accelerate launch` / `torchrun` run this same code
on many GPUs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import EarlyStoppingCallback, PrinterCallback, TrainerState

from repotune.config import ModelConfig, TrainConfig
from repotune.errors import UserError
from repotune.fsutil import atomic_write_text, replace_dir, write_json
from repotune.models.load import load_tokenizer, pick_dtype
from repotune.models.registry import resolve_model
from repotune.rundir import stage_tasks
from repotune.train import checkpoints, tracking
from repotune.train.callbacks import RichProgress, SaveBest, StopAndSave
from repotune.train.data import (
    NEWEST_WINDOW_STEPS,
    batching,
    encode,
    fingerprint,
    load_rows,
    order_rows,
)
from repotune.train.head import compact_label_positions
from repotune.train.methods import check_supported, load_base, peft_config

# Checkpoint files that only resuming needs; the rest of a checkpoint is the model itself.
_RESUME_ONLY = ("optimizer", "scheduler", "rng_state", "scaler", "trainer_state", "training_args")


def _warn(message: str) -> None:
    print(f"repotune: {message}", file=sys.stderr, flush=True)


def run_train(
    run_dir: Path,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    tasks: list[str] | None = None,
    warn: Callable[[str], None] = _warn,
    rows: list[dict] | None = None,
) -> dict:
    """Train on the mix of `tasks` into run_dir/adapter (full: run_dir/merged); returns a
    summary. A run that was interrupted resumes from its last checkpoint when called again.
    `tasks`: default train.tasks, else every task the last build wrote (rundir.stage_tasks);
    each must have been built.
    `rows`: train on these instead of the train splits (a refresh: train/refresh.py)."""
    from trl import SFTConfig

    from repotune.train.trainer import Trainer

    run_dir = Path(run_dir)
    tasks = stage_tasks(run_dir, cfg.tasks if tasks is None else tasks, "train.tasks")
    train_rows, val_rows = load_rows(run_dir, tasks)
    train_rows = train_rows if rows is None else rows
    model_path = resolve_model(model_cfg.name)
    out_dir = run_dir / ("merged" if cfg.method == "full" else "adapter")
    if Path(model_path) == out_dir.resolve():  # continuing from a merged run: not into itself
        raise UserError(f"model.name is {out_dir}, which this run writes: train into another --out")
    tokenizer = load_tokenizer(model_path)
    dtype = pick_dtype(model_cfg.dtype)
    on_gpu = torch.cuda.is_available()
    check_supported(cfg, dtype, on_gpu)

    window = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * NEWEST_WINDOW_STEPS
    train_rows = order_rows(train_rows, cfg.order, window, cfg.seed)
    train_ds = encode(train_rows, tokenizer, cfg.max_length)
    # Validation during training is a progress signal, not the verdict: a bounded sample.
    val_rows = val_rows[: cfg.max_val_examples]
    val_ds = encode(val_rows, tokenizer, cfg.max_length) if val_rows else None

    batches = batching(cfg, on_gpu)
    ckpt_dir = run_dir / "train" / "checkpoints"
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(tracking.tensorboard_dir(run_dir))
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        run_name=run_dir.resolve().name,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=batches.micro_batch,
        per_device_eval_batch_size=batches.micro_batch,
        gradient_accumulation_steps=batches.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=max(int(cfg.warmup_ratio * cfg.max_steps), 0),
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optim,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if val_ds is not None else "no",
        eval_steps=cfg.eval_steps or max(cfg.max_steps // 2, 1),
        metric_for_best_model="eval_loss" if val_ds is not None else None,
        greater_is_better=False,
        prediction_loss_only=True,  # else TRL recomputes full logits for every eval batch
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=not on_gpu,
        completion_only_loss=cfg.completion_only_loss,
        packing=batches.packing,
        padding_free=batches.padding_free,
        max_length=batches.max_length,
        report_to=tracking.report_to(cfg, run_dir, warn),
        seed=cfg.seed,
        data_seed=cfg.seed,
        # `order: newest` has put the rows in the order they are to be taken
        train_sampling_strategy="sequential" if cfg.order == "newest" else "random",
        disable_tqdm=True,
        dataloader_num_workers=0,
        activation_checkpointing=cfg.activation_checkpointing,
        ddp_find_unused_parameters=False,
    )
    # From here on, under accelerate/torchrun, the process group exists.
    with args.main_process_first(local=False, desc="checkpoints"):
        if args.process_index == 0:
            stamp = fingerprint(run_dir, tasks, model_cfg, cfg)
            last = checkpoints.prepare_resume(ckpt_dir, stamp)
        else:
            last = checkpoints.last_complete(ckpt_dir)

    model = load_base(model_path, cfg, dtype, args.device)
    # FIM on a model without FIM tokens: the build wrote reserved tokens (<unusedN>,
    # <|reserved_special_token_N|>) as the sentinels. Their embeddings were never trained, so
    # those rows train too where the embeddings are untied (PEFT trainable tokens, saved in the
    # adapter; no resize, so the base tokenizer stays valid). See models/fim.py.
    from repotune.models.fim import trainable_fim_ids

    fim_ids = trainable_fim_ids(tokenizer, train_rows, model)
    compact_label_positions()
    stop = StopAndSave(cfg.max_minutes, cfg.save_minutes)
    callbacks = [stop]
    if val_ds is not None:
        callbacks.append(SaveBest())
        if cfg.early_stopping_patience:
            callbacks.append(
                EarlyStoppingCallback(cfg.early_stopping_patience, cfg.early_stopping_threshold)
            )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_config(cfg, model, fim_ids),
        callbacks=callbacks,
        change_weight=cfg.change_weight,
    )
    trainer.remove_callback(PrinterCallback)
    if cfg.progress:
        trainer.add_callback(RichProgress(trainer.meter))

    started = time.monotonic()
    saved = checkpoints.state(last) if last else None
    if saved is not None and saved["global_step"] >= cfg.max_steps:
        # Killed after its last checkpoint: Trainer.train would take a step past max_steps.
        state = TrainerState.load_from_json(str(last / checkpoints.STATE_FILE))
        losses = [h["loss"] for h in state.log_history if "loss" in h]
        train_loss = sum(losses) / len(losses) if losses else None
        final = last  # the weights training ended with
    else:
        stop.install()
        try:
            result = trainer.train(resume_from_checkpoint=str(last) if last else None)
        finally:
            stop.uninstall()
        state, train_loss, final = trainer.state, result.training_loss, None
    seconds = time.monotonic() - started

    best = state.best_model_checkpoint if cfg.keep_best and val_ds is not None else None
    _save_model(trainer, tokenizer, out_dir, Path(best) if best else final)
    history = state.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    meter = trainer.meter
    interrupted = stop.signal is not None
    summary = {
        "model": model_cfg.name,
        "tasks": tasks,
        "method": cfg.method,
        "packing": cfg.packing,
        "dtype": str(dtype).removeprefix("torch."),
        "steps": state.global_step,
        "max_steps": cfg.max_steps,
        "train_examples": len(train_rows),
        "val_examples": len(val_rows),
        "train_loss": train_loss,
        "val_loss": evals[-1] if evals else None,
        "best_val_loss": state.best_metric,
        "best_checkpoint": best,
        "output": str(out_dir),
        "seconds": round(seconds, 1),
        "train_tokens": meter.total_real * args.world_size,  # non-padding, this (re)start
        "step_seconds": round(meter.total_seconds, 2),
        "tokens_per_second": round(meter.total_real * args.world_size / meter.total_seconds, 1)
        if meter.total_seconds
        else None,
        "num_processes": args.world_size,
        "stopped_by_time_budget": stop.stopped_by_time,
        "interrupted": interrupted,
        "stopped_early": not interrupted
        and not stop.stopped_by_time
        and state.global_step < cfg.max_steps,
        "resumed_from": str(last) if last else None,
        # The train section as run, for the model card (a tracking URI may hold credentials).
        "settings": cfg.model_dump(mode="json", exclude={"mlflow_tracking_uri"}),
    }
    if trainer.is_world_process_zero():
        from repotune.cards import write_cards

        (run_dir / "train").mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "train" / "log_history.json", json.dumps(history, indent=1))
        write_json(run_dir / "train" / "summary.json", summary)
        write_cards(run_dir)  # README.md of the adapter (or merged model): replaces PEFT's stub
    trainer.accelerator.wait_for_everyone()
    if interrupted:  # everything is on disk: now stop the way Ctrl-C stops a program
        raise KeyboardInterrupt
    return summary


def _save_model(trainer, tokenizer, out_dir: Path, best: Path | None) -> None:
    """Write the adapter (or full model) to out_dir, replacing it whole: from the checkpoint
    `best` when there is one, else the weights training ended with."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    if best is None or not best.is_dir():
        trainer.save_model(str(tmp))  # every rank: FSDP/ZeRO-3 gather the weights here
    if not trainer.is_world_process_zero():
        return
    if best is not None and best.is_dir():
        tmp.mkdir(parents=True)
        for f in best.iterdir():
            if f.is_file() and not f.name.startswith(_RESUME_ONLY) and f.name != "README.md":
                shutil.copy2(f, tmp / f.name)
    tokenizer.save_pretrained(str(tmp))
    replace_dir(tmp, out_dir)
