"""`repotune run`: every stage in order over one run directory, each one's outputs on disk
before the next starts, so a failed or interrupted run can be resumed stage by stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from repotune.config import RunConfig, dump_config


def run_all(repo: Path, out: Path, cfg: RunConfig, say: Callable[[str], None] = print) -> Path:
    from repotune.evaluate.run import run_evaluate
    from repotune.mine import run_mine
    from repotune.mine.history import open_repo
    from repotune.report.html import run_html_report
    from repotune.report.markdown import run_report
    from repotune.tasks import run_build
    from repotune.train.sft import run_train

    open_repo(repo)  # a bad path fails here, before any output or progress line
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    t0 = time.monotonic()

    def step(name: str) -> None:
        say(f"[{time.monotonic() - t0:6.0f}s] {name}")

    step("mine")
    stats = run_mine(repo, out, cfg.mine)
    say(f"  {stats['kept']} commits kept, dropped {stats['dropped']}")
    step("build")
    for task, s in run_build(out, cfg.build, model=cfg.model.name, say=say).items():
        say(f"  {task}: {s['examples']} examples")
    step("train")
    t = run_train(out, cfg.model, cfg.train, cfg.build.tasks)
    say(f"  {t['steps']} steps in {t['seconds']:.0f} s")
    step("evaluate")
    run_evaluate(out, cfg.model, cfg.evaluate, cfg.train.max_length, cfg.build.tasks, cfg.build)
    step("report")
    say(f"  {run_html_report(out)}")
    path = run_report(out)
    step(f"done: {path}")
    return path
