"""`repotune export --gguf`: a GGUF that gguf's reader and transformers read back unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_merge import make_adapter
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model) -> Path:
    run = tmp_path_factory.mktemp("export-run")
    make_adapter(tiny_model, run / "adapter")
    return run


def _export(run: Path, tiny_model: str, outtype: str) -> Path:
    from repotune.cli import app

    args = ["export", "--gguf", "--out", str(run), "--type", outtype,
            "--set", f"model.name={tiny_model}"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    files = list((run / "export").glob(f"*-{outtype}.gguf"))
    assert len(files) == 1
    return files[0]


def test_gguf_reads_back_as_the_merged_model(run_dir, tiny_model):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _export(run_dir, tiny_model, "f32")  # merges RUN/adapter first
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged")
    cfg = merged.config

    reader = gguf.GGUFReader(str(path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("general.architecture") == "gemma3"
    assert field("gemma3.block_count") == cfg.num_hidden_layers
    assert field("gemma3.embedding_length") == cfg.hidden_size
    assert field("gemma3.attention.head_count_kv") == cfg.num_key_value_heads
    assert field("gemma3.attention.sliding_window") == cfg.sliding_window
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokens = field("tokenizer.ggml.tokens")
    assert len(tokens) == len(tokenizer)
    assert tokens[tokenizer.eos_token_id] == "<eos>"
    assert field("tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id

    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors  # tied to token_embd, as llama.cpp expects
    state = merged.state_dict()
    q = np.asarray(tensors["blk.0.attn_q.weight"].data)
    assert np.allclose(q, state["model.layers.0.self_attn.q_proj.weight"].numpy())
    norm = np.asarray(tensors["blk.1.ffn_norm.weight"].data)  # llama.cpp stores 1 + w
    w = state["model.layers.1.pre_feedforward_layernorm.weight"].numpy()
    assert np.allclose(norm, w + 1)

    # transformers' own GGUF loader maps every tensor back to the merged model's. The GGUF
    # format fixes Gemma 3's 5:1 sliding pattern and attention scale, which the tiny model
    # does not follow, so those two come from its config.
    back = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32,
        layer_types=cfg.layer_types, query_pre_attn_scalar=cfg.query_pre_attn_scalar,
    )  # fmt: skip
    ids = torch.randint(5, 500, (1, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (back(input_ids=ids).logits - merged(input_ids=ids).logits).abs().max()
    assert diff < 1e-4


def test_quantized_gguf(run_dir, tiny_model):
    import gguf

    path = _export(run_dir, tiny_model, "q8_0")
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}
    assert types["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["output_norm.weight"] == gguf.GGMLQuantizationType.F32


def test_other_architectures_need_the_converter(tmp_path):
    from repotune.errors import UserError
    from repotune.train.export import run_export

    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="--converter"):
        run_export(tmp_path, tmp_path / "x.gguf")
