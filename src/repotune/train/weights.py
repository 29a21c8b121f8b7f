"""Loss weight on the changed lines of a diff completion (`train.change_weight`).

A hunk's completion is mostly unchanged lines copied from the code before, so plain SFT
spends most of its signal on copying, and after a short run the model's likeliest answer is
a diff that changes nothing (docs/results.md). Up-weighting the tokens of the `-`/`+` lines
tilts the step towards the change itself; the decision to start a changed line is the `-`/`+`
token that opens it, so that token is weighted too.

Weights are read off the token ids of the labelled positions (no extra dataset column, so
TRL's data preparation, packing and collators stay as they are) and applied to the per-token
log-probabilities of TRL's fused LM head, which then reduces them as usual.
"""

from __future__ import annotations

from typing import Any

import torch

from repotune.models.vocab import vocab_texts
from repotune.records import is_changed_line


class ChangeLineWeights:
    """Per-token weights for labelled diff text: `weight` on the tokens of lines that start
    with `-` or `+`, 1 elsewhere. A line starts after a token that holds a newline (with the
    rest of that token, when the newline is not its last character) or at a completion's
    first token."""

    def __init__(self, tokenizer: Any, weight: float) -> None:
        self.weight = weight
        self._text = vocab_texts(tokenizer)

    def __call__(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(batch, seq) weights for the positions of `labels` (ignored positions weigh 1)."""
        weights = torch.ones(labels.shape, dtype=torch.float32)
        ids, lab = input_ids.tolist(), labels.tolist()
        for row in range(len(ids)):
            changed = False
            line_start = True
            for t, (token, label) in enumerate(zip(ids[row], lab[row], strict=True)):
                if label == -100:
                    line_start = True  # the next completion starts a line
                    continue
                text = self._text[token] if 0 <= token < len(self._text) else ""
                if line_start and text:
                    changed = is_changed_line(text)
                    line_start = False
                if changed:
                    weights[row, t] = self.weight
                if "\n" in text:
                    tail = text.rsplit("\n", 1)[1]
                    changed = is_changed_line(tail)
                    line_start = not tail
        return weights


def weight_fused_log_probs(model: torch.nn.Module, weigh: ChangeLineWeights) -> Any:
    """Scale TRL's fused-head per-token log-probabilities by `weigh` while training.

    A forward hook on the model TRL calls: TRL then sums the scaled values and divides by
    the token count as before, so the loss is a weighted sum. Returns the hook handle."""

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        log_probs = getattr(output, "log_probs", None)
        labels = kwargs.get("labels")
        if not module.training or log_probs is None or labels is None:
            return output
        weights = weigh(kwargs["input_ids"], labels)[:, 1:]
        output.log_probs = log_probs * weights.to(log_probs.device, log_probs.dtype)
        return output

    return model.register_forward_hook(hook, with_kwargs=True)
