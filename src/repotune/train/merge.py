"""Merge: fold a LoRA/DoRA adapter into its base model and write a plain HF folder.

The result loads with `from_pretrained` anywhere (vLLM, TGI, llama.cpp's converter) with no
PEFT at inference. The merge runs in float32 whatever the adapter was trained in, so the
merged weights are W + scale * B @ A without rounding in between; only the final save casts
to the requested dtype. A QLoRA adapter merges into the full-precision base (its 4-bit base is
a quantization of it), the usual practice: the merged model is then not quantized.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from repotune.errors import UserError
from repotune.fsutil import replace_dir
from repotune.models.registry import resolve_model

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def run_merge(model: str, adapter: Path, dest: Path, dtype: str = "auto") -> Path:
    """Write base `model` + `adapter` merged to `dest` (safetensors + tokenizer); returns it.

    dtype "auto" keeps the dtype the base model was saved in.
    """
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(
            f"adapter not found: {adapter} (expected a folder with adapter_config.json)"
        )
    if dtype != "auto" and dtype not in _DTYPES:
        raise UserError(f"unknown dtype: {dtype} (expected auto, {', '.join(_DTYPES)})")
    source = resolve_model(model)
    if Path(source) == Path(dest).resolve():  # model.name = this run's RUN/merged
        raise UserError(f"the merged model would overwrite its own base {source}: pass --dest")
    saved = getattr(AutoConfig.from_pretrained(source), "dtype", None)
    saved = _DTYPES.get(saved) if isinstance(saved, str) else saved
    base = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    target = _DTYPES.get(dtype) or saved or torch.float32
    merged = merged.to(target)

    tokenizer_source = adapter if (adapter / "tokenizer_config.json").is_file() else source
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))  # safetensors, tied weights stored once
    tokenizer.save_pretrained(str(tmp))
    replace_dir(tmp, dest)
    return dest
