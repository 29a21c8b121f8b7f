"""Evaluation of the `complete` task: the measure repository tuning is judged by.

Four rows answer the same held-out targets greedily, each stopped at the end of its line or
block: base, base + retrieval, tuned, tuned + retrieval (BM25 snippets of the code before the
cutoff, put before the same prompt; build/complete.py). Exact match (whitespace-insensitive)
is the headline, with McNemar's exact test and a paired bootstrap interval for each
comparison (evaluate/paired.py); edit similarity and the loss on the targets come beside it.
The retrieval rows answer a seeded sub-sample of the same rows when
`evaluate.retrieval_examples` is smaller, and the summary says how many.
"""

from __future__ import annotations

from collections.abc import Callable

from rapidfuzz.distance import Levenshtein
from rich.progress import Progress

from repotune.config import EvaluateConfig
from repotune.evaluate.metrics import completion_nll, loss_summary
from repotune.evaluate.paired import compare
from repotune.evaluate.sample import spread_sample
from repotune.infer.generate import generate
from repotune.records import squash_spaces

DECODING = "greedy, to the end of the line or block"
# (second, first): each comparison asks whether `second` beats `first`.
COMPARISONS = (
    ("tuned", "base"),
    ("base+retrieval", "base"),
    ("tuned", "base+retrieval"),
    ("tuned+retrieval", "base+retrieval"),
    ("tuned+retrieval", "tuned"),
)


def completion_scores(prediction: str, reference: str) -> dict[str, float | bool]:
    a, b = squash_spaces(prediction), squash_spaces(reference)
    return {"exact_match": a == b, "edit_similarity": Levenshtein.normalized_similarity(a, b)}


def line_count(reference: str) -> int:
    """Lines an answer is cut after: as many as the target spans."""
    return max(reference.count("\n"), 1)


def retrieval_sample(rows: list[dict], n: int) -> list[int]:
    """Indices of up to `n` rows that carry a retrieval prompt, a seeded sample spread over
    commits like the generation sample (the first `n` rows in file order would be the oldest
    commits' only)."""
    have = [i for i, r in enumerate(rows) if r["meta"].get("retrieval_prompt")]
    return [have[j] for j in spread_sample([rows[i] for i in have], n, seed=4)]


def loss_rows(rows: list[dict], cap: int | None) -> list[int]:
    """The rows the loss is taken on: all, or `evaluate.max_examples` of them spread over
    commits (the loss interval needs far fewer rows than exact match does)."""
    if cap is None or cap >= len(rows):
        return list(range(len(rows)))
    return spread_sample(rows, cap, seed=5)


def _answers(model, tokenizer, prompts, refs, cfg, max_prompt_tokens, advance) -> list[str]:
    """Greedy answers, in batches of targets of like length: a batch decodes until its longest
    row stops, and no answer longer than its target plus a margin can match it, so each
    batch stops there."""
    sizes = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in refs]
    order = sorted(range(len(prompts)), key=lambda i: (line_count(refs[i]), sizes[i]))
    texts: list[str] = [""] * len(prompts)
    for start in range(0, len(order), cfg.batch_size):
        batch = order[start : start + cfg.batch_size]
        out = generate(
            model,
            tokenizer,
            [prompts[i] for i in batch],
            max_new_tokens=min(cfg.max_new_tokens, max(sizes[i] for i in batch) + 8),
            max_prompt_tokens=max_prompt_tokens,
            batch_size=len(batch),
            stop_lines=[line_count(refs[i]) for i in batch],
        )
        for i, text in zip(batch, out, strict=True):
            texts[i] = text
        advance(len(batch))
    return texts


