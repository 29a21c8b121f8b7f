"""Which models to compare, and where comparisons land: `eval/summary.json`, one section per
benchmark (`tasks` from held-out splits, `bugs`, `humaneval`) so the report reads one file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from repotune.config import EvalExecConfig, ModelConfig
from repotune.fsutil import write_json
from repotune.infer.backends import Backend, open_backend
from repotune.rundir import is_trained, tuned_model


@dataclass(frozen=True)
class Contender:
    label: str  # "base", "tuned", or the spec as given
    spec: str  # what open_backend takes
    adapter: str | None = None


def contenders(specs: list[str] | None, run_dir: Path, model_cfg: ModelConfig) -> list[Contender]:
    """`base` = the run's model, `tuned` = the run's tuned model (rundir.tuned_model: base +
    RUN/adapter, or RUN/merged after a full fine-tune); anything else (a model folder, hub id,
    `openai:NAME`) is taken as given. Default: base, plus tuned when trained."""
    if not specs:
        specs = ["base", "tuned"] if is_trained(run_dir) else ["base"]
    out = []
    for spec in dict.fromkeys(specs):
        if spec == "base":
            out.append(Contender("base", model_cfg.name))
        elif spec == "tuned":
            tuned = tuned_model(run_dir, model_cfg.name)
            adapter = str(tuned.adapter) if tuned.adapter else None
            out.append(Contender("tuned", tuned.model, adapter))
        else:
            out.append(Contender(spec, spec))
    return out


def open_contender(c: Contender, cfg: EvalExecConfig, dtype: str) -> Backend:
    return open_backend(
        c.spec,
        adapter=c.adapter,
        kind=cfg.backend,
        dtype=dtype,
        batch_size=cfg.batch_size,
        max_prompt_tokens=cfg.max_prompt_tokens,
        name=c.label,
    )


def file_label(label: str) -> str:
    """A model label as a file name: `openai:gpt-4o` -> `openai_gpt-4o`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def update_summary(run_dir: Path, section: str, data: dict) -> dict:
    """Merge one section into eval/summary.json, keeping the other sections and, within this
    one, every model an earlier run scored (see `merge_section`)."""
    path = run_dir / "eval" / "summary.json"
    summary: dict = {}
    if path.is_file():
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            summary = {}
    summary.setdefault("tasks", {})
    previous = summary.get(section)
    summary[section] = merge_section(previous, data) if isinstance(previous, dict) else data
    write_json(path, summary)
    return summary


def merge_section(old: dict, new: dict) -> dict:
    """`new`'s fields win, but a `models` map keeps the models only `old` has, here and in
    per-item maps (`per_bug`): one `evaluate -m other` run must not erase the base and tuned
    scores already there. Each model's entry carries its own item count (`n_problems`,
    `n_bugs`), so an entry from an earlier run on another subset stays labelled."""
    out = {**old, **new}
    for key, value in new.items():
        prev = old.get(key)
        if not (isinstance(value, dict) and isinstance(prev, dict)):
            continue
        if key == "models":
            out[key] = {**prev, **value}
        elif key == "per_bug":
            out[key] = {
                item: merge_section(prev.get(item) or {}, value.get(item) or {})
                for item in {**prev, **value}
            }
    return out
