"""The run config: one pydantic model per stage, one YAML file for a whole run.

Each stage reads only its own section, so a stage can be run alone with the same file.
`--set section.key=value` overrides a field from the command line.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from repotune.errors import UserError

# numpy, torch and transformers' set_seed take seeds in [0, 2**32).
Seed = Annotated[int, Field(ge=0, lt=2**32)]
# Schedulers and optimizers checked without importing transformers (seconds); other names are
# looked up in its enums.
_COMMON_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
_COMMON_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "paged_adamw_8bit")


def _check_weights(weights: Iterable[float], what: str) -> None:
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"{what} must be finite numbers >= 0")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    # Old key -> field: settings renamed to the TRL/transformers argument they become, whose
    # old names still load (YAML, --set, keyword arguments); config.yaml is written with the
    # new ones.
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if not cls.renamed or not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in cls.renamed.items():
            if old in data:
                if new in data:
                    raise ValueError(f"'{old}' is the old name of '{new}': give one of them")
                data[new] = data.pop(old)
        return data


class MineConfig(_Section):
    """What history to mine and how to clean it (see docs/mine.md)."""

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
    repo_workers: int = Field(
        default=2, ge=1, description="repositories mined at once in a run of several"
    )

    @field_validator("encoding_fallback")
    @classmethod
    def _known_codec(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding '{value}'") from None
        return value


TaskName = Literal["commit", "complete", "repair", "fim", "explain", "instruct"]
# Words that mark a bug-fix commit message (matched case-insensitively as whole words): the
# repair task's commits (build.repair.bugfix_pattern) and `bugs mine`'s default --pattern.
BUGFIX_PATTERN = (
    r"\b(fix(e[sd]|ing)?|bugs?|bugfix|hotfix|issues?|errors?|crash(es|ed)?|faults?|defects?|"
    r"repair(s|ed)?|correct(s|ed)?|resolve[sd]?|wrong|incorrect|broken|regression|leaks?|"
    r"overflow|off-by-one|segfault|null ?pointer|npe|typo)\b"
)


class CommitTaskConfig(_Section):
    """`commit`: message + code before -> the change (see docs/build.md)."""

    representation: Literal["diff", "functions", "tokens"] = Field(
        default="diff",
        description="diff: hunk lines; functions: changed function before -> after; "
        "tokens: cregit-style token stream -> token diff",
    )
    natural_language: bool = Field(
        default=False, description="wrap in 'There is an issue ... Please fix' / 'I corrected'"
    )
    token_context: int = Field(default=3, ge=0, description="unchanged tokens around a change")
    diff_context: int | None = Field(
        default=None,
        ge=0,
        description="unchanged lines kept before/after the changes of a diff hunk (None: git's)",
    )


class CompleteTaskConfig(_Section):
    """`complete`: the end of an added line, or an added block of up to 3 lines, predicted
    from the file before it (Giagnorio et al., TOSEM 2025; see docs/build.md)."""

    block_rate: float = Field(
        default=0.25, ge=0, le=1, description="share of targets that are whole added blocks"
    )
    min_tokens: int = Field(default=3, ge=1, description="a line target's fewest code tokens")
    max_tokens: int = Field(default=50, ge=1, description="a line target's most code tokens")
    max_block_lines: int = Field(default=3, ge=2, le=10, description="lines of a block target")
    targets_per_file: int = Field(default=3, ge=1, description="per changed file and commit")
    max_prefix_chars: int = Field(default=4000, ge=0, description="text kept before the hole")
    max_suffix_chars: int = Field(default=1000, ge=0, description="text kept after (FIM form)")
    max_prompt_tokens: int | None = Field(
        default=256, ge=16, description="prefix (and suffix) trimmed to fit (model tokenizer)"
    )
    fim_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of train rows in FIM form with the model's own sentinels (test rows "
        "are in the base model's form: FIM where it has sentinels, else left-to-right)",
    )
    loss: Literal["target", "all"] = Field(
        default="target",
        description="train loss on the target only, or on the whole text (the prompt is the "
        "repository's own code before the cutoff: continued pretraining)",
    )
    retrieval_snippets: int = Field(
        default=3, ge=0, description="BM25 snippets stored per test row (0: no retrieval rows)"
    )
    retrieval_lines: int = Field(default=12, ge=2, description="lines per indexed snippet")
    retrieval_chars: int = Field(
        default=1200, ge=0, description="characters of snippets put before a prompt"
    )


class RepairTaskConfig(_Section):
    """`repair`: RepairLLaMA IR4 (buggy function, buggy lines commented, <FILL_ME>) -> OR2."""

    commits: Literal["bugfix", "all"] = Field(
        default="bugfix", description="bug-fix commits by message, or every commit"
    )
    bugfix_pattern: str = Field(default=BUGFIX_PATTERN, description="regex on the message")
    multi_hunk: bool = Field(
        default=False, description="allow several changes in one function (first..last line)"
    )
    strip_comments: bool = Field(
        default=True, description="drop comment-only and blank lines first (RepairLLaMA)"
    )
    max_input_tokens: int | None = Field(default=1024, ge=1, description="model tokenizer")
    max_output_tokens: int | None = Field(default=256, ge=1, description="model tokenizer")
    external: list[str] = Field(
        default_factory=list,
        description="fix sets: JSONL of {path, before, after|diff, label?}, or folders of "
        ".diff/.patch files with their pre-images beside them",
    )
    external_split: Literal["hash", "train", "test"] = Field(
        default="hash", description="where external fixes go (hash: by id, like current code)"
    )
    show_label: bool = Field(
        default=False,
        description="show a fix's `label` (e.g. a CWE) as a comment line above the buggy code; "
        "`evaluate --bugs` shows manifest labels the same way",
    )

    @field_validator("bugfix_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class FimTaskConfig(_Section):
    """`fim`: files at HEAD cut on syntax boundaries, in the model's own FIM tokens."""

    tokens: Literal[
        "auto", "starcoder", "santacoder", "codellama", "deepseek", "qwen", "codegemma"
    ] = Field(default="auto", description="FIM token set; auto: from the model's tokenizer")
    fim_rate: float = Field(default=0.5, ge=0, le=1, description="share of FIM rows (rest: L2R)")
    spm_rate: float = Field(default=0.5, ge=0, le=1, description="share of FIM rows in SPM")
    cut_weights: dict[Literal["function_body", "block", "line"], float] = Field(
        default_factory=lambda: {"function_body": 1.0, "block": 1.0, "line": 1.0},
        description="how often each kind of middle is cut",
    )
    examples_per_file: int = Field(default=4, ge=1)
    max_prefix_chars: int = Field(default=2000, ge=0, description="prefix kept next to the hole")
    max_suffix_chars: int = Field(default=1000, ge=0, description="suffix kept next to the hole")
    max_middle_chars: int = Field(default=800, ge=1, description="larger middles are not cut")
    max_prompt_tokens: int | None = Field(
        default=384,
        ge=16,
        description="prefix/suffix trimmed to fit (model tokenizer); keep it below "
        "train.max_length, which would otherwise cut the sentinels off the prompt's start",
    )

    @field_validator("cut_weights")
    @classmethod
    def _some_cut(cls, value: dict[str, float]) -> dict[str, float]:
        _check_weights(value.values(), "cut weights")
        if value and not sum(value.values()) > 0:
            raise ValueError("at least one cut weight must be > 0")
        return value


