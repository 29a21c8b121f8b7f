"""The run config: one pydantic model per stage, one YAML file for a whole run.

Each stage reads only its own section, so a stage can be run alone with the same file.
`--set section.key=value` overrides a field from the command line.
"""

from __future__ import annotations

import codecs
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from repotune.errors import UserError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MineConfig(_Section):
    """What history to mine and how to clean it (see docs/mining.md)."""

    ref: str = Field(default="HEAD", description="branch, tag, sha, or a range A..B")
    max_commits: int | None = Field(default=None, ge=1, description="newest N commits")
    since: datetime | None = Field(default=None, description="committed at or after (UTC)")
    until: datetime | None = Field(default=None, description="committed before (UTC)")
    include_merges: bool = Field(default=False, description="mine merges against 1st parent")
    # Bots and automated updaters, matched against "Name <email>" ignoring case; only `*` and
    # `?` are wildcards, so `[bot]` is literal.
    exclude_authors: list[str] = Field(
        default_factory=lambda: [
            "*[bot]*", "dependabot*", "renovate*", "github-actions*", "greenkeeper*",
            "pre-commit-ci*", "snyk-bot*",
        ],
        description="'Name <email>' globs to drop",
    )  # fmt: skip
    drop_messages: list[Literal["empty", "merge", "revert", "version_bump"]] = Field(
        default_factory=lambda: ["empty", "merge", "revert", "version_bump"],
        description="message filters that drop a commit",
    )
    max_changed_lines: int | None = Field(
        default=25, ge=1, description="drop commits changing more lines (added + deleted)"
    )
    max_changed_files: int | None = Field(default=None, ge=1, description="drop larger commits")
    include: list[str] = Field(default_factory=list, description="path globs to keep")
    exclude: list[str] = Field(default_factory=list, description="path globs to drop")
    languages: list[str] = Field(default_factory=list, description="keep only these languages")
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    context_lines: int = Field(default=3, ge=0, description="context lines in each hunk")
    find_copies: bool = Field(default=False, description="detect copies as well as renames")
    encoding_fallback: str | None = Field(
        default=None, description="decode non-UTF-8 text with this codec instead of skipping"
    )
    dedup: Literal["off", "exact", "near"] = Field(
        default="near", description="drop later copies of a commit's change (MinHash LSH)"
    )
    near_dup_threshold: float = Field(default=0.85, gt=0, le=1, description="Jaccard")
    scrub_secrets: bool = Field(default=True, description="replace keys/tokens/passwords")
    secret_placeholder: str = Field(default="<SECRET>", min_length=1)
    hash_authors: bool = Field(default=False, description="replace names/e-mails by a hash")
    author_salt: str = Field(default="", description="salt for hash_authors")
    workers: int | None = Field(default=None, ge=1, description="processes; default: CPU cores")
    shard_size: int | None = Field(default=None, ge=1, description="commits per shard")

    @field_validator("encoding_fallback")
    @classmethod
    def _known_codec(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding '{value}'") from None
        return value


class BuildConfig(_Section):
    tasks: list[Literal["commit"]] = Field(default_factory=lambda: ["commit"])
    input_context: int = Field(default=8, ge=0, description="lines of code before shown around")
    max_prompt_chars: int = Field(default=3000, ge=100)
    max_completion_chars: int = Field(default=1500, ge=10)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0


class ModelConfig(_Section):
    name: str = "gemma-3-270m"
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"


class TrainConfig(_Section):
    method: Literal["lora"] = "lora"
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = Field(default=2e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    batch_size: int = Field(default=4, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    max_steps: int = Field(default=100, ge=1)
    max_minutes: float | None = Field(default=None, gt=0, description="wall-clock budget")
    max_length: int = Field(default=512, ge=16, description="tokens per example, truncated")
    gradient_checkpointing: bool = Field(
        default=False, description="trade ~30% speed for activation memory (long sequences, GPUs)"
    )
    save_steps: int = Field(default=25, ge=1)
    eval_steps: int | None = Field(default=None, ge=1, description="default: half the steps")
    max_val_examples: int = Field(default=32, ge=0, description="validation rows during training")
    logging_steps: int = Field(default=5, ge=1)
    seed: int = 0


class EvaluateConfig(_Section):
    max_examples: int | None = Field(default=None, ge=1, description="cap on loss examples")
    generate_examples: int = Field(default=8, ge=0, description="greedy generations per model")
    max_new_tokens: int = Field(default=128, ge=1)
    batch_size: int = Field(default=4, ge=1)


class RunConfig(_Section):
    mine: MineConfig = Field(default_factory=MineConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)


def _first_error(err: ValidationError, source: str) -> UserError:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return UserError(f"{source}: invalid field '{where}': {e['msg']}{more}")


def _set_path(data: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {dotted}: '{k}' is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read YAML (or defaults when no path), apply `key.sub=value` overrides, validate."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise UserError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise UserError(f"{p}: not valid YAML{line}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UserError(f"{p}: expected a mapping of sections at the top level")
        data = loaded
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"--set expects section.key=value, got '{item}'")
        key, raw = item.split("=", 1)
        _set_path(data, key.strip(), raw)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise _first_error(err, source) from None


def dump_config(cfg: RunConfig, path: Path) -> None:
    from repotune.fsutil import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
