"""Entry points of the execution-based evaluation, one per command: `validate`, `bugs check`,
`bugs mine`, and `evaluate --bugs/--humaneval/--questions`. Each reads top to bottom: set up
the sandbox, run, write files, return what the CLI prints."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress

from repotune.config import EvalExecConfig, RunConfig
from repotune.errors import UserError
from repotune.evaluate import bugtable
from repotune.fsutil import read_jsonl, write_json, write_jsonl
from repotune.rundir import update_section
from repotune.sandbox import Limits, Sandbox, describe, isolation
from repotune.sandbox.manifest import Bug, load_bugs, save_bugs
from repotune.sandbox.validate import OutcomeCache, Validator

Say = Callable[[str], None]


def make_sandbox(cfg: EvalExecConfig, protect: list[Path]) -> Sandbox:
    """The configured limits and identity; the user's folders passed in are bound read-only."""
    limits = Limits(
        wall_seconds=cfg.timeout,
        memory_mb=cfg.memory_mb,
        max_processes=cfg.max_processes,
        file_size_mb=cfg.file_size_mb,
        tmp_mb=cfg.tmp_mb,
        network=cfg.network,
    )
    protect = [*protect, Path.cwd()]
    return Sandbox(
        limits,
        protect=[p.resolve() for p in protect if p.exists()],
        read_paths=[Path(p).expanduser() for p in cfg.read_paths],
        uid=cfg.sandbox_uid,
        gid=cfg.sandbox_uid,
    )


def outcome_cache(cfg: EvalExecConfig) -> OutcomeCache | None:
    from repotune.models.registry import cache_dir

    return OutcomeCache(cache_dir() / "validate" / "outcomes.jsonl") if cfg.cache else None


def sandbox_line(sandbox: Sandbox) -> str:
    return describe(isolation(sandbox))


def _validator(bugs: list[Bug], cfg: EvalExecConfig, sandbox: Sandbox) -> Validator:
    return Validator(bugs, sandbox, workers=cfg.workers, cache=outcome_cache(cfg))


def _repos(bugs: list[Bug]) -> list[Path]:
    return sorted({Path(b.repo) for b in bugs})


def _say_imports(validator: Validator, bugs: list[Bug], say: Say) -> None:
    """Where the tests import each project from, when that needs saying (first bug per repo)."""
    firsts = {}
    for bug in bugs:
        firsts.setdefault(bug.repo, bug)
    for bug in firsts.values():
        for line in validator.import_notes(bug.id):
            say(line)


# -- repotune validate --------------------------------------------------------------------------
def run_validate(
    bugs_path: Path, patches_path: Path, out_path: Path, cfg: EvalExecConfig, say: Say
) -> str:
    """Validate `{"id", "text"}` lines against the manifest; write them back with outcomes."""
    bugs = load_bugs(bugs_path)
    if not Path(patches_path).is_file():
        raise UserError(f"patches not found: {patches_path}")
    patches = read_jsonl(patches_path)
    known = {b.id for b in bugs}
    for i, p in enumerate(patches, 1):
        bug_id = p.get("id", p.get("example_id"))
        if bug_id not in known:
            raise UserError(f"{patches_path}:{i}: no bug with id {bug_id!r} in {bugs_path}")
        if not isinstance(p.get("text"), str):
            raise UserError(f"{patches_path}:{i}: 'text' (the span's replacement) is missing")
    with make_sandbox(cfg, [*_repos(bugs), out_path.parent]) as sandbox:
        say(f"sandbox: {sandbox_line(sandbox)}")
        with _validator(bugs, cfg, sandbox) as validator, Progress(transient=True) as progress:
            _say_imports(validator, bugs, say)
            bar = progress.add_task("validate", total=len(patches))
            jobs = [(p.get("id", p.get("example_id")), p["text"]) for p in patches]
            outcomes = validator.validate(jobs, on_done=lambda k: progress.advance(bar, k))
    rows = [{**p, **o.to_dict()} for p, o in zip(patches, outcomes, strict=True)]
    write_jsonl(out_path, rows)
    table_rows = [
        {
            "example_id": p.get("id", p.get("example_id")),
            "model": str(p.get("model", "candidates")),
            "turn": p.get("turn", 0),
            "outcome": o.outcome,
        }
        for p, o in zip(patches, outcomes, strict=True)
    ]
    models = list(dict.fromkeys(r["model"] for r in table_rows))
    ran = sum(not o.cached for o in outcomes)
    say(f"{len(rows)} candidates: {ran} run, {len(rows) - ran} cached or identical -> {out_path}")
    return bugtable.markdown(table_rows, [b.id for b in bugs], models)


