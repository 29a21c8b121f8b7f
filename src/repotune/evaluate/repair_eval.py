"""Repair evaluation: prompt each model with each bug (RepairLLaMA IR4), generate N candidate
chunks, validate them in the sandbox, and report plausible@k; then, for up to T more turns, show
the model its failed attempt with the trimmed error and let it try again.

Every model sees the same prompts and the same validation; outcomes are cached, so adding a
model or a turn only runs what is new. Where bugs carry a `label` (a CWE, say), each model's
summary is also broken down per label, and the prompt shows the label when asked
(`build.repair.show_label`, so a model is posed bugs the way it was trained).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress

from repotune.config import EvalExecConfig
from repotune.evaluate import bugtable
from repotune.evaluate.compare import Contender, file_label, open_contender
from repotune.evaluate.feedback import extract_error
from repotune.evaluate.passk import mean_pass_at_k, ranked_at_k
from repotune.fsutil import write_jsonl
from repotune.infer.backends import Backend
from repotune.infer.generate import Decoding
from repotune.records import Candidate
from repotune.rundir import update_section
from repotune.sandbox.manifest import Bug
from repotune.sandbox.validate import Validator

REPAIR_INSTRUCTION = (
    "The code below has a bug in the commented-out lines. Write the lines that replace "
    "<FILL_ME> to fix it. Reply with only those lines, in one fenced code block."
)


def function_context(bug: Bug, text: str) -> tuple[int, int]:
    """The bug's `context`, else the innermost function around the span (tree-sitter where
    repotune.code has a grammar), else the file when short, else 20 lines either side."""
    if bug.context:
        return bug.context
    lines = text.split("\n")
    first, last = bug.span
    try:
        from repotune.code.functions import function_spans, innermost

        span = innermost(function_spans(text, bug.lang()), first - 1, last - 1)
        if span is not None:
            return span.start + 1, span.end + 1
    except ImportError:
        pass
    if len(lines) <= 80:
        return 1, max(last, len(lines) - (lines[-1] == ""))
    return max(1, first - 20), min(len(lines), last + 20)


def repair_prompt_for(bug: Bug, text: str, show_label: bool = False) -> str:
    """The IR4 prompt for a bug (format in repotune.code.ir4, shared with build). Like the training
    examples, the function loses its comment-only and blank lines first, except inside the
    buggy span, which the candidate replaces whole. `show_label`: the bug's label, if any, as
    a comment line above the buggy chunk."""
    from repotune.code.ir4 import repair_prompt

    lines = text.split("\n")
    lo, hi = function_context(bug, text)
    drop = _comment_or_blank(text, bug.lang())
    first, last = bug.span
    kept, bug_first, bug_last = [], 0, 0
    for n in range(lo, hi + 1):  # 1-based line numbers
        inside = first <= n <= last
        if not inside and (n - 1 in drop or not lines[n - 1].strip()):
            continue
        if n == first:
            bug_first = len(kept)
        kept.append(lines[n - 1])
        if n == last:
            bug_last = len(kept) - 1
    return repair_prompt(kept, bug_first, bug_last, bug.lang(), bug.label if show_label else None)


def _comment_or_blank(text: str, language: str | None) -> frozenset[int]:
    """0-based indexes of comment-only lines (tree-sitter via repotune.code, when present)."""
    try:
        from repotune.code.functions import outline

        return outline(text, language).comment_lines
    except ImportError:
        return frozenset()


def feedback_prompt(base: str, history: list[tuple[str, str]], language: str | None) -> str:
    """Earlier failed attempts and their errors as comments above the original prompt, so a
    base model trained on IR4 still ends on the same `<FILL_ME>` it knows."""
    from repotune.code.languages import comment_prefix

    c = comment_prefix(language)
    out: list[str] = []
    for attempt, error in history:
        out.append(f"{c} A previous fix was wrong:")
        out += [f"{c}   {line}" for line in attempt.rstrip("\n").split("\n")]
        out.append(f"{c} It failed with:")
        out += [f"{c}   {line}" for line in (error or "the tests failed").split("\n")]
    return "\n".join(out) + "\n" + base


def evaluate_repair(
    bugs: list[Bug],
    models: list[Contender],
    validator: Validator,
    cfg: EvalExecConfig,
    out_dir: Path,
    dtype: str = "auto",
    say: Callable[[str], None] = print,
    opener: Callable[[Contender], Backend] | None = None,
    show_label: bool = False,
) -> dict:
    """Run every model on every bug; write eval/bugs/<model>.jsonl and return the summary.
    `opener` turns a contender into a backend (default: `open_contender`); `show_label` puts
    each bug's label in its prompt."""
    prompts = {b.id: repair_prompt_for(b, validator.original(b.id), show_label) for b in bugs}
    decoding = Decoding(
        mode=cfg.decoding,
        n=1 if cfg.decoding == "greedy" else cfg.candidates,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=cfg.seed,
        num_beams=cfg.num_beams,
        max_new_tokens=cfg.max_new_tokens,
        stop=tuple(cfg.stop),
    )
    retry = Decoding(mode="greedy", max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop))
    all_rows: list[dict] = []
    results: dict[str, dict] = {}
    for contender in models:
        backend = opener(contender) if opener else open_contender(contender, cfg, dtype)
        try:
            rows = _turn(backend, bugs, prompts, decoding, validator, contender.label, 0)
            history: dict[str, list[tuple[str, str]]] = {b.id: [] for b in bugs}
            for turn in range(1, cfg.turns + 1):
                failing = [b for b in bugs if not _fixed(rows, b.id)]
                if not failing:
                    break
                for b in failing:
                    last = _best_failure(rows, b.id)
                    history[b.id].append(
                        (last["text"], extract_error(last["log"], last["outcome"]))
                    )
                turn_prompts = {
                    b.id: feedback_prompt(prompts[b.id], history[b.id], b.lang()) for b in failing
                }
                rows += _turn(
                    backend, failing, turn_prompts, retry, validator, contender.label, turn
                )
        finally:
            backend.close()
        write_jsonl(out_dir / f"{file_label(contender.label)}.jsonl", rows)
        results[contender.label] = model_summary(rows, [b.id for b in bugs], cfg.k)
        say(_one_line(contender.label, results[contender.label]))
        if any(b.label for b in bugs):
            by_label = label_summaries(rows, bugs, cfg.k)
            results[contender.label]["by_label"] = by_label
            say("  per label: " + ", ".join(
                f"{k} {v['plausible_bugs']}/{v['n_bugs']}" for k, v in by_label.items()
            ))  # fmt: skip
        all_rows += rows
    return {"rows": all_rows, "models": results}


