"""Training speed against a naive trainer, on the same model, examples and number of steps.

    .venv/bin/python bench/train.py --steps 4            (embedded default, ~10 min on 2 cores)
    .venv/bin/python bench/train.py --data RUN/datasets/commit/train.jsonl --steps 8

Both trainers run in child processes, one after the other, on the same rows in the same order
(batch 4, the same LoRA r/alpha/targets, learning rate, schedule and seed):

- naive: transformers' Trainer + PEFT as a first notebook writes it: float32, every example
  padded to max_length, no packing, the loss from the model's full-vocabulary logits.
- repotune: `run_train` as `repotune train` runs it (malloc tuning, bfloat16 where the CPU has
  it, padding-free batches with per-example position ids, TRL's fused LM head scoring only the
  completion positions).

Printed: non-padding tokens/s of each (tokens the steps consumed / time inside the steps),
the ratio, peak RSS of each child, and each model's loss on the same validation rows, computed
the same way for both (adapter on a float32 base, completion tokens only). Without --data the
rows are built from the Python standard library's sources, shaped like the commit task
(instruction + code before -> a diff; ~300 tokens, ~30% completion, lengths spread to 512).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--data", type=Path, help="train.jsonl rows (prompt, completion)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--val", type=int, default=8, help="validation rows")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--child", choices=["naive", "repotune"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        result = (run_naive if args.child == "naive" else run_repotune)(args)
        (args.work / f"{args.child}.json").write_text(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        train, val = rows(args)
        write_split(work / "run" / "datasets" / "commit", train, val)
        load = os.getloadavg()
        print(f"{args.model}: {args.steps} steps x batch {args.batch_size}, max_length "
              f"{args.max_length}, {len(train)} train / {len(val)} val rows; "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)  # fmt: skip
        results = {}
        for name in ("naive", "repotune"):
            cmd = [sys.executable, __file__, "--child", name, "--work", str(work)]
            for key in ("steps", "model", "batch_size", "max_length", "learning_rate"):
                cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
            t0 = time.monotonic()
            subprocess.run(cmd, check=True)
            results[name] = json.loads((work / f"{name}.json").read_text())
            results[name]["wall"] = time.monotonic() - t0
            print(f"  {name}: done in {results[name]['wall']:.0f} s", flush=True)
        report(results, os.getloadavg())


def report(results: dict, load: tuple[float, float, float]) -> None:
    naive, ours = results["naive"], results["repotune"]
    print()
    print(f"{'':10} {'tokens/s':>9} {'tokens':>7} {'padding':>8} {'step s':>7} "
          f"{'peak RSS':>9} {'val loss':>9}")  # fmt: skip
    for name, r in results.items():
        print(f"{name:10} {r['tokens_per_second']:9.1f} {r['tokens']:7d} "
              f"{r['padding_share']:8.1%} {r['step_seconds']:7.1f} "
              f"{r['peak_rss_mb'] / 1024:7.2f} GB {r['val_loss']:9.4f}")  # fmt: skip
    ratio = ours["tokens_per_second"] / naive["tokens_per_second"]
    mem = ours["peak_rss_mb"] / naive["peak_rss_mb"]
    print(f"\nrepotune / naive: {ratio:.2f}x tokens/s at {mem:.2f}x the peak memory "
          f"(load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")  # fmt: skip


# -- the examples ---------------------------------------------------------------------------


def rows(args) -> tuple[list[dict], list[dict]]:
    n_train = args.steps * args.batch_size
    if args.data:
        from repotune.fsutil import read_jsonl

        data = read_jsonl(args.data)
        return data[:n_train], data[n_train : n_train + args.val]
    data = stdlib_rows(n_train + args.val, seed=0)
    return data[:n_train], data[n_train:]


def stdlib_rows(n: int, seed: int) -> list[dict]:
    """Commit-task-shaped rows from the standard library's sources: deterministic per Python."""
    rng = random.Random(seed)
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in lib.glob("*.py") if p.stat().st_size > 20_000)
    out = []
    while len(out) < n:
        path = rng.choice(files)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        before = rng.randint(4, 45)
        changed = rng.randint(2, 14)
        start = rng.randrange(0, max(1, len(lines) - before - changed))
        code = lines[start : start + before]
        old = lines[start + before : start + before + changed]
        new = [ln.replace("self", "obj") if i % 2 else ln for i, ln in enumerate(old)]
        prompt = (f"### Instruction:\nUpdate {path.name} near line {start + before}\n"
                  f"### Code before:\n" + "\n".join(code) + "\n### Diff:\n")  # fmt: skip
        diff = "".join(f"-{a}\n+{b}\n" if a != b else f" {a}\n" for a, b in zip(old, new))
        out.append({"id": str(len(out)), "task": "commit", "prompt": prompt,
                    "completion": diff, "meta": {}})  # fmt: skip
    return out