def evaluate_model(
    model,
    tokenizer,
    rows: list[dict],
    retrieval_idx: list[int],
    cfg: EvaluateConfig,
    max_length: int,
    label: str,
    known: dict[str, dict[int, dict]] | None = None,
) -> dict[str, tuple[dict, list[dict]]]:
    """{label: (summary, per-row results)} for the plain rows, and for `label+retrieval` over
    `retrieval_idx` when it is not empty. `known`: per output name, position in its rows (all
    rows, or `retrieval_idx`) -> the last evaluation's record to keep (evaluate/reuse.py); the
    model answers the rest, and may be None when nothing is left."""
    known = known or {}
    plain, with_r = known.get(label, {}), known.get(f"{label}+retrieval", {})
    out: dict[str, tuple[dict, list[dict]]] = {}
    with Progress(transient=True) as progress:

        def bar(name: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(f"{name}", total=total)
            return lambda k: progress.advance(task, k)

        scored = loss_rows(rows, cfg.max_examples)
        nll = [(0.0, 0)] * len(rows)  # rows left out of the loss count no tokens
        for i in plain:
            nll[i] = (plain[i]["nll"], plain[i]["tokens"])
        todo = [i for i in scored if i not in plain]
        losses = completion_nll(
            model,
            tokenizer,
            [rows[i] for i in todo],
            max_length,
            cfg.batch_size,
            bar(f"{label}: loss", len(todo)),
        ) if todo else []  # fmt: skip
        for i, pair in zip(todo, losses, strict=True):
            nll[i] = pair
        texts = _some_answers(
            model,
            tokenizer,
            [r["prompt"] for r in rows],
            [r["completion"] for r in rows],
            plain,
            cfg,
            max_length,
            bar(f"{label}: complete", len(rows) - len(plain)),
        )
        per_row = [
            {"id": r["id"], "nll": s, "tokens": n, "generation": text,
             **completion_scores(text, r["completion"])}
            for r, (s, n), text in zip(rows, nll, texts, strict=True)
        ]  # fmt: skip
        summary = {**loss_summary([nll[i] for i in scored]), **_means(per_row), "n": len(rows)}
        out[label] = ({**summary, "n_loss": len(scored)}, per_row)
        if retrieval_idx:
            picked = [rows[i] for i in retrieval_idx]
            texts = _some_answers(
                model,
                tokenizer,
                [r["meta"]["retrieval_prompt"] for r in picked],
                [r["completion"] for r in picked],
                with_r,
                cfg,
                max_length * 4,  # the snippets come on top of the prompt
                bar(f"{label}+retrieval: complete", len(picked) - len(with_r)),
            )
            rows_r = [
                {"id": r["id"], "generation": t, **completion_scores(t, r["completion"])}
                for r, t in zip(picked, texts, strict=True)
            ]
            out[f"{label}+retrieval"] = ({**_means(rows_r), "n": len(picked)}, rows_r)
    return out


def _some_answers(model, tokenizer, prompts, refs, known, cfg, max_prompt_tokens, advance):
    """`_answers`, but the ones in `known` (position -> record) are kept, not asked."""
    todo = [j for j in range(len(prompts)) if j not in known]
    found = _answers(
        model,
        tokenizer,
        [prompts[j] for j in todo],
        [refs[j] for j in todo],
        cfg,
        max_prompt_tokens,
        advance,
    ) if todo else []  # fmt: skip
    texts = {j: known[j]["generation"] for j in known}
    texts.update(zip(todo, found, strict=True))
    return [texts[j] for j in range(len(prompts))]


def _means(rows: list[dict]) -> dict:
    n = len(rows)
    return {
        "exact_match": sum(r["exact_match"] for r in rows) / n if n else None,
        "edit_similarity": sum(r["edit_similarity"] for r in rows) / n if n else None,
        "n_generated": n,
        "decoding": DECODING,
    }


def comparisons(per_row: dict[str, list[dict]]) -> dict[str, dict]:
    """Each pair of COMPARISONS both of whose rows exist, on the rows they share."""
    out = {}
    for second, first in COMPARISONS:
        if second not in per_row or first not in per_row:
            continue
        by_id = {r["id"]: r["exact_match"] for r in per_row[first]}
        shared = [(by_id[r["id"]], r["exact_match"]) for r in per_row[second] if r["id"] in by_id]
        if shared:
            out[f"{second} vs {first}"] = compare([a for a, _ in shared], [b for _, b in shared])
    return out