class ExplainTaskConfig(_Section):
    """`explain`: code units explained by a teacher. The endpoint's URL and key come from
    REPOTUNE_TEACHER_BASE_URL / REPOTUNE_TEACHER_API_KEY only, never from a config file."""

    teacher: Literal["endpoint", "local"] = Field(
        default="endpoint", description="an OpenAI-compatible endpoint, or a local model"
    )
    teacher_model: str | None = Field(
        default=None,
        description="endpoint model name (default $REPOTUNE_TEACHER_MODEL), or a local model",
    )
    instruction: str = Field(
        default="Explain what this code does and why, for a developer new to the codebase, in "
        "one short paragraph.",
        min_length=1,
    )
    max_tokens: int = Field(default=256, ge=1, description="teacher answer length")
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_units: int = Field(default=200, ge=1, description="requests at most (cost cap)")
    min_lines: int = Field(default=3, ge=1)
    max_lines: int = Field(default=60, ge=1)
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0, description="on 429, 5xx, time-outs")
    backoff_seconds: float = Field(default=1.0, ge=0, description="first wait; doubles")
    cache_dir: str | None = Field(
        default=None, description="answers cache (default: REPOTUNE_CACHE/teacher)"
    )


class InstructTaskConfig(_Section):
    """`instruct`: the user's own instruction data (Alpaca or chat records)."""

    sources: list[str] = Field(
        default_factory=list, description="JSON, JSONL, Parquet files or `datasets` folders"
    )
    system: str | None = Field(default=None, description="system prompt on every example")
    chat_template: bool = Field(default=True, description="use the tokenizer's, if it has one")
    max_examples: int | None = Field(default=None, ge=1)


