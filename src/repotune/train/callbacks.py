"""Trainer callbacks that keep a run safe and visible.

- `StopAndSave`: Ctrl-C (SIGINT) or SIGTERM, the wall-clock budget, or the time since the
  last checkpoint ends the step with a checkpoint (and, for the first two, stops cleanly).
  Under several processes the decision is all-reduced, so every rank stops at the same step.
- `SaveBest`: a new lowest validation loss is always written to disk, so the best checkpoint
  survives however checkpoints are rotated.
- `RichProgress`: one progress bar with loss, tokens/s and ETA instead of tqdm and log dicts.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import torch
from transformers import TrainerCallback


class StopAndSave(TrainerCallback):
    def __init__(self, max_minutes: float | None, save_minutes: float | None):
        self.deadline = None if max_minutes is None else time.monotonic() + max_minutes * 60
        self.save_every = None if save_minutes is None else save_minutes * 60
        self.last_save = time.monotonic()
        self.signal: int | None = None
        self.stopped_by_time = False
        self._previous: dict[int, object] = {}

    # -- signals: the first one asks for a clean stop, a second one aborts at once --
    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame) -> None:
        if self.signal is not None:
            self.uninstall()
            raise KeyboardInterrupt
        self.signal = signum
        print(
            "\nrepotune: stopping after this step and writing a checkpoint "
            "(Ctrl-C again to abort without one)",
            file=sys.stderr,
            flush=True,
        )

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        wanted = torch.tensor(
            [
                self.signal is not None,
                self.deadline is not None and now >= self.deadline,
                self.save_every is not None and now - self.last_save >= self.save_every,
            ],
            dtype=torch.int32,
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            wanted = wanted.to(args.device)
            torch.distributed.all_reduce(wanted, op=torch.distributed.ReduceOp.MAX)
        interrupted, out_of_time, save_due = (bool(x) for x in wanted.tolist())
        if interrupted and self.signal is None:
            self.signal = signal.SIGINT  # another rank got it
        self.stopped_by_time |= out_of_time
        if interrupted or out_of_time:
            control.should_training_stop = True
        if interrupted or out_of_time or save_due:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()


class SaveBest(TrainerCallback):
    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is not None and (state.best_metric is None or loss < state.best_metric):
            control.should_save = True
        return control


class RichProgress(TrainerCallback):
    """Step bar with the latest loss, validation loss, tokens/s and ETA (main process only)."""

    def __init__(self, meter) -> None:
        self.meter = meter
        self.progress = None
        self.fields = {"loss": "", "val": "", "tps": ""}

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[tps]}"),
            TextColumn("{task.fields[loss]}{task.fields[val]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, **self.fields
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is None:
            return
        if self.meter.total_seconds > 0:
            tps = self.meter.total_real * args.world_size / self.meter.total_seconds
            self.fields["tps"] = f"{tps:,.0f} tok/s"
        self.progress.update(self.task, completed=state.global_step, **self.fields)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        if "loss" in logs:
            self.fields["loss"] = f"loss {logs['loss']:.3f}"
        if "eval_loss" in logs:
            self.fields["val"] = f"  val {logs['eval_loss']:.3f}"
        self.progress.update(self.task, **self.fields)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, **self.fields)
            self.progress.stop()
            self.progress = None
