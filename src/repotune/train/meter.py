"""Token throughput and padding share of the training batches as the steps consume them."""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback


class TokenMeter(TrainerCallback):
    """Counts real and padded positions of each training micro-batch, and times the optimizer
    steps (data loading, evaluation and saving are not counted)."""

    def __init__(self) -> None:
        self.real = self.positions = 0  # since the last `flush`
        self.seconds = 0.0
        self.total_real = 0  # this process, since training (re)started
        self.total_seconds = 0.0
        self._t0: float | None = None

    def count(self, batch: dict) -> None:
        positions = int(batch["input_ids"].numel())
        # Padding-free batches are one row of real tokens with no attention mask.
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else positions
        self.real += real
        self.positions += positions
        self.total_real += real

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._t0 is not None:
            dt = time.perf_counter() - self._t0
            self.seconds += dt
            self.total_seconds += dt
            self._t0 = None

    def flush(self, gather) -> dict[str, float]:
        """tokens/s (all processes) and the share of pad positions since the last flush."""
        counts = gather(torch.tensor([self.real, self.positions], dtype=torch.float64))
        counts = counts.view(-1, 2).sum(0)
        out = {}
        if self.seconds > 0:
            out["tokens_per_second"] = round(float(counts[0]) / self.seconds, 1)
        if counts[1] > 0:
            out["padding_share"] = round(1 - float(counts[0]) / float(counts[1]), 4)
        self.real = self.positions = 0
        self.seconds = 0.0
        return out
