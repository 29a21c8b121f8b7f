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
