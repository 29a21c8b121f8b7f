"""Completion speed: base, tuned as base + adapter, and tuned merged, on the same test targets.

    .venv/bin/python bench/complete_speed.py RUN [--n 64] [--batch-size 8]

RUN is a run folder with `datasets/complete/test.jsonl` and `adapter/` (after `repotune run`
with `complete` in build.tasks). Each model answers the same `--n` targets the way
`repotune evaluate` does (greedy, stopped at the end of the line or block, batches of like
length). Printed: completions/s of each, the ratio of each to the base (the named baseline,
measured in the same run) and of merged to adapter, and whether the merged model's answers are
the adapter's (merging folds B@A into W in float32 and casts back, so a few may differ).
Time nothing beside another heavy job: two torch processes on 2 cores slow each other 5-10x.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="gemma-3-270m")
    args = parser.parse_args()

    from repotune.config import EvaluateConfig
    from repotune.evaluate.completion import _answers
    from repotune.evaluate.sample import spread_sample
    from repotune.models.load import load_model, load_tokenizer
    from repotune.models.registry import resolve_model
    from repotune.rundir import load_split
    from repotune.train.merge import run_merge

    adapter = args.run / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        sys.exit(f"no adapter in {args.run}: run `repotune run` with the complete task first")
    rows = load_split(args.run, "complete", "test")
    rows = [rows[i] for i in spread_sample(rows, args.n, seed=3)]
    prompts = [r["prompt"] for r in rows]
    refs = [r["completion"] for r in rows]
    cfg = EvaluateConfig(batch_size=args.batch_size, max_new_tokens=128)
    path = resolve_model(args.model)
    tokenizer = load_tokenizer(path)
    print(f"{len(rows)} targets, batches of {args.batch_size}, load {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        merged = run_merge(args.model, adapter, Path(tmp) / "merged")
        answers, rates = {}, {}
        for label, source, extra in (
            ("base", path, None),
            ("tuned (adapter)", path, str(adapter)),
            ("tuned (merged)", str(merged), None),
        ):
            model = load_model(source, dtype="auto", adapter=extra)
            _answers(model, tokenizer, prompts[:8], refs[:8], cfg, 512, lambda k: None)  # warm
            start = time.perf_counter()
            answers[label] = _answers(model, tokenizer, prompts, refs, cfg, 512, lambda k: None)
            rates[label] = len(rows) / (time.perf_counter() - start)
            del model
    base = rates["base"]
    for label, rate in rates.items():
        print(f"{label:16s} {rate:6.2f} completions/s  ({rate / base:.2f}x base)")
    ratio = rates["tuned (merged)"] / rates["tuned (adapter)"]
    same = sum(a == b for a, b in zip(answers["tuned (adapter)"], answers["tuned (merged)"]))
    print(f"merged / adapter: {ratio:.2f}x; identical answers {same}/{len(rows)}")


if __name__ == "__main__":
    main()
