"""Smoke test of the real embedded default: the one test that runs actual Gemma 3 270M weights.

It uses the real cache (~/.cache/repotune, or $REPOTUNE_CACHE), so only the first run on a
machine pays the about-a-minute conversion; later runs load the cached folder in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repotune.models.load import load_model, load_tokenizer
from repotune.models.registry import EMBEDDED_DEFAULT, resolve_model


@pytest.mark.slow
def test_embedded_default_generates_code() -> None:
    folder = Path(resolve_model(EMBEDDED_DEFAULT))
    assert (folder / "model.safetensors").is_file()

    tokenizer = load_tokenizer(str(folder))
    model = load_model(str(folder))
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<eos>", "<pad>")

    prompt = tokenizer("def fibonacci(n):", return_tensors="pt").to(model.device)
    with torch.no_grad():
        output = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    new_text = tokenizer.decode(output[0, prompt.input_ids.shape[1] :], skip_special_tokens=True)
    assert new_text.strip()


@pytest.mark.slow
def test_embedded_default_trains_a_few_steps(tmp_path: Path) -> None:
    """The real model through the real train stage: an adapter comes out and loads."""
    import json

    from repotune.config import ModelConfig, TrainConfig
    from repotune.fsutil import write_jsonl
    from repotune.train.sft import run_train

    rows = [
        {
            "id": str(i),
            "task": "commit",
            "prompt": f"### Instruction:\nAdd {i}\n### Diff:\n",
            "completion": f"-x = {i}\n+x = {i + 1}\n",
            "meta": {},
        }
        for i in range(4)
    ]
    for split in ("train", "val", "test"):
        write_jsonl(tmp_path / "datasets" / "commit" / f"{split}.jsonl", rows)
    cfg = TrainConfig(
        max_steps=2, per_device_train_batch_size=2, max_length=64, save_steps=1, logging_steps=1
    )
    summary = run_train(tmp_path, ModelConfig(), cfg, ["commit"])
    assert summary["steps"] == 2
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA"
    model = load_model(EMBEDDED_DEFAULT, adapter=str(tmp_path / "adapter"))
    assert type(model).__name__.startswith("PeftModel")
