"""`repotune doctor`: what this machine offers for fine-tuning, and what that means.

Facts (torch, CUDA, GPU memory, bfloat16, optional accelerators, disk, caches) are gathered
without loading a model or importing heavy optional packages; the model's size comes from its
safetensors headers. The advice is a memory estimate, not a promise: it picks a method and a
batch size that should fit, so the first run does not die of out-of-memory an hour in.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import struct
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from rich.table import Table

GiB = 1024**3
# Bytes per parameter while training (weights + gradients + optimizer state), by method.
# Full: bf16 weights and grads, fp32 master copy and two AdamW moments; LoRA: frozen 16-bit
# weights plus a small adapter; QLoRA: 4-bit NF4 weights (with quantisation constants).
BYTES_PER_PARAM = {"full": 16.0, "lora": 2.2, "qlora": 0.7}
USABLE = 0.85  # of free memory: the allocator, CUDA context and fragmentation take the rest


@dataclass
class Gpu:
    name: str
    total_gib: float
    free_gib: float
    bf16: bool


@dataclass
class Facts:
    python: str
    torch: str | None
    cuda: str | None
    gpus: list[Gpu]
    cpu_cores: int
    cpu_bf16: bool
    ram_total_gib: float
    ram_available_gib: float
    bitsandbytes: str | None
    vllm: str | None
    flash_attn: str | None
    disk_free_gib: float
    cache_dir: str
    cache_gib: float
    cached_models: list[str] = field(default_factory=list)


@dataclass
class ModelShape:
    """What the memory estimate needs: parameters, layers, width, vocabulary."""

    name: str
    params: float | None
    layers: int | None = None
    hidden: int | None = None
    vocab: int | None = None


@dataclass
class Advice:
    device: str
    dtype: str
    method: str | None
    batch_size: int
    memory_gib: float
    notes: list[str]
    flags: str


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _meminfo() -> tuple[float, float]:
    """(total, available) RAM in GiB from /proc/meminfo; (0, 0) where there is none."""
    values = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    return values.get("MemTotal", 0) / GiB, values.get("MemAvailable", 0) / GiB


def _folder_gib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                pass
    return total / GiB


def gather(disk_path: Path = Path(".")) -> Facts:
    """This machine's facts; importing torch is the only slow part (a few seconds)."""
    from repotune.models.load import cpu_has_native_bf16
    from repotune.models.registry import cache_dir

    gpus: list[Gpu] = []
    torch_version = cuda = None
    try:
        import torch

        torch_version, cuda = torch.__version__, torch.version.cuda
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                with torch.cuda.device(i):
                    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
                gpus.append(Gpu(torch.cuda.get_device_name(i), total / GiB, free / GiB, bf16))
    except ImportError:
        pass
    total_ram, available_ram = _meminfo()
    disk = disk_path if disk_path.exists() else Path(".")
    cache = cache_dir()
    models = sorted(p.name for p in (cache / "models").glob("*") if p.is_dir())
    return Facts(
        python=platform.python_version(),
        torch=torch_version,
        cuda=cuda,
        gpus=gpus,
        cpu_cores=os.cpu_count() or 1,
        cpu_bf16=cpu_has_native_bf16(),
        ram_total_gib=total_ram,
        ram_available_gib=available_ram,
        bitsandbytes=_version("bitsandbytes"),
        vllm=_version("vllm"),
        flash_attn=_version("flash-attn") or _version("flash_attn"),
        disk_free_gib=shutil.disk_usage(disk).free / GiB,
        cache_dir=str(cache),
        cache_gib=_folder_gib(cache) if cache.is_dir() else 0.0,
        cached_models=[m for m in models if not m.startswith(".")],
    )


