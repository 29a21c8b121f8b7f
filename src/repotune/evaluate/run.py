"""Evaluate stage: base vs tuned on the held-out test split of each task.

Both models see the same rows, the same tokens and the same decoding, so the difference is the
adapter. Per-row results go to eval/<task>/<model>.jsonl so a report can bootstrap them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress

from repotune.config import EvaluateConfig, ModelConfig
from repotune.errors import UserError
from repotune.evaluate.metrics import (
    change_similarity,
    changed_lines,
    completion_nll,
    edit_similarity,
    exact_match,
    loss_summary,
)
from repotune.evaluate.reuse import kept, row_keys, settings
from repotune.evaluate.sample import spread_sample
from repotune.fsutil import write_jsonl
from repotune.infer.generate import generate
from repotune.models.load import load_model, load_tokenizer
from repotune.models.registry import resolve_model
from repotune.rundir import load_split, stage_tasks, tuned_model, update_tasks


def _old_sides(rows: list[dict]) -> list | None:
    """Each row's diff old side, from the span build recorded in its meta (`old_side`: where
    the code before sits in the prompt), or None when a row has none: another representation,
    code before with extra context, or datasets built before build recorded it."""
    spans = [(r.get("meta") or {}).get("old_side") for r in rows]
    if not rows or any(span is None for span in spans):
        return None
    return [r["prompt"][a:b].split("\n") if b > a else [] for r, (a, b) in zip(rows, spans)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _eval_model(
    model, tokenizer, rows, gen_idx, cfg: EvaluateConfig, max_length: int, label, diffs=None,
    known=None,
):  # fmt: skip
    """Loss on every row and greedy answers on `gen_idx`; rows in `known` (index -> the last
    evaluation's record, evaluate/reuse.py) are taken from it, and the model answers the rest
    (`model` may be None when nothing is left)."""
    known = known or {}
    todo = [i for i in range(len(rows)) if i not in known]
    gen_todo = [j for j, i in enumerate(gen_idx) if i not in known]  # positions in gen_idx
    nll = {i: (r["nll"], r["tokens"]) for i, r in known.items()}
    texts = {i: known[i]["generation"] for i in gen_idx if i in known}
    with Progress(transient=True) as progress:
        bar = progress.add_task(f"{label}: loss", total=len(todo))
        found = completion_nll(
            model,
            tokenizer,
            [rows[i] for i in todo],
            max_length,
            cfg.batch_size,
            on_batch=lambda k: progress.advance(bar, k),
        ) if todo else []  # fmt: skip
        nll.update(zip(todo, found, strict=True))
        bar = progress.add_task(f"{label}: generate", total=len(gen_todo))
        asked = [gen_idx[j] for j in gen_todo]
        # Generations longer than the reference plus a margin cannot match it: stop there.
        ref_tokens = max(
            (
                len(tokenizer(rows[i]["completion"], add_special_tokens=False)["input_ids"])
                for i in asked
            ),
            default=0,
        )
        answers = generate(
            model,
            tokenizer,
            [rows[i]["prompt"] for i in asked],
            max_new_tokens=min(cfg.max_new_tokens, ref_tokens + 8),
            max_prompt_tokens=max_length,
            batch_size=cfg.batch_size,
            on_batch=lambda k: progress.advance(bar, k),
            diffs=[diffs[j] for j in gen_todo] if diffs else None,
            diff_forks=cfg.diff_forks,
        ) if asked else []  # fmt: skip
        texts.update(zip(asked, answers, strict=True))
    per_row = []
    for i, row in enumerate(rows):
        s, n = nll[i]
        per_row.append({"id": row["id"], "nll": s, "tokens": n})
    for i in gen_idx:
        text, reference = texts[i], rows[i]["completion"]
        per_row[i].update(
            generation=text,
            exact_match=exact_match(text, reference),
            edit_similarity=edit_similarity(text, reference),
        )
        if changed_lines(reference):  # a diff: score its changes apart from the copied lines
            per_row[i]["change_similarity"] = change_similarity(text, reference)
    summary = loss_summary([nll[i] for i in range(len(rows))])
    gens = [r for r in per_row if "generation" in r]
    summary.update(
        exact_match=_mean([r["exact_match"] for r in gens]),
        edit_similarity=_mean([r["edit_similarity"] for r in gens]),
        change_similarity=_mean([r["change_similarity"] for r in gens if "change_similarity" in r]),
        n=len(rows),
        n_generated=len(gens),
        decoding="greedy, diff grammar" if diffs else "greedy",
    )
    return summary, per_row


def _eval_complete(
    run_dir, model_path, tuned, tokenizer, model_cfg, cfg, max_length, common, say
) -> dict:
    """Base, tuned, and each with retrieval on one commit-spread sample of completion targets;
    the base's answers to rows unchanged since the last evaluation are kept (reuse.py)."""
    from repotune.evaluate.completion import (
        comparisons,
        evaluate_model,
        loss_rows,
        retrieval_sample,
    )

    rows = load_split(run_dir, "complete", "test")
    if not rows:
        raise UserError("the complete test split is empty: mine more commits")
    rows = [rows[i] for i in spread_sample(rows, cfg.complete_examples, seed=3)]
    retrieval_idx = retrieval_sample(rows, cfg.retrieval_examples)
    scored = set(loss_rows(rows, cfg.max_examples))
    refs = [r["completion"] for r in rows]
    keys = {
        "": row_keys(
            [r["prompt"] for r in rows], refs, common, [[i in scored] for i in range(len(rows))]
        ),
        "+retrieval": row_keys(
            [rows[i]["meta"]["retrieval_prompt"] for i in retrieval_idx],
            [refs[i] for i in retrieval_idx],
            common,
            [["retrieval"]] * len(retrieval_idx),
        ),
    }
    result: dict = {}
    per_row: dict[str, list[dict]] = {}
    folder = run_dir / "eval" / "complete"
    for label, (path, adapter_path) in (("base", (model_path, None)), ("tuned", tuned)):
        reuse = label == "base" and cfg.reuse_base
        known = {
            label: kept(folder / f"{label}.jsonl", keys[""], reuse),
            f"{label}+retrieval": kept(
                folder / f"{label}+retrieval.jsonl", keys["+retrieval"], reuse
            ),
        }
        for name, rows_kept in known.items():
            if rows_kept:
                n = len(rows) if name == label else len(retrieval_idx)
                say(f"  complete, {name}: {len(rows_kept)} of {n} answers kept from the last run")
        model = None
        if len(known[label]) < len(rows) or len(known[f"{label}+retrieval"]) < len(retrieval_idx):
            model = load_model(path, dtype=model_cfg.dtype, adapter=adapter_path, merge=cfg.merge)
        found = evaluate_model(model, tokenizer, rows, retrieval_idx, cfg, max_length, label, known)
        del model
        for name, (res, lines) in found.items():
            result[name] = res
            per_row[name] = lines
            kind = name.removeprefix(label)
            write_jsonl(
                folder / f"{name}.jsonl",
                [{**r, "key": k} for r, k in zip(lines, keys[kind], strict=True)],
            )
    result["comparisons"] = comparisons(per_row)
    return result


def run_evaluate(
    run_dir: Path,
    model_cfg: ModelConfig,
    cfg: EvaluateConfig,
    max_length: int,
    tasks: list[str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Write eval/summary.json ({"tasks": {task: {"base": .., "tuned": ..}}}) and return it.
    `tasks`: default evaluate.tasks, else every task the last build wrote (rundir.stage_tasks).
    A commit row whose meta has `old_side` gets its diff decoded in that grammar
    (`evaluate.constrain_diffs`). `say` hears how many base answers were kept (reuse.py): the
    summary does not say it, so a rerun writes the same files however much it kept."""
    tasks = stage_tasks(run_dir, cfg.tasks if tasks is None else tasks, "evaluate.tasks")
    tuned = tuned_model(run_dir, model_cfg.name).load_args()  # base + adapter, or a full FT
    model_path = resolve_model(model_cfg.name)
    tokenizer = load_tokenizer(model_path)
    common = settings(f"{model_cfg.name} {model_path}", model_cfg.dtype, cfg, max_length)
    summary: dict = {"model": model_cfg.name, "tasks": {}}
    for task in tasks:
        if task == "complete":
            summary["tasks"][task] = _eval_complete(
                run_dir, model_path, tuned, tokenizer, model_cfg, cfg, max_length, common, say
            )
            continue
        rows = load_split(run_dir, task, "test")
        if cfg.max_examples is not None:
            rows = [rows[i] for i in spread_sample(rows, cfg.max_examples, seed=1)]
        if not rows:
            raise UserError(f"the {task} test split is empty: mine more commits")
        gen_idx = spread_sample(rows, cfg.generate_examples)
        diffs = None
        if task == "commit" and cfg.constrain_diffs:
            diffs = _old_sides([rows[i] for i in gen_idx])
        asked = dict(zip(gen_idx, diffs or [None] * len(gen_idx), strict=True))
        roles = [[i in asked, asked.get(i)] for i in range(len(rows))]  # answered, grammar
        keys = row_keys([r["prompt"] for r in rows], [r["completion"] for r in rows], common, roles)
        result = {}
        for label, (path, adapter_path) in (("base", (model_path, None)), ("tuned", tuned)):
            out = run_dir / "eval" / task / f"{label}.jsonl"
            known = kept(out, keys, enabled=label == "base" and cfg.reuse_base)
            if known:
                say(f"  {task}, {label}: {len(known)} of {len(rows)} rows kept from the last run")
            model = None
            if len(known) < len(rows):
                model = load_model(
                    path, dtype=model_cfg.dtype, adapter=adapter_path, merge=cfg.merge
                )
            result[label], per_row = _eval_model(
                model, tokenizer, rows, gen_idx, cfg, max_length, label, diffs, known
            )
            write_jsonl(out, [{**r, "key": k} for r, k in zip(per_row, keys, strict=True)])
            del model
        summary["tasks"][task] = result
    # Other evaluations (bugs, humaneval, ...) keep their sections of the same file, and tasks
    # evaluated earlier (evaluate.tasks=[complete] after [commit]) keep theirs.
    update_tasks(run_dir, summary)
    from repotune.cards import write_cards

    write_cards(run_dir)  # the model cards' model-index now has these results
    return summary
