"""All four completion rows on the full sample: base, tuned, base + retrieval, tuned + retrieval.

    .venv/bin/python bench/complete_rows.py RUN [--out FILE]

RUN is a run folder after `repotune run` with the `complete` task. Within its 15-minute budget
the quickstart answers `evaluate.retrieval_examples` targets with retrieval; this script answers
every target of the same sample with retrieval (base and tuned), reuses the run's own plain
answers (RUN/eval/complete/{base,tuned}.jsonl), and prints the four exact matches and the
paired comparisons (bootstrap interval, discordant counts, McNemar's exact p) on the targets
that have a retrieval prompt. The tuned model is evaluated merged, as `repotune evaluate` does.
It writes RUN/eval/complete_full_retrieval.json (or --out). A quality run, not a timed test:
time nothing beside another heavy job (two torch processes on 2 cores slow each other 5-10x).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from repotune.config import load_config
    from repotune.evaluate.completion import _answers, comparisons, completion_scores
    from repotune.evaluate.sample import spread_sample
    from repotune.models.load import load_model, load_tokenizer
    from repotune.rundir import load_split, tuned_model

    run = args.run
    plain_dir = run / "eval" / "complete"
    if not (plain_dir / "tuned.jsonl").is_file():
        sys.exit(f"no tuned completion answers in {run}: run `repotune run` with `complete` first")
    cfg = load_config(run / "config.yaml")
    tuned = tuned_model(run, cfg.model.name)  # the rule `repotune evaluate` follows
    ecfg = cfg.evaluate
    rows = load_split(run, "complete", "test")
    rows = [rows[i] for i in spread_sample(rows, ecfg.complete_examples, seed=3)]
    plain = {}
    for label in ("base", "tuned"):
        answers = [json.loads(x) for x in (plain_dir / f"{label}.jsonl").read_text().splitlines()]
        plain[label] = {a["id"]: bool(a["exact_match"]) for a in answers}
    rows = [r for r in rows if r["meta"].get("retrieval_prompt") and r["id"] in plain["tuned"]]
    print(f"{len(rows)} targets with a retrieval prompt, load {os.getloadavg()[0]:.2f}")

    tokenizer = load_tokenizer(cfg.model.name)
    prompts = [r["meta"]["retrieval_prompt"] for r in rows]
    refs = [r["completion"] for r in rows]
    hits: dict[str, list[bool]] = {k: [plain[k][r["id"]] for r in rows] for k in plain}
    models = {
        "base": (cfg.model.name, None),
        "tuned": tuned.load_args(),
    }
    for label, (source, adapter) in models.items():
        start, done = time.perf_counter(), [0]

        def advance(k: int, label: str = label, done: list[int] = done) -> None:
            done[0] += k
            print(f"\r{label} + retrieval: {done[0]}/{len(rows)}", end="", file=sys.stderr)

        model = load_model(source, dtype=cfg.model.dtype, adapter=adapter, merge=True)
        texts = _answers(model, tokenizer, prompts, refs, ecfg, cfg.train.max_length * 4, advance)
        hits[f"{label}+retrieval"] = [
            bool(completion_scores(t, ref)["exact_match"]) for t, ref in zip(texts, refs)
        ]
        del model
        print(f"\n{label} + retrieval: {time.perf_counter() - start:.0f} s", file=sys.stderr)

    per_row = {
        k: [{"id": r["id"], "exact_match": h} for r, h in zip(rows, v)] for k, v in hits.items()
    }
    out = {
        "n": len(rows),
        "exact_match": {k: sum(v) / len(v) for k, v in hits.items()} if rows else {},
        "comparisons": comparisons(per_row),
    }
    print(f"{'row':18s} exact match   (n = {len(rows)})")
    for k, v in out["exact_match"].items():
        print(f"{k:18s} {v:.3f}")
    for name, c in out["comparisons"].items():
        print(
            f"{name:36s} {c['diff']:+.3f} ({c['lo']:+.3f} to {c['hi']:+.3f})  "
            f"{c['second_only']} vs {c['first_only']}  McNemar p = {c['mcnemar_p']:.3f}"
        )
    path = args.out or run / "eval" / "complete_full_retrieval.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