def _safetensors_params(folder: Path) -> int | None:
    """Parameter count from safetensors headers (8-byte length + JSON), no weights read."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def model_shape(name: str) -> ModelShape:
    """Size and shape of a local model; params None for a hub id that is not downloaded."""
    from repotune.errors import UserError
    from repotune.models.registry import EMBEDDED_DEFAULT, cache_dir, resolve_model

    if name == EMBEDDED_DEFAULT and not (cache_dir() / "models" / name / "config.json").is_file():
        # Not converted yet (that takes a minute): Gemma 3 270M's published shape.
        return ModelShape(name, 268_098_176, layers=18, hidden=640, vocab=262_144)
    try:
        folder = Path(resolve_model(name))
    except UserError:
        return ModelShape(name, None)
    if not folder.is_dir():
        return ModelShape(name, None)
    cfg = json.loads((folder / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    return ModelShape(
        name,
        _safetensors_params(folder),
        layers=cfg.get("num_hidden_layers"),
        hidden=cfg.get("hidden_size"),
        vocab=cfg.get("vocab_size"),
    )


def _per_sample_gib(shape: ModelShape, max_length: int, bytes_per_act: int) -> float:
    """Activation memory of one training sequence: ~34·h bytes per layer and token in 16-bit
    (Korthikanti et al. 2022, with memory-efficient attention), plus fp32 logits and their
    gradient, which dominate for large vocabularies (Gemma's 262k)."""
    layers, hidden, vocab = shape.layers or 32, shape.hidden or 4096, shape.vocab or 32_000
    per_token = 17 * bytes_per_act * layers * hidden + 8 * vocab
    return max_length * per_token / GiB


def _supported_methods() -> tuple[str, ...]:
    from typing import get_args

    from repotune.config import TrainConfig

    return get_args(TrainConfig.model_fields["method"].annotation) or ("lora",)


def advise(facts: Facts, shape: ModelShape, max_length: int = 512) -> Advice:
    """Method, dtype and batch size that should fit this machine for `shape`."""
    notes: list[str] = []
    gpu = max(facts.gpus, key=lambda g: g.free_gib) if facts.gpus else None
    if gpu:
        device, memory, bf16 = f"cuda ({gpu.name})", gpu.free_gib, gpu.bf16
    else:
        device, memory, bf16 = "cpu", facts.ram_available_gib, facts.cpu_bf16
        notes.append(
            "no CUDA GPU: training runs on the CPU; expect minutes per few hundred examples "
            "with a 270M model, hours with billions of parameters; for a larger effective "
            "batch raise train.gradient_accumulation_steps"
        )
    dtype = "bfloat16" if bf16 else ("float16" if gpu else "float32")
    act_bytes = 2 if dtype != "float32" else 4
    if shape.params is None:
        notes.append(f"size of {shape.name} unknown (not downloaded): assuming 7B parameters")
    params = shape.params or 7e9
    per_sample = _per_sample_gib(shape, max_length, act_bytes)
    budget = memory * USABLE
    weight_scale = 1.0 if act_bytes == 2 else 2.0  # float32 doubles weights and grads
    candidates = ["lora", "qlora"] if gpu else ["lora"]
    if facts.bitsandbytes is None and "qlora" in candidates:
        candidates.remove("qlora")
    method, batch, need = None, 0, 0.0
    for m in candidates:
        fixed = params * BYTES_PER_PARAM[m] * (weight_scale if m != "qlora" else 1.0) / GiB
        fits = int((budget - fixed) / per_sample) if budget > fixed else 0
        if fits >= 1:
            # A CPU gains nothing from batches past a few sequences: accumulate instead.
            method, batch = m, 2 ** int(math.log2(min(fits, 64 if gpu else 4)))
            need = fixed + batch * per_sample
            break
    if method is None and not gpu and facts.bitsandbytes:
        notes.append("LoRA does not fit in RAM; QLoRA (bitsandbytes 4-bit) would, but on a CPU "
                     "it is ~2x slower per step")  # fmt: skip
    if method is None:
        notes.append(
            f"nothing fits at max_length {max_length}: shorten train.max_length, turn on "
            "train.activation_checkpointing, or pick a smaller model"
        )
    full = params * BYTES_PER_PARAM["full"] / GiB + per_sample
    if gpu and full < budget:
        notes.append(f"full fine-tuning would also fit (~{full:.0f} GiB at batch 1)")
    if method and method not in _supported_methods():
        notes.append(f"train.method={method} is not in this version yet; use a smaller model")
    if gpu and facts.vllm:
        notes.append("vLLM is installed: use it for fast generation at evaluation time")
    if gpu and facts.flash_attn and bf16:
        notes.append("flash-attention is installed: long sequences train with less memory")
    if facts.disk_free_gib < 5:
        notes.append(f"only {facts.disk_free_gib:.1f} GiB free disk: checkpoints may not fit")
    flags = ""
    if method in _supported_methods():
        flags = f"--set model.dtype={dtype} --set train.per_device_train_batch_size={batch}"
        if method != "lora":
            flags = f"--set train.method={method} " + flags
    return Advice(device, dtype, method, batch, need, notes, flags)


def as_json(facts: Facts, advice: Advice) -> str:
    return json.dumps({"facts": asdict(facts), "advice": asdict(advice)}, indent=2)


def table(facts: Facts, shape: ModelShape, advice: Advice, max_length: int) -> Table:
    """One rich table: the facts, then (below a rule) what they mean for training."""

    t = Table(title="repotune doctor", show_lines=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("this machine")
    t.add_column("means", style="dim")
    cuda = facts.cuda or "none (CPU build)"
    t.add_row("python / torch", f"{facts.python} / {facts.torch or 'not installed'}", "")
    t.add_row("CUDA", cuda, "GPU training" if facts.gpus else "CPU training only")
    if facts.gpus:
        for i, g in enumerate(facts.gpus):
            t.add_row(f"GPU {i}", g.name, f"{g.free_gib:.1f} of {g.total_gib:.1f} GiB free")
    else:
        t.add_row("GPU memory", "no GPU", f"RAM: {facts.ram_available_gib:.1f} of "
                  f"{facts.ram_total_gib:.1f} GiB available, {facts.cpu_cores} cores")  # fmt: skip
    bf16 = any(g.bf16 for g in facts.gpus) if facts.gpus else facts.cpu_bf16
    t.add_row("bfloat16", "native" if bf16 else "no", "half the memory of float32" if bf16
              else "float32 (bfloat16 would be emulated, slower)")  # fmt: skip
    t.add_row("bitsandbytes", facts.bitsandbytes or "not installed",
              "QLoRA (4-bit) possible" if facts.bitsandbytes else "no QLoRA")  # fmt: skip
    fast = facts.vllm and facts.gpus
    t.add_row("vLLM", facts.vllm or "not installed",
              "fast generation" if fast else "transformers generation")  # fmt: skip
    flash = facts.flash_attn and facts.gpus
    t.add_row("flash attention", facts.flash_attn or "not installed",
              "flash_attention_2" if flash else "PyTorch SDPA")  # fmt: skip
    t.add_row("free disk", f"{facts.disk_free_gib:.1f} GiB", "runs/, checkpoints, adapters")
    models = ", ".join(facts.cached_models) or "empty"
    t.add_row("model cache", f"{facts.cache_dir} ({facts.cache_gib:.2f} GiB)", models)
    t.add_section()
    size = f"{shape.params / 1e6:,.0f}M parameters" if shape.params else "size unknown"
    t.add_row("model", shape.name, f"{size}, max_length {max_length}")
    t.add_row("→ method", advice.method or "does not fit", f"on {advice.device}, {advice.dtype}")
    t.add_row("→ batch size", str(advice.batch_size or "–"),
              f"~{advice.memory_gib:.1f} GiB while training" if advice.method else "")  # fmt: skip
    if advice.flags:
        t.add_row("→ flags", advice.flags, "")
    for note in advice.notes:
        t.add_row("→ note", note, "")
    return t
