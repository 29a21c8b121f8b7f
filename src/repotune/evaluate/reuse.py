"""The base model's answers, kept from one evaluation to the next.

The base model never changes, so its answer to a row whose inputs and settings are the same
as last time is the same answer. A refresh moves the test window forward by a few commits;
keeping these answers, it scores the base on the new rows only, and its evaluation cost
follows the new commits. The tuned model changed, so it answers every row again.

Each per-row record carries `key`: a hash of what decided the answer (the prompt, the
reference, the model and its dtype, the settings that shape decoding and batching, and the
row's role: scored for loss, answered, in which grammar). A record is kept where the key is
the same, whatever the row's id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from repotune.config import EvaluateConfig
from repotune.errors import UserError
from repotune.fsutil import read_jsonl


def _version() -> str:
    try:
        return version("repotune")  # a new release may decode differently
    except PackageNotFoundError:
        return "unknown"


def settings(model: str, dtype: str, cfg: EvaluateConfig, max_length: int) -> dict:
    """What else decides a base answer: the model, the decoding and the batching (padding
    changes the low bits of a batch's logits)."""
    return {
        "model": model,
        "dtype": dtype,
        "max_length": max_length,
        "max_new_tokens": cfg.max_new_tokens,
        "batch_size": cfg.batch_size,
        "diff_forks": cfg.diff_forks,
        "version": _version(),
    }


def row_keys(prompts: Sequence[str], refs: Sequence[str], common: dict, roles: Sequence) -> list:
    """One key per row: its prompt, its reference, `common` settings and its role."""
    head = json.dumps(common, sort_keys=True)
    return [
        hashlib.sha256(json.dumps([head, p, r, role]).encode()).hexdigest()[:32]
        for p, r, role in zip(prompts, refs, roles, strict=True)
    ]


def kept(path: Path, keys: Sequence[str], enabled: bool = True) -> dict[int, dict]:
    """Row index -> the record at `path` (the last evaluation's) with that row's key."""
    if not enabled or not path.is_file():
        return {}
    try:
        old = {r["key"]: r for r in read_jsonl(path) if isinstance(r, dict) and "key" in r}
    except (OSError, ValueError, UserError):  # a torn file from a killed run: answer again
        return {}
    return {i: old[k] for i, k in enumerate(keys) if k in old}
