"""TRL's SFTTrainer plus two things it does not log (tokens/s and the share of padding), and
the optional loss weight on a diff's changed lines (train/weights.py)."""

from __future__ import annotations

from trl import SFTTrainer

from repotune.train.meter import TokenMeter
from repotune.train.weights import ChangeLineWeights, weight_fused_log_probs


class Trainer(SFTTrainer):
    """An SFTTrainer that meters the training batches it steps on."""

    def __init__(self, *args, change_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.meter = TokenMeter()
        self.add_callback(self.meter)
        if change_weight != 1.0:
            weigh = ChangeLineWeights(self.processing_class, change_weight)
            weight_fused_log_probs(self.model, weigh)

    def training_step(self, model, inputs, *args, **kwargs):
        self.meter.count(inputs)
        return super().training_step(model, inputs, *args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:
            gather = lambda t: self.accelerator.gather(t.to(self.args.device))  # noqa: E731
            logs.update(self.meter.flush(gather))
        super().log(logs, start_time)