def write_split(folder: Path, train: list[dict], val: list[dict]) -> None:
    from repotune.fsutil import write_jsonl

    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "val.jsonl", [])  # no evaluation inside the timed training
    write_jsonl(folder / "bench_val.jsonl", val)


# -- the two trainers (each in its own child process) ---------------------------------------


def run_repotune(args) -> dict:
    from repotune.memory import tune_malloc

    tune_malloc()  # what `repotune train` does first
    from repotune.config import ModelConfig, TrainConfig
    from repotune.train.sft import run_train

    run = args.work / "run"
    cfg = TrainConfig(
        max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate, save_steps=args.steps, save_minutes=None,
        report_to=[], progress=False, logging_steps=1, lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"],
    )  # fmt: skip
    summary = run_train(run, ModelConfig(name=args.model), cfg, ["commit"])
    peak = peak_rss_mb()
    history = json.loads((run / "train" / "log_history.json").read_text())
    shares = [h["padding_share"] for h in history if "padding_share" in h]
    return {
        "tokens": summary["train_tokens"],
        "step_seconds": summary["step_seconds"],
        "tokens_per_second": summary["train_tokens"] / summary["step_seconds"],
        "padding_share": sum(shares) / len(shares) if shares else 0.0,
        "peak_rss_mb": peak,
        "dtype": summary["dtype"],
        "val_loss": val_loss(args, run / "adapter"),
    }


def run_naive(args) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainingArguments, default_data_collator

    from repotune.fsutil import read_jsonl
    from repotune.models.encode import encode_example
    from repotune.models.load import load_tokenizer
    from repotune.models.registry import resolve_model

    path = resolve_model(args.model)
    tokenizer = load_tokenizer(path)
    padded = []
    for r in read_jsonl(args.work / "run" / "datasets" / "commit" / "train.jsonl"):
        enc = encode_example(tokenizer, r["prompt"], r["completion"], args.max_length)
        ids, mask = enc["input_ids"], enc["completion_mask"]
        pad = args.max_length - len(ids)
        padded.append({
            "input_ids": ids + [tokenizer.pad_token_id] * pad,
            "attention_mask": [1] * len(ids) + [0] * pad,
            "labels": [t if m else -100 for t, m in zip(ids, mask)] + [-100] * pad,
        })  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    trainer, timer = naive_trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(args.work / "naive"),
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=int(0.05 * args.steps),
            use_cpu=True,
            save_strategy="no",
            report_to=[],
            logging_steps=1,
            seed=0,
            data_seed=0,
            disable_tqdm=True,
            dataloader_num_workers=0,
        ),  # fmt: skip
        train_dataset=Dataset.from_list(padded),
        data_collator=default_data_collator,
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    peak = peak_rss_mb()
    model.save_pretrained(str(args.work / "naive" / "adapter"))
    return {
        "tokens": timer.real,
        "step_seconds": timer.seconds,
        "tokens_per_second": timer.real / timer.seconds,
        "padding_share": 1 - timer.real / timer.positions,
        "peak_rss_mb": peak,
        "dtype": "float32",
        "val_loss": val_loss(args, args.work / "naive" / "adapter"),
    }


class StepTimer:
    """Time inside the optimizer steps and the tokens they consumed (as TokenMeter does)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        self.real = self.positions = 0
        self.seconds = 0.0
        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.seconds += time.perf_counter() - timer._t0

        self.callback = _Callback()

    def count(self, batch: dict) -> None:
        self.real += int(batch["attention_mask"].sum())
        self.positions += int(batch["attention_mask"].numel())


def naive_trainer(**kwargs):
    """transformers' Trainer, counting the real tokens of each batch it steps on."""
    from transformers import Trainer

    timer = StepTimer()

    class CountingTrainer(Trainer):
        def training_step(self, model, inputs, *args, **kw):
            timer.count(inputs)
            return super().training_step(model, inputs, *args, **kw)

    return CountingTrainer(callbacks=[timer.callback], **kwargs), timer


def val_loss(args, adapter: Path) -> float:
    """Mean loss per completion token on the validation rows: float32 base + the adapter,
    one row at a time (no padding), the same function for both trainers."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from repotune.fsutil import read_jsonl
    from repotune.models.encode import encode_example
    from repotune.models.load import load_tokenizer
    from repotune.models.registry import resolve_model

    path = resolve_model(args.model)
    tokenizer = load_tokenizer(path)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    total, count = 0.0, 0
    for r in read_jsonl(args.work / "run" / "datasets" / "commit" / "bench_val.jsonl"):
        enc = encode_example(tokenizer, r["prompt"], r["completion"], args.max_length)
        ids = torch.tensor([enc["input_ids"]])
        mask = torch.tensor(enc["completion_mask"][1:], dtype=torch.bool)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
        total += float(nll[mask].sum())
        count += int(mask.sum())
    return total / count


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
