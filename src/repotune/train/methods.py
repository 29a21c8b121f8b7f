"""Training methods: how the base model is loaded and which of its weights train.

    lora       frozen base in the run's dtype, low-rank adapters on the target modules
    dora       the same with weight-decomposed adapters (DoRA: magnitude + direction)
    qlora      frozen base in 4-bit NF4 with double quantisation, bfloat16 compute (QLoRA)
    lora-8bit  frozen base in LLM.int8 (bitsandbytes), adapters as in lora
    full       every weight trains; float32 master weights, mixed-precision compute

Where a method cannot run on this machine, `check_supported` says why and what to use in one
line, before anything slow happens.
"""

from __future__ import annotations

import importlib.util

import torch

from repotune.config import TrainConfig
from repotune.errors import UserError

QUANTIZED = {"qlora", "lora-8bit"}


def check_supported(cfg: TrainConfig, dtype: torch.dtype, on_gpu: bool) -> None:
    if cfg.method in QUANTIZED and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(
            f"train.method={cfg.method} needs bitsandbytes, which is not installed: "
            "pip install 'repotune[qlora]', or use train.method=lora"
        )
    if dtype == torch.float16 and not on_gpu:
        raise UserError(
            "float16 mixed precision needs a GPU; on the CPU set model.dtype=bfloat16 (where the "
            "CPU has native bfloat16) or float32"
        )


def load_base(model_path: str, cfg: TrainConfig, dtype: torch.dtype, device: torch.device):
    """The base model, quantized or not as the method needs, ready for the Trainer."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict = {"dtype": dtype}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.method == "full" and dtype != torch.float32:
        # Optimizer updates are far below bfloat16's resolution for most weights: keep float32
        # master weights and let autocast run the matmuls in `dtype`.
        kwargs["dtype"] = torch.float32
    if cfg.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    elif cfg.method == "lora-8bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if cfg.method in QUANTIZED:
        # Quantized weights are placed at load time; the Trainer cannot move them later.
        kwargs["device_map"] = {"": str(device)}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not load {model_path}: {first}") from None
    model.config.use_cache = False  # no KV cache while training; packed batches need none
    return model


def peft_config(cfg: TrainConfig, model, trainable_tokens: list[int] | None = None):
    """The PEFT config for adapter methods; None for full fine-tuning."""
    if cfg.method == "full":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target_modules(cfg.target_modules, model),
        use_dora=cfg.method == "dora",
        task_type="CAUSAL_LM",
        trainable_token_indices=trainable_tokens or None,
    )


def target_modules(choice: str | list[str], model) -> str | list[str]:
    """Resolve a preset: all-linear (PEFT's own), attention (every linear layer inside an
    attention block), qv (the query and value projections the LoRA paper adapted)."""
    if choice == "attention":
        names = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear)
                and any(part in ("attn", "self_attn", "attention") for part in name.split("."))
            }
        )
        if not names:
            raise UserError("train.target_modules=attention: no linear layers in attention blocks")
        return names
    if choice == "qv":
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

        model_type = model.config.model_type
        if model_type not in known:
            raise UserError(
                f"train.target_modules=qv: no known query/value names for {model_type}; "
                "list the module names instead"
            )
        return list(known[model_type])
    return choice
