"""Load a tokenizer and a causal LM (optionally with a PEFT adapter) the same way in every stage.

Names go through `resolve_model` first, so "gemma-3-270m", a local folder or a hub id all work.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from repotune.errors import UserError
from repotune.models.registry import resolve_model

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
# /proc/cpuinfo flags that mean bfloat16 matmuls run natively (x86: AVX512-BF16 / AMX; Arm: BF16).
_CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def pick_dtype(requested: str) -> torch.dtype:
    """Resolve "auto" to bfloat16 only where the hardware runs it natively.

    Emulated bfloat16 is slower than float32, so without native support float32 wins.
    """
    if requested != "auto":
        if requested not in _DTYPES:
            raise UserError(f"unknown dtype: {requested} (expected auto, {', '.join(_DTYPES)})")
        return _DTYPES[requested]
    if torch.cuda.is_available():
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Read the CPU flags once; non-Linux systems (no /proc/cpuinfo) count as no."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return cpuinfo_has_bf16(text)


def cpuinfo_has_bf16(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and _CPU_BF16_FLAGS & set(value.split()):
            return True
    return False


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(name_or_path: str):
    """The model's tokenizer with a pad token, so batched encoding works for every caller.

    Padding side is left as the tokenizer ships it: training wants right, generation left.
    """
    from transformers import AutoTokenizer

    source = resolve_model(name_or_path)
    tokenizer = _from_pretrained(AutoTokenizer, source)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name_or_path: str, dtype: str = "auto", adapter: str | None = None, merge: bool = False
):
    """An eval-mode causal LM on the best device, with a PEFT adapter attached if given.

    `merge`: fold the adapter into the weights (in float32, then cast to `dtype`, as
    `repotune merge` does) for inference: one matmul per layer instead of three, so
    generation runs at the base model's speed (bench/complete_speed.py)."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(name_or_path)
    dev = device()
    load_dtype = torch.float32 if merge and adapter is not None else pick_dtype(dtype)
    model = _from_pretrained(AutoModelForCausalLM, source, dtype=load_dtype, device_map=dev.type)
    if adapter is not None:
        model = _attach_adapter(model, adapter)
        if merge:
            model = model.merge_and_unload().to(pick_dtype(dtype))
    _contiguous_head_input(model)
    return model.eval()


def _contiguous_head_input(model) -> None:
    """Hand the output layer a contiguous input. With `logits_to_keep=1` (every generate
    prefill) it gets a strided slice of the hidden states, and under a PEFT adapter torch then
    multiplies through a batched copy of the 262k x 640 weight per row: a prefill of 8 x 256
    tokens took 7.8 s with the adapter instead of 1.4 s (measured on the embedded Gemma)."""
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]))


def _attach_adapter(model, adapter: str):
    from peft import PeftModel

    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise UserError(
            f"adapter not found: {adapter} (expected a folder with adapter_config.json)"
        )
    return PeftModel.from_pretrained(model, str(path.resolve()), is_trainable=False)


def _from_pretrained(cls, source: str, **kwargs):
    """Call `cls.from_pretrained`, turning "can't reach or find it" into a one-line UserError."""
    try:
        return cls.from_pretrained(source, **kwargs)
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not load {source}: {first_line}") from None
