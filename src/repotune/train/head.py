"""Score only the positions that carry a label in TRL's fused LM head, on every device.

TRL 1.16 computes the loss through a fused, vocabulary-chunked LM head: no (tokens x vocab)
logits are materialized. On Triton devices it projects only the positions whose label is not
-100; elsewhere it projects every position, because on Neuron a varying number of positions
means a recompilation per batch. On a CPU (or MPS) shapes cost nothing, while the output layer
is most of the work for large vocabularies (Gemma 3: 262k rows, ~60% of a 270M model's FLOPs),
so projecting the prompt positions too, which completion-only loss ignores, roughly doubles it.

The loss and its gradient are the same either way; only the work changes.
"""

from __future__ import annotations

import torch

_COMPACT_DEVICES = {"cpu", "mps", "cuda", "xpu"}


def compact_label_positions() -> bool:
    """Make TRL's fused head skip unlabeled positions on CPU/MPS too. False if TRL changed
    shape (then its own behaviour stands: correct, just slower)."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None or getattr(original, "_repotune", False):
        return original is not None

    def use_compact(device: torch.device) -> bool:
        return device.type in _COMPACT_DEVICES or original(device)

    use_compact._repotune = True  # type: ignore[attr-defined]
    trl_utils._use_triton = use_compact
    return True
