"""Build stage: mined commits and the current tree -> datasets/<task>/{train,val,test}.jsonl.

Each task module turns its source into Example-shaped rows; this module splits them (by time
for history tasks, by file-path hash for current-code tasks, seeded for user data), drops
val/test rows whose text also occurs in train, applies the mixture weights to train, and
writes the files plus datasets/stats.json. History tasks are built first so the current-code
tasks can read the tree as it was before any val/test commit (nothing from the future of a
test example is trained on).
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repotune.build.context import BuildContext
from repotune.build.repos import repo_counts, repo_weights, weigh
from repotune.build.split import (
    SPLITS,
    drop_leaks,
    split_by_key,
    split_by_time,
    split_paths,
    split_shuffled,
)
from repotune.config import BuildConfig
from repotune.fsutil import write_json, write_jsonl
from repotune.rundir import commits_path, dataset_stats_path, split_path

HISTORY_TASKS = ("commit", "repair", "complete")
TREE_TASKS = ("fim", "explain")


@dataclass
class TaskRows:
    splits: dict[str, list[dict]]
    dropped: Counter[str] = field(default_factory=Counter)
    info: dict[str, Any] = field(default_factory=dict)


def _empty() -> dict[str, list[dict]]:
    return {name: [] for name in SPLITS}


def _by_commit_time(
    ctx: BuildContext, groups: list[tuple[Any, list[dict]]]
) -> tuple[dict[str, list[dict]], list[str]]:
    """Split rows grouped by commit, by commit time (all rows of a commit go together)."""
    labels = split_by_time([c.committer_time for c, _ in groups], ctx.cfg.split)
    splits = _empty()
    for (commit, rows), label in zip(groups, labels, strict=True):
        for row in rows:
            row["meta"]["split"] = label
            if commit.repo is not None:  # a run of several repositories (build/repos.py)
                row["meta"]["repo"] = commit.repo
            splits[label].append(row)
        if label != "train" and rows:
            ctx.held_out_times.append(commit.committer_time)
    return splits, labels


def build_commit(ctx: BuildContext) -> TaskRows:
    """Split over all mined commits, as the stage always has (commits without rows count)."""
    from repotune.build.commit import commit_examples

    dropped: Counter[str] = Counter()
    groups = [(c, list(commit_examples(c, ctx.cfg, dropped))) for c in ctx.commits]
    splits, labels = _by_commit_time(ctx, groups)
    return TaskRows(splits, dropped, {"commits": {s: labels.count(s) for s in SPLITS}})


def build_repair(ctx: BuildContext) -> TaskRows:
    """Split over the commits that gave a fix, so val/test get their share of fixes. With
    external fix sets and no mined history, the external sets alone."""
    from repotune.build.fixsets import load_external
    from repotune.build.repair import repair_examples

    rc = ctx.cfg.repair
    dropped: Counter[str] = Counter()
    fits = ctx.fits_tokens(rc.max_input_tokens, rc.max_output_tokens)
    history = ctx.commits if _has_commits(ctx) or not rc.external else []
    groups = [(c, rows) for c in history if (rows := list(repair_examples(c, rc, dropped, fits)))]
    splits, _ = _by_commit_time(ctx, groups)
    labels: dict[str, Counter[str]] = {}
    for fix in load_external(rc.external):
        for row in repair_examples(fix, rc, dropped, fits, source="external", label=fix.label):
            split = rc.external_split
            if split == "hash":
                split = split_by_key(row["meta"]["sha"], ctx.cfg.split, ctx.cfg.seed)
            row["meta"]["split"] = split
            splits[split].append(row)
            if fix.label:
                labels.setdefault(fix.label, Counter())[split] += 1
    info: dict[str, Any] = {"commits": {s: len(splits[s]) for s in SPLITS}}  # one fix a commit
    if labels:  # examples per label and split, so a per-class result has its counts
        info["labels"] = {k: {s: c[s] for s in SPLITS} for k, c in sorted(labels.items())}
        info["labels_shown"] = rc.show_label
    return TaskRows(splits, dropped, info)


def build_complete(ctx: BuildContext) -> TaskRows:
    """Split over the commits that gave a target; test rows get their retrieval prompts from
    the tree of the newest commit before the first val/test commit."""
    from repotune.build.complete import (
        add_retrieval,
        complete_examples,
        finish_splits,
        is_code,
        strip_private,
    )
    from repotune.models.fim import detect_fim, fim_tokens_for

    cc = ctx.cfg.complete
    dropped: Counter[str] = Counter()
    test_tokens = detect_fim(ctx.tokenizer)
    train_tokens = test_tokens or (fim_tokens_for(ctx.tokenizer) if cc.fim_rate > 0 else None)
    count = ctx.count_tokens if cc.max_prompt_tokens is not None else None
    groups = [
        (c, rows)
        for c in ctx.commits
        if (rows := list(complete_examples(c, ctx.cfg, dropped, train_tokens, test_tokens, count)))
    ]
    start = len(ctx.held_out_times)
    splits, labels = _by_commit_time(ctx, groups)
    finish_splits(splits, dropped, cc)
    info: dict[str, Any] = {"commits": {s: labels.count(s) for s in SPLITS}}
    info["form"] = f"fim ({test_tokens.family})" if test_tokens else "left-to-right"
    if cc.retrieval_snippets and splits["test"]:
        ref = ctx.cutoff_ref(ctx.held_out_times[start:])
        snap = ctx.tree_at(ref)
        files = [(f.path, f.text) for f in snap.files if is_code(f.language)]
        snippets = add_retrieval(splits["test"], files, cc, test_tokens, count)
        info["retrieval"] = {"tree": snap.sha, "files": len(files), "snippets": snippets}
        ctx.say(f"complete: BM25 over {snippets} snippets of {len(files)} files at {snap.sha[:12]}")
    strip_private(splits)
    return TaskRows(splits, dropped, info)


def _has_commits(ctx: BuildContext) -> bool:
    return commits_path(ctx.run_dir).is_file()


def _by_path(ctx: BuildContext, rows: list[dict]) -> dict[str, list[dict]]:
    splits = _empty()
    labels = split_paths([r["meta"]["path"] for r in rows], ctx.cfg.split, ctx.cfg.seed)
    for row in rows:
        label = labels[row["meta"]["path"]]
        row["meta"]["split"] = label
        splits[label].append(row)
    return splits


def build_fim(ctx: BuildContext) -> TaskRows:
    from repotune.build.fim import fim_examples
    from repotune.models.fim import fim_tokens_for

    choice = ctx.cfg.fim.tokens
    tokens = fim_tokens_for(ctx.tokenizer if choice == "auto" else None, choice, ctx.model_name)
    note = (
        " (reserved tokens stand in for the FIM tokens this model lacks)" if tokens.reserved else ""
    )
    ctx.say(f"fim: {tokens.family} tokens {' '.join(tokens.sentinels)}{note}")
    snap = ctx.snapshot
    dropped = Counter(snap.skipped)
    # A named token set needs no tokenizer, so prompts are then capped in characters only.
    count = ctx.count_tokens if choice == "auto" else None
    rows = list(fim_examples(snap, ctx.cfg, tokens, dropped, count))
    info = {"tree": snap.sha, "files": len(snap.files), "fim_tokens": tokens.family}
    return TaskRows(_by_path(ctx, rows), dropped, info)


def build_explain(ctx: BuildContext) -> TaskRows:
    from repotune.build.explain import explain_examples

    snap = ctx.snapshot
    dropped = Counter(snap.skipped)
    rows = explain_examples(snap, ctx.cfg, dropped, ctx.say)
    return TaskRows(_by_path(ctx, rows), dropped, {"tree": snap.sha, "files": len(snap.files)})


def build_instruct(ctx: BuildContext) -> TaskRows:
    from repotune.build.instruct import instruct_examples

    ic = ctx.cfg.instruct
    tokenizer = ctx.tokenizer if ic.chat_template and ic.sources else None
    dropped: Counter[str] = Counter()
    rows = instruct_examples(ctx.cfg, tokenizer, dropped)
    splits = _empty()
    for row, label in zip(rows, split_shuffled(len(rows), ctx.cfg.split, ctx.cfg.seed)):
        row["meta"]["split"] = label
        splits[label].append(row)
    return TaskRows(splits, dropped, {"records": len(rows)})


BUILDERS: dict[str, Callable[[BuildContext], TaskRows]] = {
    "commit": build_commit,
    "complete": build_complete,
    "repair": build_repair,
    "fim": build_fim,
    "explain": build_explain,
    "instruct": build_instruct,
}


def _weighted(rows: list[dict], weight: float, seed: int) -> list[dict]:
    """Train rows scaled by a mixture weight: whole copies, then a seeded sample for the rest."""
    whole, part = int(weight), weight - int(weight)
    extra = random.Random(seed).sample(rows, round(part * len(rows))) if rows else []
    return rows * whole + extra


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_build(
    run_dir: Path,
    cfg: BuildConfig,
    *,
    model: str | None = None,
    token_stats: bool = False,
    say: Callable[[str], None] = _say,
) -> dict:
    """Write one folder per task under run_dir/datasets and return per-task stats.

    `model`: whose tokenizer gives FIM tokens, chat templates and token caps where build.model
    is unset (the CLI passes model.name; without either, RUN/config.yaml's, then the embedded
    default).
    `token_stats`: also count lengths in that tokenizer's tokens (`build --stats`)."""
    from repotune.build.stats import length_stats

    ctx = BuildContext(Path(run_dir), cfg, model, say)
    order = sorted(cfg.tasks, key=lambda t: (t not in HISTORY_TASKS, t == "complete"))
    stats: dict[str, dict] = {}
    done: dict[str, dict[str, list[dict]]] = {}
    for task in order:
        built = BUILDERS[task](ctx)
        for rows in built.splits.values():
            rows.sort(key=lambda r: (r["meta"].get("time") or 0, r["id"]))
        leaks = drop_leaks(built.splits)
        before_mix = len(built.splits["train"])
        weight = cfg.mixture.get(task, 1.0)
        if weight != 1.0:
            built.splits["train"] = _weighted(built.splits["train"], weight, cfg.seed)
        built.splits["train"] = weigh(built.splits["train"], repo_weights(ctx.mine_stats), cfg.seed)
        for name in SPLITS:
            write_jsonl(split_path(run_dir, task, name), built.splits[name])
        stats[task] = {
            "commits": {},  # history tasks: commits per split (the CLI prints it)
            **built.info,
            "examples": {s: len(built.splits[s]) for s in SPLITS},
            "dropped_as_leaks": leaks,
            "dropped": dict(sorted(built.dropped.items())),
        }
        if weight != 1.0:
            stats[task]["mixture"] = {"weight": weight, "train_before": before_mix}
        if (per_repo := repo_counts(built.splits)) is not None:
            stats[task]["repos"] = per_repo
        done[task] = built.splits
    # Token lengths when asked, or for free once a task has loaded the tokenizer anyway.
    tokenizer = ctx.tokenizer if token_stats or "tokenizer" in ctx.__dict__ else None
    for task, splits in done.items():
        stats[task]["lengths"] = length_stats(splits, tokenizer)
    stats = {task: stats[task] for task in cfg.tasks}
    # Written last, with exactly these tasks: train and evaluate take their tasks from it
    # (rundir.built_tasks), never a folder an older build left.
    write_json(dataset_stats_path(run_dir), stats)
    from repotune.cards import write_dataset_card

    write_dataset_card(run_dir)
    return stats
