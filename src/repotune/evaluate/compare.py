"""Which models to compare: base, the run's tuned model, or any other model or endpoint.
Their scores land in `eval/summary.json` (rundir.update_section), one section per benchmark."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from repotune.config import EvalExecConfig, ModelConfig
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
            out.append(Contender("tuned", *tuned_model(run_dir, model_cfg.name).load_args()))
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