def _turn(backend, bugs, prompts, decoding, validator, label, turn) -> list[dict]:
    with Progress(transient=True) as progress:
        bar = progress.add_task(f"{label}: generate (turn {turn})", total=len(bugs))
        groups = backend.complete(
            [prompts[b.id] for b in bugs],
            decoding,
            instruction=REPAIR_INSTRUCTION,
            on_batch=lambda k: progress.advance(bar, k),
        )
        jobs = [(b.id, c.text) for b, group in zip(bugs, groups, strict=True) for c in group]
        bar = progress.add_task(f"{label}: validate (turn {turn})", total=len(jobs))
        outcomes = validator.validate(jobs, on_done=lambda k: progress.advance(bar, k))
    rows = []
    i = 0
    for b, group in zip(bugs, groups, strict=True):
        for rank, c in enumerate(group):
            o = outcomes[i]
            i += 1
            cand = Candidate(b.id, label, rank, c.text, c.score, o.outcome, o.log)
            rows.append({**cand.to_dict(), "turn": turn, "seconds": o.seconds, "cached": o.cached})
    return rows


def _fixed(rows: list[dict], bug_id: str) -> bool:
    return any(r["example_id"] == bug_id and r["outcome"] == "test_pass" for r in rows)


def _best_failure(rows: list[dict], bug_id: str) -> dict:
    """The latest turn's top-ranked candidate: what the model believed most."""
    mine = [r for r in rows if r["example_id"] == bug_id]
    last_turn = max(r["turn"] for r in mine)
    return min((r for r in mine if r["turn"] == last_turn), key=lambda r: r["rank"])


