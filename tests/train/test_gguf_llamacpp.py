"""The exported GGUF run in llama.cpp itself (llama-cpp-python, compiled from its source
distribution: `make llamacpp-check`) gives transformers' greedy tokens on the merged model.

The llama.cpp tests skip where `llama_cpp` is not installed (CI does not compile it); the
measurement on a real tuned model is bench/gguf_llamacpp.py, written down in docs/train.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.test_export import _export
from tests.train.test_merge import make_adapter

# Code, a commit-style line and the tiny model's own FIM sentinels around a hole.
PROMPTS = [
    "def add(a, b):\n",
    "class Stack:\n    def push(self, item):",
    "int main(int argc",
    "fix: handle empty input in parser\n\n",
    "<fim_prefix>def f(x):\n<fim_suffix>\n    return y\n<fim_middle>",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model) -> Path:
    run = tmp_path_factory.mktemp("llamacpp-run")
    make_adapter(tiny_model, run / "adapter")
    return run


def test_gguf_says_which_layers_slide(run_dir, tiny_model):
    """llama.cpp assumes Gemma 3's pattern (every 6th layer global, local RoPE base 10000)
    unless the file says otherwise; the tiny model's second layer is global, so the file says
    so. Without it llama.cpp ran that layer as a local one: greedy tokens agreed on 85% of
    steps, logits differed by 0.21."""
    import gguf

    path = _export(run_dir, tiny_model, "f32")
    fields = gguf.GGUFReader(str(path)).fields
    assert fields["gemma3.attention.sliding_window_pattern"].contents() == [True, False]
    assert "gemma3.rope.freq_base_swa" not in fields  # the tiny model's local base is 10000


@pytest.mark.llamacpp
def test_llama_cpp_runs_the_f32_gguf_as_transformers(run_dir, tiny_model):
    pytest.importorskip("llama_cpp")
    from repotune.train.gguf_check import compare

    path = _export(run_dir, tiny_model, "f32")
    found = compare(path, run_dir / "merged", PROMPTS, max_new_tokens=24, kv_f32=True)
    summary = found.summary()
    assert summary["tokens_compared"] >= 24 * len(PROMPTS) - 10  # EOS may come early
    assert summary["share_identical"] == 1.0 and summary["first_divergence"] is None
    assert summary["max_logit_diff"] < 2e-3  # float32 on both sides
    assert summary["tokenizer_same"] == len(PROMPTS)  # llama.cpp tokenizes the text alike


@pytest.mark.llamacpp
def test_llama_cpp_on_the_f16_gguf_differs_only_at_near_ties(run_dir, tiny_model):
    """As a user runs it: an f16 file and llama.cpp's default f16 KV cache. The random tiny
    model's logits are nearly flat, so rounding may swap two tokens whose logits tie within
    it, and nothing else."""
    pytest.importorskip("llama_cpp")
    from repotune.train.gguf_check import compare

    path = _export(run_dir, tiny_model, "f16")
    found = compare(path, run_dir / "merged", PROMPTS, max_new_tokens=24)
    summary = found.summary()
    assert summary["share_identical"] >= 0.9 and summary["max_logit_diff"] < 0.02
    for check in found.prompts:
        if check.first_divergence is not None:
            assert check.margin < 2 * check.max_logit_diff