class TreeConfig(_Section):
    """Which files the current-code tasks (fim, explain) read, and from where."""

    repo: str | None = Field(
        default=None, description="git repository (default: the one `mine` read)"
    )
    ref: str | None = Field(
        default=None,
        description="commit whose tree is read (default: HEAD, or with history tasks in the "
        "same build the newest commit older than their val/test commits, so no future leaks)",
    )
    include: list[str] = Field(default_factory=list, description="path globs to keep")
    exclude: list[str] = Field(default_factory=list, description="path globs to drop")
    languages: list[str] = Field(default_factory=list, description="keep only these languages")
    max_file_bytes: int = Field(default=200_000, ge=1)
    max_files: int | None = Field(default=None, ge=1, description="files kept (seeded sample)")


class BuildConfig(_Section):
    """Which task datasets to build from the mined history and the current tree."""

    tasks: list[TaskName] = Field(default_factory=lambda: ["commit"], min_length=1)
    model: str | None = Field(
        default=None,
        description="tokenizer for FIM tokens, chat templates and token caps (default: model.name)",
    )
    mixture: dict[TaskName, float] = Field(
        default_factory=dict,
        description="train-split weight per task: 0.5 keeps half its rows, 2 repeats them",
    )
    input_context: int = Field(default=8, ge=0, description="lines of code before shown around")
    max_prompt_chars: int = Field(default=3000, ge=100)
    max_completion_chars: int = Field(default=1500, ge=10)
    split: tuple[float, float, float] = Field(
        default=(0.8, 0.1, 0.1), description="train/val/test fractions (normalised to sum 1)"
    )
    seed: Seed = 0
    commit: CommitTaskConfig = Field(default_factory=CommitTaskConfig)
    complete: CompleteTaskConfig = Field(default_factory=CompleteTaskConfig)
    repair: RepairTaskConfig = Field(default_factory=RepairTaskConfig)
    fim: FimTaskConfig = Field(default_factory=FimTaskConfig)
    explain: ExplainTaskConfig = Field(default_factory=ExplainTaskConfig)
    instruct: InstructTaskConfig = Field(default_factory=InstructTaskConfig)
    tree: TreeConfig = Field(default_factory=TreeConfig)

    @field_validator("tasks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a task is named twice")
        return value

    @field_validator("mixture")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        _check_weights(value.values(), "mixture weights")
        return value

    @field_validator("split")
    @classmethod
    def _fractions(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        _check_weights(value, "split fractions")
        if not value[0] > 0:
            raise ValueError("the train fraction must be > 0")
        return value


class ModelConfig(_Section):
    name: str = "gemma-3-270m"
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"


def _unique_tasks(value: list[str] | None) -> list[str] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("a task is named twice")
    return value


# A stage's own task list: None takes every task the last build wrote (RUN/datasets/stats.json).
StageTasks = Annotated[
    list[TaskName] | None,
    Field(default=None, min_length=1, description="None: every task built"),
]


class TrainConfig(_Section):
    """How the adapter (or the whole model) is trained; see docs/train.md. Settings passed on
    to TRL's SFTConfig (transformers' TrainingArguments) have its names; LoRA's follow
    Axolotl's (lora_r, lora_alpha, ...)."""

    renamed: ClassVar[dict[str, str]] = {
        "lr_scheduler": "lr_scheduler_type",
        "batch_size": "per_device_train_batch_size",
        "grad_accum": "gradient_accumulation_steps",
        "gradient_checkpointing": "activation_checkpointing",
    }
    tasks: StageTasks
    method: Literal["lora", "dora", "qlora", "lora-8bit", "full"] = Field(
        default="lora",
        description="lora; dora (weight-decomposed LoRA); qlora (4-bit NF4 base, bitsandbytes); "
        "lora-8bit (LLM.int8 base); full (every weight, writes RUN/merged)",
    )
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field(
        default="all-linear",
        min_length=1,
        description="all-linear, attention (q/k/v/o), qv (the LoRA paper's), or module names",
    )
    learning_rate: float = Field(default=2e-4, gt=0)
    lr_scheduler_type: str = Field(default="cosine", description="a transformers scheduler name")
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, ge=0)
    optim: str = Field(default="adamw_torch", description="a transformers optimizer name")
    per_device_train_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_steps: int = Field(default=100, ge=1)
    max_minutes: float | None = Field(default=None, gt=0, description="wall-clock budget")
    max_length: int = Field(default=512, ge=16, description="tokens per example, truncated")
    packing: Literal["padding_free", "bfd", "none"] = Field(
        default="padding_free",
        description="padding_free: a batch's examples end to end, no pad tokens; bfd: best-fit "
        "packing into max_length rows (per_device_train_batch_size rows a step); none: pad each "
        "batch. Packed examples never attend to each other (per-example position ids)",
    )
    completion_only_loss: bool = Field(default=True, description="loss on completions only")
    order: Literal["shuffle", "newest"] = Field(
        default="shuffle",
        description="shuffle: rows in random order; newest: the newest commits' rows first "
        "(shuffled within windows of 32 steps), so a budget shorter than an epoch trains on the "
        "code nearest the held-out commits (docs/results.md)",
    )
    change_weight: float = Field(
        default=1.0,
        ge=1.0,
        le=100.0,
        description="loss weight on the tokens of a diff's -/+ lines (unchanged lines: 1), "
        "against a model that learns to copy before it learns to change (docs/results.md)",
    )
    activation_checkpointing: bool = Field(
        default=False, description="trade ~30% speed for activation memory (long sequences, GPUs)"
    )
    attn_implementation: str | None = Field(
        default=None, description="sdpa, eager, flash_attention_2 ... (default: the model's)"
    )
    save_steps: int = Field(default=25, ge=1)
    save_minutes: float | None = Field(
        default=10, gt=0, description="also checkpoint when this long has passed since the last"
    )
    save_total_limit: int = Field(default=2, ge=1, description="checkpoints kept (+ the best)")
    eval_steps: int | None = Field(default=None, ge=1, description="default: half the steps")
    max_val_examples: int = Field(default=32, ge=0, description="validation rows during training")
    keep_best: bool = Field(
        default=True, description="RUN/adapter is the checkpoint with the lowest validation loss"
    )
    early_stopping_patience: int | None = Field(
        default=None, ge=1, description="stop after this many evaluations without improvement"
    )
    early_stopping_threshold: float = Field(default=0.0, ge=0)
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="trackers: TensorBoard (RUN/train/tensorboard), MLflow (file store)",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="default: $MLFLOW_TRACKING_URI, else ./mlruns (no server)"
    )
    mlflow_experiment: str = "repotune"
    progress: bool = Field(default=True, description="rich progress bar with tokens/s and ETA")
    logging_steps: int = Field(default=5, ge=1)
    seed: Seed = 0

    _tasks = field_validator("tasks")(_unique_tasks)

    @field_validator("lr_scheduler_type", "optim")
    @classmethod
    def _known_name(cls, value: str, info: ValidationInfo) -> str:
        """A typo fails here, not when the trainer starts minutes later."""
        if info.field_name == "lr_scheduler_type":
            if value not in _COMMON_SCHEDULERS:
                from transformers.trainer_utils import SchedulerType

                _one_of(value, [s.value for s in SchedulerType])
        elif value not in _COMMON_OPTIMIZERS:
            from transformers.training_args import OptimizerNames

            _one_of(value, [o.value for o in OptimizerNames])
        return value