def model_summary(rows: list[dict], bug_ids: list[str], ks: list[int]) -> dict:
    """plausible@k (unbiased estimator over first-turn candidates), ranked top-k, outcome
    counts, and how many bugs each extra turn fixed."""
    first = [r for r in rows if r.get("turn", 0) == 0]
    counts, ranked = [], []
    for bug in bug_ids:
        mine = sorted((r for r in first if r["example_id"] == bug), key=lambda r: r["rank"])
        counts.append((len(mine), sum(r["outcome"] == "test_pass" for r in mine)))
        ranked.append([r["outcome"] == "test_pass" for r in mine])
    passk = mean_pass_at_k([c for c in counts if c[0] > 0], ks)
    summary: dict = {f"plausible@{k.split('@')[1]}": v for k, v in passk.items()}
    n = max((c[0] for c in counts), default=0)
    for k in ks:
        if k <= n:
            summary[f"ranked@{k}"] = ranked_at_k(ranked, k)
    fixed_first = sum(c > 0 for _, c in counts)
    by_turn = Counter()
    for bug in bug_ids:
        turns = [r["turn"] for r in rows if r["example_id"] == bug and r["outcome"] == "test_pass"]
        if turns:
            by_turn[min(turns)] += 1
    summary.update(
        n_bugs=len(bug_ids),
        candidates=n,
        plausible_bugs=fixed_first,
        plausible_after_turns=sum(by_turn.values()),
        fixed_by_turn={str(t): by_turn[t] for t in sorted(by_turn)},
        outcomes=dict(Counter(r["outcome"] for r in first)),
    )
    return summary


NO_LABEL = "(no label)"
_PER_LABEL = ("n_bugs", "plausible_bugs", "plausible_after_turns")


def label_summaries(rows: list[dict], bugs: list[Bug], ks: list[int]) -> dict[str, dict]:
    """label -> the model's plausible@k and bug counts on that label's bugs (unlabelled bugs
    under NO_LABEL), sorted by label: the per-class table repair papers report."""
    groups: dict[str, list[str]] = {}
    for bug in bugs:
        groups.setdefault(bug.label or NO_LABEL, []).append(bug.id)
    out = {}
    for label in sorted(groups):
        ids = set(groups[label])
        s = model_summary([r for r in rows if r["example_id"] in ids], groups[label], ks)
        out[label] = {k: v for k, v in s.items() if k.startswith("plausible@") or k in _PER_LABEL}
    return out


def _one_line(label: str, s: dict) -> str:
    ks = ", ".join(f"{k} {v:.3f}" for k, v in s.items() if k.startswith("plausible@"))
    turns = ""
    if s["plausible_after_turns"] != s["plausible_bugs"]:
        turns = f"; {s['plausible_after_turns']} after feedback turns"
    return f"{label}: {s['plausible_bugs']}/{s['n_bugs']} bugs plausible ({ks}){turns}"


def write_bug_report(
    run_dir: Path,
    manifest: Path,
    bugs: list[Bug],
    result: dict,
    static: dict[str, dict] | None,
    cfg: EvalExecConfig,
    sandbox_line: str,
) -> str:
    """The Markdown table in eval/bugs/table.md and the `bugs` section of eval/summary.json."""
    from repotune.fsutil import atomic_write_text

    ids = [b.id for b in bugs]
    models = list(result["models"])
    table = bugtable.markdown(result["rows"], ids, models, static)
    by_label = {m: s["by_label"] for m, s in result["models"].items() if s.get("by_label")}
    if by_label:
        table += "\n" + bugtable.by_label_markdown(by_label)
    atomic_write_text(run_dir / "eval" / "bugs" / "table.md", table)
    tools = sorted({t for s in (static or {}).values() for t, r in s.items() if r is not None})
    static_summary = (
        {
            t: {
                "flagged": sum(bool(s.get(t) and s[t]["flagged"]) for s in static.values()),
                "n": sum(s.get(t) is not None for s in static.values()),
            }
            for t in tools
        }
        if static
        else {}
    )
    cells = bugtable.per_bug(result["rows"])
    update_section(
        run_dir,
        "bugs",
        {
            "manifest": str(manifest),
            "n_bugs": len(bugs),
            "decoding": cfg.decoding,
            "candidates": cfg.candidates,
            "turns": cfg.turns,
            "sandbox": sandbox_line,
            "models": result["models"],
            "static": static_summary,
            "per_bug": {
                bug.id: {
                    **({"label": bug.label} if bug.label else {}),
                    "models": {
                        m: {"n": c["n"], "c": c["c"], "fixed_turn": c["fixed_turn"]}
                        for m, c in cells.get(bug.id, {}).items()
                    },
                    "static": {t: (static or {}).get(bug.id, {}).get(t) for t in tools},
                }
                for bug in bugs
            },
        },
    )
    return table
