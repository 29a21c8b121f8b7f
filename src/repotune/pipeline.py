"""`repotune run`: every stage in order over one run directory, each one's outputs on disk
before the next starts, so a failed or interrupted run can be resumed stage by stage; over
several repositories (`run_many`); and `repotune refresh` (`refresh_run`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from repotune.config import RunConfig, dump_config
from repotune.errors import UserError
from repotune.rundir import (
    built_tasks,
    eval_summary_path,
    read_eval_summary,
    split_path,
    stage_tasks,
    train_summary,
)

if TYPE_CHECKING:
    from repotune.mine.repos import RepoSpec


def run_all(repo: Path, out: Path, cfg: RunConfig, say: Callable[[str], None] = print) -> Path:
    from repotune.mine import run_mine
    from repotune.mine.history import open_repo

    open_repo(repo)  # a bad path fails here, before any output or progress line
    _check_tasks(cfg)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    step = _clock(say)
    step("mine")
    stats = run_mine(repo, out, cfg.mine)
    say(f"  {stats['kept']} commits kept, dropped {stats['dropped']}")
    return _after_mine(out, cfg, say, step)


def run_many(
    specs: list[RepoSpec], out: Path, cfg: RunConfig, say: Callable[[str], None] = print
) -> Path:
    """`run_all` over several repositories: each mined on its own (mine/repos.py), then one
    dataset cut at one date, one adapter, and a report per repository as well as overall."""
    from repotune.mine.repos import mine_repos

    _check_tasks(cfg)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    step = _clock(say)
    step(f"mine ({len(specs)} repositories)")
    stats = mine_repos(specs, out, cfg.mine, say)
    say(f"  {stats['kept']} commits kept, dropped {stats['dropped']}")
    return _after_mine(out, cfg, say, step)


def _check_tasks(cfg: RunConfig) -> None:
    """train.tasks and evaluate.tasks pick from what build writes: a task build.tasks leaves
    out fails here, before minutes of mining, not when its stage starts."""
    for name, section in (("train", cfg.train), ("evaluate", cfg.evaluate)):
        missing = [t for t in section.tasks or [] if t not in cfg.build.tasks]
        if missing:
            raise UserError(
                f"{name}.tasks names {', '.join(missing)}, which build.tasks "
                f"({', '.join(cfg.build.tasks)}) does not build"
            )


def _clock(say: Callable[[str], None]) -> Callable[[str], None]:
    t0 = time.monotonic()

    def step(name: str) -> None:
        say(f"[{time.monotonic() - t0:6.0f}s] {name}")

    return step


def _after_mine(
    out: Path, cfg: RunConfig, say: Callable[[str], None], step: Callable[[str], None]
) -> Path:
    from repotune.build import run_build
    from repotune.evaluate.run import run_evaluate
    from repotune.train.sft import run_train

    step("build")
    for task, s in run_build(out, cfg.build, model=cfg.model.name, say=say).items():
        say(f"  {task}: {s['examples']} examples")
    step("train")
    t = run_train(out, cfg.model, cfg.train)  # train.tasks, else every task built
    say(f"  {t['steps']} steps in {t['seconds']:.0f} s")
    step("evaluate")
    run_evaluate(out, cfg.model, cfg.evaluate, cfg.train.max_length, say=say)
    return _report(out, step, say)


def _report(out: Path, step: Callable[[str], None], say: Callable[[str], None]) -> Path:
    from repotune.report.html import run_html_report
    from repotune.report.markdown import run_report

    step("report")
    say(f"  {run_html_report(out)}")
    path = run_report(out)
    step(f"done: {path}")
    return path


def refresh_run(run_dir: Path, cfg: RunConfig, say: Callable[[str], None] = print) -> Path:
    """`repotune refresh RUN`: mine the commits made since the run (only those), rebuild the
    splits so the newest commits are the test set, continue training the adapter on the new
    rows plus a replay sample of old ones, evaluate, and keep this refresh's summary beside
    the earlier ones in eval/history/ (the report plots the gain over refreshes)."""
    from repotune.build import run_build
    from repotune.evaluate.run import run_evaluate
    from repotune.mine.refresh import refresh_commits
    from repotune.train.refresh import continue_training

    run_dir = Path(run_dir)
    if not eval_summary_path(run_dir).is_file():
        raise UserError(f"{run_dir} has no evaluation yet: finish `repotune run` on it first")
    index = max((int(p.stem) for p in _history(run_dir)), default=-1) + 1
    _check_tasks(cfg)
    if index == 0:  # the first run's summary, before the refresh replaces eval/summary.json
        _keep_summary(run_dir, 0, {"new_commits": None})
        index = 1
    dump_config(cfg, run_dir / "config.yaml")
    step = _clock(say)
    step(f"refresh {index}: mine new commits")
    found = refresh_commits(run_dir, cfg.mine, index, say)
    if not found["kept"]:
        say("  nothing new to learn from: the run is up to date")
        return run_dir / "report.md"
    # The rows trained so far: the tasks the last training took (its summary), else all built.
    before = train_summary(run_dir).get("tasks") or built_tasks(run_dir)
    trained = {r["id"] for t in before for r in _rows(run_dir, t, "train")}
    step("build")
    for task, s in run_build(run_dir, cfg.build, model=cfg.model.name, say=say).items():
        say(f"  {task}: {s['examples']} examples")
    step("train (continued)")
    tasks = stage_tasks(run_dir, cfg.train.tasks, "train.tasks")
    t = continue_training(run_dir, cfg.model, cfg.train, tasks, trained, cfg.refresh, index)
    r = t["refresh"]
    say(
        f"  {r['steps']} steps from step {r['from_step']} on {r['new_rows']} new and "
        f"{r['replay_rows']} replayed rows"
    )
    step("evaluate")
    run_evaluate(run_dir, cfg.model, cfg.evaluate, cfg.train.max_length, say=say)
    _keep_summary(run_dir, index, {"new_commits": found["kept"], "train": r})
    return _report(run_dir, step, say)


HISTORY = Path("eval") / "history"  # RUN/eval/history/NNN.json: one per run and refresh


def _history(run_dir: Path) -> list[Path]:
    return sorted((run_dir / HISTORY).glob("[0-9][0-9][0-9].json"))


def _rows(run_dir: Path, task: str, split: str) -> list[dict]:
    from repotune.fsutil import read_jsonl

    path = split_path(run_dir, task, split)
    return read_jsonl(path) if path.is_file() else []


def _keep_summary(run_dir: Path, index: int, extra: dict) -> None:
    """eval/summary.json as it stands, with the test window of the tasks it scores."""
    from repotune.fsutil import write_json

    summary = read_eval_summary(run_dir)
    tasks = list(summary.get("tasks") or {})
    times = [r["meta"]["time"] for t in tasks for r in _rows(run_dir, t, "test")]
    times = [x for x in times if x is not None]
    record = {
        "index": index,
        **extra,
        "test_from": min(times, default=None),
        "test_to": max(times, default=None),
        "summary": summary,
    }
    write_json(run_dir / HISTORY / f"{index:03d}.json", record)
