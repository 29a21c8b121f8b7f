"""`repotune merge`: the merged folder's logits equal adapter-on-base within 1e-3 (float32)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner


def make_adapter(tiny_model: str, dest: Path, dora: bool = False) -> None:
    """A LoRA (or DoRA) adapter with random, non-zero B, so merging changes every target."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, use_dora=dora
    )
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), cfg).save_pretrained(dest)


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_merged_logits_equal_adapter_on_base(tmp_path, tiny_model, dora):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from repotune.cli import app

    run = tmp_path / "run"
    make_adapter(tiny_model, run / "adapter", dora=dora)
    res = CliRunner().invoke(
        app, ["merge", "--out", str(run), "--set", f"model.name={tiny_model}", "--dtype", "float32"]
    )
    assert res.exit_code == 0, res.output
    merged_dir = run / "merged"
    assert (merged_dir / "model.safetensors").is_file() and (
        merged_dir / "tokenizer.json"
    ).is_file()
    assert not list(merged_dir.glob("adapter_*"))  # a plain model: no PEFT needed to load it

    ids = torch.randint(5, 500, (2, 40), generator=torch.Generator().manual_seed(1))
    on_base = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), run / "adapter"
    )
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        expected = on_base.eval()(input_ids=ids).logits
        got = merged.eval()(input_ids=ids).logits
        untouched = base.eval()(input_ids=ids).logits
    assert merged.dtype == torch.float32
    assert (got - expected).abs().max() < 1e-3
    assert (untouched - expected).abs().max() > 1e-2  # the adapter did change the model


def test_merge_without_adapter_says_so(tmp_path, tiny_model):
    from repotune.cli import app

    res = CliRunner().invoke(
        app, ["merge", "--out", str(tmp_path), "--set", f"model.name={tiny_model}"]
    )
    assert res.exit_code != 0 and "adapter not found" in str(res.exception)