class EvaluateConfig(_Section):
    tasks: StageTasks
    max_examples: int | None = Field(default=None, ge=1, description="cap on loss examples")
    generate_examples: int = Field(default=8, ge=0, description="greedy generations per model")
    complete_examples: int = Field(
        default=300, ge=1, description="`complete` test targets each model answers"
    )
    merge: bool = Field(
        default=True,
        description="evaluate the adapter folded into the weights (float32 merge, then the "
        "model dtype): the base model's speed instead of ~1.8x its time",
    )
    retrieval_examples: int = Field(
        default=300, ge=0, description="of those, answered again with BM25 snippets (0: none)"
    )
    max_new_tokens: int = Field(default=128, ge=1)
    batch_size: int = Field(default=4, ge=1)
    constrain_diffs: bool = Field(
        default=True,
        description="decode diff answers in their grammar: the code before as the old side, "
        "loops of added lines ended (docs/evaluate.md)",
    )
    diff_forks: int = Field(
        default=0,
        ge=0,
        le=10,
        description="broken added lines taken back per diff answer, each a regeneration",
    )
    reuse_base: bool = Field(
        default=False,  # a kill -9 test saw tuned losses differ in the low bits when it was on
        description="keep the base model's answers to rows whose prompt and settings are "
        "unchanged since the last evaluation (a refresh scores the base on its new rows only)",
    )

    _tasks = field_validator("tasks")(_unique_tasks)


