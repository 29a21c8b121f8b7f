"""Token agreement of an exported GGUF in llama.cpp with the merged model in transformers.

    repotune export --gguf --out RUN                  # RUN/merged and RUN/export/RUN-f16.gguf
    .venv/bin/python bench/gguf_llamacpp.py RUN [--gguf FILE] [--n 8] [--commit 2]
        [--max-new-tokens 32] [--kv-f32]

Needs llama-cpp-python (`make llamacpp-check` compiles it). The prompts are the run's own
held-out test prompts, spread over the file: `--n` of the `complete` task and `--commit` of
the `commit` task where the run built them. Both runtimes get transformers' token ids;
transformers decodes greedily and llama.cpp's top token is compared at every step
(train/gguf_check.py). Printed: tokens compared, the share where llama.cpp's top token is
transformers', prompts whose whole continuation is identical, whether llama.cpp tokenizes the
text alike, the largest logit difference, and the first divergence with transformers' top-2
margin there (a near-tie or not). The named baseline is transformers on the merged model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def spread(rows: list[dict], n: int) -> list[dict]:
    """`n` rows evenly over the file (its order is time order), first and last included."""
    if n <= 0 or not rows:
        return []
    if n >= len(rows):
        return rows
    step = (len(rows) - 1) / max(n - 1, 1)
    return [rows[round(i * step)] for i in range(n)]


def test_prompts(run: Path, task: str, n: int) -> list[str]:
    path = run / "datasets" / task / "test.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["prompt"] for r in spread(rows, n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--gguf", type=Path, help="default: the one GGUF in RUN/export")
    parser.add_argument("--n", type=int, default=8, help="`complete` test prompts")
    parser.add_argument("--commit", type=int, default=2, help="`commit` test prompts")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--kv-f32", action="store_true", help="llama.cpp's KV cache in f32")
    args = parser.parse_args()

    from repotune.train.gguf_check import compare

    merged = args.run / "merged"
    found = [args.gguf] if args.gguf else sorted((args.run / "export").glob("*.gguf"))
    if not (merged / "config.json").is_file() or len(found) != 1:
        sys.exit(f"need {merged} and one GGUF: run `repotune export --gguf --out {args.run}`")
    prompts = test_prompts(args.run, "complete", args.n)
    prompts += test_prompts(args.run, "commit", args.commit)
    if not prompts:
        sys.exit(f"no test prompts in {args.run / 'datasets'}")
    threads = os.cpu_count()
    print(f"{found[0].name} vs transformers on {merged}: {len(prompts)} prompts, "
          f"{args.max_new_tokens} new tokens each, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    result = compare(found[0], merged, prompts, args.max_new_tokens, threads, args.kv_f32)
    for i, p in enumerate(result.prompts):
        where = "identical" if p.first_divergence is None else f"diverges at {p.first_divergence}"
        print(f"  prompt {i}: {p.agree}/{p.tokens} top tokens agree, {where}, "
              f"tokenizer {'same' if p.tokenizer_same else 'DIFFERENT'}, "
              f"max |dlogit| {p.max_logit_diff:.3f}")  # fmt: skip
    print(json.dumps(result.summary(), indent=1))


if __name__ == "__main__":
    main()
