"""The run directory: the one module that knows the files stages pass each other.

Every stage reads and writes plain files in RUN/ (DESIGN.md, "The pipeline"); this module
owns their names and the rules for reading them, so two stages never disagree about what a
file means:

- `config.yaml`: `read_config`, validated as every command validates a config;
- `datasets/<task>/{train,val,test}.jsonl`: `split_path`, `load_split`;
- `datasets/stats.json`, build's record of the tasks it built (in its order) and their counts:
  `dataset_stats`, `built_tasks`, and `stage_tasks`, which gives train and evaluate their
  tasks from this record rather than from build's config section;
- `train/summary.json`: `train_summary`;
- the tuned model, `adapter/` or `merged/`: `tuned_model`, the one rule that `evaluate` (all
  its forms), `serve` and `chat` follow, and `Tuned.load_args`, the (model, adapter) they
  load it by;
- `eval/summary.json`, one section per benchmark (`tasks`, `bugs`, `humaneval`, `questions`)
  with its scores, pass@k and plausible@k included: `read_eval_summary`, `update_section`,
  `update_tasks`. The report reads the scores from here rather than recomputing them.

Stages import this module and the shared layers, never each other (the import contract in
pyproject.toml).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from repotune.errors import UserError
from repotune.fsutil import read_jsonl, write_json

if TYPE_CHECKING:
    from repotune.config import RunConfig

CONFIG = "config.yaml"  # the run's config as `repotune run` (or the user) wrote it
COMMITS = "commits.parquet"  # mine's output (schema: repotune/commits.py)
MINE_STATS = "mine_stats.json"
DATASETS = "datasets"
DATASET_STATS = "datasets/stats.json"  # written last by build: the tasks it built, in order
SPLITS = ("train", "val", "test")
EVAL_SUMMARY = "eval/summary.json"
ADAPTER = "adapter"  # a PEFT adapter (lora, dora, qlora, lora-8bit)
MERGED = "merged"  # a whole model: a full fine-tune, or `repotune merge` of the adapter


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def config_path(run_dir: Path) -> Path:
    return Path(run_dir) / CONFIG


def read_config(run_dir: Path, strict: bool = True) -> RunConfig | None:
    """RUN/config.yaml validated as every command validates a config; None when absent, and
    with `strict` off also when it is not a valid config (for readers that only describe)."""
    from repotune.config import load_config

    path = config_path(run_dir)
    if not path.is_file():
        return None
    try:
        return load_config(path)
    except UserError:
        if strict:
            raise
        return None


# -- mine's outputs ----------------------------------------------------------------------------
def commits_path(run_dir: Path) -> Path:
    return Path(run_dir) / COMMITS


def mine_stats(run_dir: Path) -> dict:
    """RUN/mine_stats.json ({} before mining): the repository read, counts, drop reasons."""
    return _json(Path(run_dir) / MINE_STATS)


# -- datasets ----------------------------------------------------------------------------------
def split_path(run_dir: Path, task: str, split: str) -> Path:
    return Path(run_dir) / DATASETS / task / f"{split}.jsonl"


def load_split(run_dir: Path, task: str, split: str) -> list[dict]:
    """The rows build wrote for one task and split (Example fields: id, task, prompt,
    completion, meta)."""
    path = split_path(run_dir, task, split)
    if not path.is_file():
        raise UserError(f"missing dataset {path}: run `repotune build` first")
    return read_jsonl(path)


def dataset_stats_path(run_dir: Path) -> Path:
    return Path(run_dir) / DATASET_STATS


def dataset_stats(run_dir: Path) -> dict:
    """RUN/datasets/stats.json ({} before building): per task, its examples per split, drops,
    lengths."""
    return _json(dataset_stats_path(run_dir))


def _has_splits(run_dir: Path, task: str) -> bool:
    return any(split_path(run_dir, task, split).is_file() for split in SPLITS)


def built_tasks(run_dir: Path) -> list[str]:
    """The tasks the last build wrote, in its order. Build rewrites datasets/stats.json with
    exactly the tasks it built, so the folder of a task an older build wrote and this one did
    not is not among them. A run without that record (datasets written by hand, or copied
    in): every folder holding a split."""
    run_dir = Path(run_dir)
    if dataset_stats_path(run_dir).is_file():
        return [t for t in dataset_stats(run_dir) if _has_splits(run_dir, t)]
    folder = run_dir / DATASETS
    tasks = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return sorted(t for t in tasks if _has_splits(run_dir, t))


def stage_tasks(run_dir: Path, wanted: list[str] | None, setting: str) -> list[str]:
    """The tasks a stage works on: every task built, or the `wanted` ones (its `setting`, such
    as train.tasks), each of which must have been built."""
    built = built_tasks(run_dir)
    if not built:
        where = Path(run_dir) / DATASETS
        raise UserError(f"no datasets in {where}: run `repotune build` first")
    if wanted is None:
        return built
    missing = [t for t in wanted if t not in built]
    if missing:
        raise UserError(
            f"{setting} names {', '.join(missing)}, which the last build did not write "
            f"(built: {', '.join(built)}): add it to build.tasks and run `repotune build`"
        )
    return list(wanted)


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

    def load_args(self, fast: bool = False) -> tuple[str, str | None]:
        """(model, adapter or None): what every loader takes (models.load.load_model,
        infer.backends.open_backend, serve's load_engine), so evaluate, serve and chat load
        the same weights. The base and RUN/adapter, or a full fine-tune's folder; `fast`
        (serve, chat): RUN/merged wherever it holds these weights, instead of an adapter
        folded in at load time (evaluate's `merge`)."""
        if fast and self.merged is not None:
            return str(self.merged), None
        return self.model, str(self.adapter) if self.adapter is not None else None


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


# -- eval/summary.json -------------------------------------------------------------------------
def eval_summary_path(run_dir: Path) -> Path:
    return Path(run_dir) / EVAL_SUMMARY


def read_eval_summary(run_dir: Path) -> dict:
    """Every section evaluation wrote; a missing file is a user's mistake."""
    path = eval_summary_path(run_dir)
    if not path.is_file():
        raise UserError(f"no evaluation at {path}: run `repotune evaluate` first")
    return json.loads(path.read_text(encoding="utf-8"))


def _summary_on_disk(run_dir: Path) -> dict:
    path = eval_summary_path(run_dir)
    try:
        summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError:
        summary = {}
    return summary if isinstance(summary, dict) else {}


def update_tasks(run_dir: Path, summary: dict) -> dict:
    """Write the held-out tasks' results (`evaluate` without options): other sections (bugs,
    humaneval, ...) stay, and so do tasks evaluated earlier (`evaluate.tasks=[complete]` after
    `[commit]`)."""
    previous = _summary_on_disk(run_dir)
    tasks = {**(previous.get("tasks") or {}), **summary["tasks"]}
    merged = {**previous, **summary, "tasks": tasks}
    write_json(eval_summary_path(run_dir), merged)
    return merged


def update_section(run_dir: Path, section: str, data: dict) -> dict:
    """Merge one section into eval/summary.json, keeping the other sections and, within this
    one, every model an earlier run scored (see `merge_section`)."""
    summary = _summary_on_disk(run_dir)
    summary.setdefault("tasks", {})
    previous = summary.get(section)
    summary[section] = merge_section(previous, data) if isinstance(previous, dict) else data
    write_json(eval_summary_path(run_dir), summary)
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