class EvalExecConfig(_Section):
    """Proof by execution: candidates, sandbox limits, repair turns, HumanEval
    (see docs/evaluate.md)."""

    backend: Literal["auto", "transformers", "vllm"] = Field(
        default="auto", description="auto: vLLM when installed with a GPU, else transformers"
    )
    candidates: int = Field(default=10, ge=1, description="candidates per bug (RepairLLaMA: 10)")
    decoding: Literal["beam", "sample", "greedy"] = "beam"
    num_beams: int | None = Field(default=None, ge=1, description="default: candidates")
    temperature: float = Field(default=0.8, gt=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: Seed = 0
    max_new_tokens: int = Field(default=256, ge=1)
    max_prompt_tokens: int = Field(default=1024, ge=16)
    batch_size: int = Field(default=2, ge=1, description="prompts per generate call")
    stop: list[str] = Field(default_factory=list, description="stop sequences (repair)")
    turns: int = Field(default=0, ge=0, description="extra turns fed back the trimmed error")
    k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 5, 10], min_length=1, description="k for plausible@k"
    )
    workers: int | None = Field(default=None, ge=1, description="parallel runs; default: cores")
    timeout: float = Field(default=60.0, gt=0, description="seconds, when a bug gives none")
    memory_mb: int = Field(default=4096, ge=64, description="address space per process")
    max_processes: int = Field(default=64, ge=4)
    file_size_mb: int = Field(default=64, ge=1)
    tmp_mb: int = Field(default=256, ge=1, description="private /tmp size")
    network: bool = Field(default=False, description="let commands reach the network")
    sandbox_uid: int = Field(default=65534, ge=1, description="uid for commands when root")
    read_paths: list[str] = Field(
        default_factory=list, description="folders under $HOME that commands may read"
    )
    cache: bool = Field(default=True, description="reuse outcomes of identical candidates")
    static_analysers: bool = Field(default=True, description="ruff/pyflakes/cppcheck row")
    humaneval_limit: int | None = Field(default=None, ge=1, description="first N problems")
    humaneval_samples: int = Field(default=1, ge=1, description="1: greedy; more: sampled")
    humaneval_timeout: float = Field(default=3.0, gt=0, description="seconds per problem")


class RefreshConfig(_Section):
    """`repotune refresh RUN`: how the adapter keeps up with new commits (docs/train.md)."""

    renamed: ClassVar[dict[str, str]] = {"lr_scheduler": "lr_scheduler_type"}

    replay: float = Field(
        default=1.0, ge=0, description="old train rows replayed per new row (a seeded sample)"
    )
    epochs: float = Field(default=1.0, gt=0, description="passes over new + replayed rows")
    steps: int | None = Field(default=None, ge=1, description="steps per refresh (default: epochs)")
    lr_scheduler_type: str = Field(
        default="constant", description="learning rate of the continued steps (see train)"
    )

    @field_validator("lr_scheduler_type")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        if value not in _COMMON_SCHEDULERS:
            from transformers.trainer_utils import SchedulerType

            _one_of(value, [s.value for s in SchedulerType])
        return value


class RunConfig(_Section):
    mine: MineConfig = Field(default_factory=MineConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    eval_exec: EvalExecConfig = Field(default_factory=EvalExecConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)


def _one_of(value: str, names: list[str]) -> None:
    if value not in names:
        raise ValueError(f"'{value}' is not one of {', '.join(names)}")


def _first_error(err: ValidationError, source: str) -> UserError:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    msg = e["msg"].removeprefix("Value error, ")  # a validator's own words
    return UserError(f"{source}: invalid field '{where}': {msg}{more}")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only true/false (any case PyYAML takes).
    YAML 1.1 also reads on/off/yes/no as booleans, so `dedup: off` arrived as False and was
    rejected; now it stays the string "off", and bool fields still take "off" or "yes", which
    pydantic converts itself."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def yaml_load(text: str) -> Any:
    """A config's YAML: `off`, `on`, `yes` and `no` are strings (see `_Loader`)."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader


def _set_path(data: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {dotted}: '{k}' is not a section")
    try:
        value = yaml_load(raw) if raw != "" else None
    except yaml.YAMLError:
        raise UserError(f"--set {dotted}: the value is not valid YAML") from None
    # A renamed setting under either name replaces the file's, under either name.
    section = RunConfig.model_fields.get(keys[0]) if len(keys) == 2 else None
    renamed: dict[str, str] = getattr(section and section.annotation, "renamed", {})
    key = renamed.get(keys[-1], keys[-1])
    for old in [o for o, new in renamed.items() if new == key]:
        node.pop(old, None)
    node[key] = value


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
            loaded = yaml_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise UserError(f"{p}: not valid YAML{line}") from None
        except (UnicodeDecodeError, OSError) as exc:
            why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
            raise UserError(f"{p}: cannot read the config ({why})") from None
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
