"""Build stage: commits.parquet -> datasets/<task>/{train,val,test}.jsonl."""

from __future__ import annotations

from pathlib import Path

from repotune.config import BuildConfig
from repotune.errors import UserError
from repotune.fsutil import read_jsonl, write_json, write_jsonl
from repotune.tasks.commit import commit_examples
from repotune.tasks.split import drop_leaks, split_by_time


def run_build(run_dir: Path, cfg: BuildConfig) -> dict:
    """Write one folder per task under run_dir/datasets and return per-split counts."""
    from repotune.mine.store import read_commits

    commits_path = run_dir / "commits.parquet"
    if not commits_path.is_file():
        raise UserError(f"no mined commits at {commits_path}: run `repotune mine` first")
    commits = read_commits(commits_path)
    labels = split_by_time([c.committer_time for c in commits], cfg.split)
    stats: dict[str, dict] = {}
    for task in cfg.tasks:
        splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
        for commit, label in zip(commits, labels, strict=True):
            for row in commit_examples(commit, cfg):
                row["meta"]["split"] = label
                splits[label].append(row)
        for rows in splits.values():
            rows.sort(key=lambda r: (r["meta"]["time"], r["id"]))
        leaks = drop_leaks(splits)
        out = run_dir / "datasets" / task
        for name, rows in splits.items():
            write_jsonl(out / f"{name}.jsonl", rows)
        stats[task] = {
            "commits": {s: labels.count(s) for s in ("train", "val", "test")},
            "examples": {s: len(r) for s, r in splits.items()},
            "dropped_as_leaks": leaks,
        }
    write_json(run_dir / "datasets" / "stats.json", stats)
    return stats


def load_split(run_dir: Path, task: str, split: str) -> list[dict]:
    path = run_dir / "datasets" / task / f"{split}.jsonl"
    if not path.is_file():
        raise UserError(f"missing dataset {path}: run `repotune build` first")
    return read_jsonl(path)
