"""The run directory: the one module that knows the files stages pass each other.

Every stage reads and writes plain files in RUN/ (see docs/build.md and DESIGN.md); this
module owns their names and the rules for reading them, so two stages never disagree about
what a file means. Above all, "the tuned model" has one rule here (`tuned_model`), which
`evaluate`, `evaluate --bugs/--humaneval/--questions`, `serve` and `chat` all follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from repotune.errors import UserError

if TYPE_CHECKING:
    from repotune.config import RunConfig

CONFIG = "config.yaml"  # the run's config as `repotune run` (or the user) wrote it
ADAPTER = "adapter"  # a PEFT adapter (lora, dora, qlora, lora-8bit)
MERGED = "merged"  # a whole model: a full fine-tune, or `repotune merge` of the adapter


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_config(run_dir: Path) -> RunConfig | None:
    """RUN/config.yaml validated as every command validates a config (None when absent)."""
    from repotune.config import load_config

    path = Path(run_dir) / CONFIG
    return load_config(path) if path.is_file() else None


def train_summary(run_dir: Path) -> dict:
    """RUN/train/summary.json ({} before training)."""
    return _json(Path(run_dir) / "train" / "summary.json")


@dataclass(frozen=True)
class Tuned:
    """Which weights are the run's tuned model, and how they load.

    kind: `adapter` (base + RUN/adapter), `merged` (the same, with RUN/merged holding the
    adapter folded in: the same weights, loaded faster) or `full` (RUN/merged is every weight
    of a full fine-tune; there is no adapter)."""

    kind: Literal["adapter", "merged", "full"]
    base: str  # the base model as configured (model.name)
    adapter: Path | None  # RUN/adapter, unless kind is full
    merged: Path | None  # a folder with the whole tuned model, when there is one

    @property
    def model(self) -> str:
        """What to load before applying `adapter`: the base, or the full fine-tune's folder."""
        return str(self.merged) if self.kind == "full" else self.base

    @property
    def fast(self) -> tuple[str, Path | None]:
        """(model, adapter) for serving: a merged folder when it has these weights."""
        return (str(self.merged), None) if self.merged is not None else (self.base, self.adapter)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def tuned_model(run_dir: Path, base: str) -> Tuned:
    """The one rule for "tuned". The last training decides: train/summary.json's method, so a
    full fine-tune is RUN/merged even where an older RUN/adapter is still there. After an
    adapter, RUN/merged counts as its merge only when written after it (`repotune merge`);
    an older RUN/merged is a stale model and is ignored. Without a summary (a folder copied in
    by hand) an adapter wins, else RUN/merged."""
    run_dir = Path(run_dir)
    adapter, merged = run_dir / ADAPTER, run_dir / MERGED
    has_adapter = (adapter / "adapter_config.json").is_file()
    has_merged = (merged / "config.json").is_file()
    method = train_summary(run_dir).get("method")
    if method == "full" or (has_merged and not has_adapter):
        if not has_merged:
            raise UserError(f"no model at {merged}: run `repotune train` (method full) first")
        return Tuned("full", base, None, merged)
    if not has_adapter:
        raise UserError(f"no adapter at {adapter} or model at {merged}: run `repotune train` first")
    fresh = has_merged and _mtime(merged / "config.json") >= _mtime(adapter / "adapter_config.json")
    return Tuned("merged" if fresh else "adapter", base, adapter, merged if fresh else None)


def is_trained(run_dir: Path) -> bool:
    """Whether the run has a tuned model at all."""
    try:
        tuned_model(run_dir, "")
    except UserError:
        return False
    return True