# -- repotune bugs check / mine -----------------------------------------------------------------
def run_bugs_check(bugs_path: Path, cfg: EvalExecConfig, say: Say) -> tuple[str, bool]:
    """Each bug's `fix` must pass its tests and its unchanged buggy span must fail them."""
    bugs = load_bugs(bugs_path)
    missing = [b.id for b in bugs if b.fix is None]
    if missing:
        raise UserError(f"bugs without a 'fix' to check: {', '.join(missing[:5])}")
    with make_sandbox(cfg, _repos(bugs)) as sandbox:
        say(f"sandbox: {sandbox_line(sandbox)}")
        with _validator(bugs, cfg, sandbox) as validator:
            _say_imports(validator, bugs, say)
            jobs = []
            for b in bugs:
                jobs += [(b.id, b.fix or ""), (b.id, validator.buggy_span(b.id))]
            outcomes = validator.validate(jobs)
    lines = ["| bug | fix | buggy | ok |", "|---|---|---|---|"]
    all_ok = True
    for i, b in enumerate(bugs):
        fixed, buggy = outcomes[2 * i].outcome, outcomes[2 * i + 1].outcome
        ok = fixed == "test_pass" and buggy == "test_fail"
        all_ok &= ok
        lines.append(f"| {b.id} | {fixed} | {buggy} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines) + "\n", all_ok


def run_bugs_mine(
    repo: Path,
    out_path: Path,
    test_command: str,
    cfg: EvalExecConfig,
    say: Say,
    setup_command: str | None = None,
    build_command: str | None = None,
    timeout: float | None = None,
    max_commits: int = 500,
    max_bugs: int | None = None,
    max_span: int = 10,
    pattern: str | None = None,
    ignore_deprecations: bool = True,
) -> list[Bug]:
    """Mine, confirm, write the manifest and the funnel beside it (OUT.stats.json)."""
    from repotune.config import BUGFIX_PATTERN
    from repotune.evaluate.bugs import (
        IGNORE_DEPRECATIONS,
        Funnel,
        candidate_bugs,
        confirm_bugs,
    )

    start = time.monotonic()
    funnel = Funnel(warnings_ignored=ignore_deprecations)
    env = dict(IGNORE_DEPRECATIONS) if ignore_deprecations else {}
    found = candidate_bugs(
        repo,
        test_command,
        setup_command,
        build_command,
        timeout or cfg.timeout,
        max_commits,
        max_span,
        pattern or BUGFIX_PATTERN,
        env=env,
        funnel=funnel,
    )
    say(f"{len(found)} fix commits of the right shape; running their tests after and before")
    if env:
        say(
            "deprecation warnings are ignored in the tests (PYTEST_ADDOPTS, recorded in the "
            "manifest): old commits under today's pytest would fail at collection "
            "(--keep-deprecations to keep them)"
        )
    with make_sandbox(cfg, [repo]) as sandbox:
        say(f"sandbox: {sandbox_line(sandbox)}")
        with Progress(transient=True) as progress:
            bar = progress.add_task("check", total=len(found))
            kept = confirm_bugs(
                found,
                lambda bugs: _validator(bugs, cfg, sandbox),
                max_bugs,
                on_done=lambda k: progress.advance(bar, k),
                funnel=funnel,
                say=say,
            )
    save_bugs(out_path, kept)
    stats = {**funnel.to_dict(), "seconds": round(time.monotonic() - start, 1)}
    stats_path = _stats_path(out_path)
    write_json(stats_path, stats)
    for line in funnel.lines():
        say(line)
    say(f"funnel -> {stats_path}")
    return kept


def _stats_path(manifest: Path) -> Path:
    """bugs.jsonl -> bugs.stats.json, beside it."""
    return manifest.with_name(manifest.name.removesuffix(".jsonl") + ".stats.json")


# -- repotune evaluate --bugs / --humaneval / --questions ---------------------------------------
def run_bug_evaluation(
    run_dir: Path, bugs_path: Path, models: list[str] | None, cfg: RunConfig, say: Say
) -> str:
    from repotune.evaluate.compare import contenders
    from repotune.evaluate.repair_eval import evaluate_repair, write_bug_report

    ex = cfg.eval_exec
    bugs = load_bugs(bugs_path)
    who = contenders(models, run_dir, cfg.model)
    with make_sandbox(ex, [*_repos(bugs), run_dir]) as sandbox:
        line = sandbox_line(sandbox)
        say(f"sandbox: {line}")
        with _validator(bugs, ex, sandbox) as validator:
            for bug in bugs:  # before any model is loaded: a broken manifest fails fast
                if (problem := validator.problem(bug.id)) is not None:
                    raise UserError(problem.splitlines()[0])
            static = _static_row(bugs, validator, sandbox) if ex.static_analysers else None
            show = cfg.build.repair.show_label
            if any(b.label for b in bugs):
                how = "shown in" if show else "hidden from"
                say(f"bug labels {how} the prompts (build.repair.show_label, as in training)")
            result = evaluate_repair(
                bugs, who, validator, ex, run_dir / "eval" / "bugs", cfg.model.dtype, say,
                show_label=show,
            )  # fmt: skip
    return write_bug_report(run_dir, bugs_path, bugs, result, static, ex, line)


def _static_row(bugs: list[Bug], validator: Validator, sandbox: Sandbox) -> dict:
    from repotune.evaluate.static import analyse, available

    tools = available()
    out = {}
    for bug in bugs:
        template = validator.template(bug.id)
        out[bug.id] = analyse(bug, template, sandbox, tools) if template else {}
    return out


def run_humaneval(
    run_dir: Path,
    models: list[str] | None,
    cfg: RunConfig,
    say: Say,
    samples_path: Path | None = None,
) -> dict:
    """pass@k per model on HumanEval (or on a given samples file); writes eval/humaneval/."""
    from repotune.evaluate import humaneval as he
    from repotune.evaluate.compare import contenders, file_label, open_contender
    from repotune.infer.generate import Decoding

    ex = cfg.eval_exec
    out_dir = run_dir / "eval" / "humaneval"
    problems = he.load_problems(ex.humaneval_limit)
    ks = sorted({1, 10, 100, *ex.k})
    workers = ex.workers or os.cpu_count() or 1
    section: dict = {
        "n_problems": len(problems),
        "n_dataset": len(he.load_problems()),
        "models": {},
    }
    # A samples file is checked before the sandbox starts: a partial one fails in one line.
    given = None
    if samples_path is not None:
        given = (Path(samples_path).stem, he.read_samples(samples_path, problems))
    with make_sandbox(ex, [run_dir]) as sandbox:
        section["sandbox"] = sandbox_line(sandbox)
        say(f"sandbox: {section['sandbox']}")
        if given is not None:
            runs = [given]
        else:
            runs = []
            n = ex.humaneval_samples
            decoding = Decoding(
                mode="greedy" if n == 1 else "sample",
                n=n,
                temperature=ex.temperature,
                top_p=ex.top_p,
                seed=ex.seed,
                max_new_tokens=min(ex.max_new_tokens, 512),
                stop=he.STOP,
            )
            for c in contenders(models, run_dir, cfg.model):
                backend = open_contender(c, ex, cfg.model.dtype)
                try:
                    ids = list(problems)
                    groups = backend.complete(
                        [problems[t]["prompt"] for t in ids], decoding, instruction=he.INSTRUCTION
                    )
                finally:
                    backend.close()
                samples = [
                    {"task_id": t, "completion": comp.text}
                    for t, group in zip(ids, groups, strict=True)
                    for comp in group
                ]
                write_jsonl(out_dir / f"{file_label(c.label)}_samples.jsonl", samples)
                runs.append((c.label, samples))
        for label, samples in runs:
            with Progress(transient=True) as progress:
                bar = progress.add_task(f"{label}: HumanEval", total=len(samples))
                results = he.execute(
                    samples,
                    problems,
                    sandbox,
                    ex.humaneval_timeout,
                    workers,
                    on_done=lambda k, bar=bar: progress.advance(bar, k),
                )
            write_jsonl(out_dir / f"{file_label(label)}_samples.jsonl_results.jsonl", results)
            scores = he.score_results(results, ks)
            section["models"][label] = {
                **scores,
                "n_problems": len(problems),
                "outcomes": he.outcome_counts(results),
            }
            say(f"{label}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    update_section(run_dir, "humaneval", section)
    return section


def run_questions(
    run_dir: Path, questions_path: Path, models: list[str] | None, cfg: RunConfig, say: Say
) -> Path:
    from repotune.evaluate.compare import contenders, open_contender
    from repotune.evaluate.questions import load_questions, run_tests, side_by_side
    from repotune.fsutil import atomic_write_text
    from repotune.infer.generate import Decoding

    ex = cfg.eval_exec
    questions = load_questions(questions_path)
    decoding = Decoding(mode="greedy", max_new_tokens=ex.max_new_tokens, stop=tuple(ex.stop))
    answers: dict[str, list[dict]] = {}
    with make_sandbox(ex, [run_dir]) as sandbox:
        for c in contenders(models, run_dir, cfg.model):
            backend = open_contender(c, ex, cfg.model.dtype)
            try:
                groups = backend.complete([q["prompt"] for q in questions], decoding)
            finally:
                backend.close()
            answers[c.label] = [
                {"id": q["id"], "model": c.label, "answer": g[0].text}
                | {"passed": run_tests(q, g[0].text, sandbox)}
                for q, g in zip(questions, groups, strict=True)
            ]
    out_dir = run_dir / "eval" / "questions"
    write_jsonl(out_dir / "answers.jsonl", [r for rows in answers.values() for r in rows])
    page = out_dir / "questions.md"
    atomic_write_text(page, side_by_side(questions, answers))
    update_section(
        run_dir,
        "questions",
        {
            "file": str(questions_path),
            "models": {
                m: {
                    "passed": sum(r["passed"] is True for r in rows),
                    "with_tests": sum(r["passed"] is not None for r in rows),
                    "n_questions": len(rows),
                    "file": str(questions_path),
                }
                for m, rows in answers.items()
            },
        },
    )
    say(f"{len(questions)} questions x {len(answers)} models -> {page}")
    return page
