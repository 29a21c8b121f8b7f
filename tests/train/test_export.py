"""`repotune export --gguf`: a GGUF that gguf's reader and transformers read back unchanged, an
Ollama Modelfile beside it, and `--ollama NAME` installing it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.train.test_merge import make_adapter


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


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, argument) pairs as Ollama's parser reads them: `#` comments, one
    instruction a line, an argument in \"\"\"...\"\"\" spanning lines, or in "..." on one."""
    out, rest = [], text
    while rest:
        line, _, after = rest.partition("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            rest = after
            continue
        command, _, arg = line.strip().partition(" ")
        if arg.startswith('"""'):
            body, sep, rest = rest.split('"""', 1)[1].partition('"""')
            assert sep, "unterminated triple quote"
            out.append((command.upper(), body))
            rest = rest.partition("\n")[2]
            continue
        out.append((command.upper(), arg))
        rest = after
    return out


def test_modelfile_next_to_the_gguf(run_dir, tiny_model):
    from transformers import AutoTokenizer

    path = _export(run_dir, tiny_model, "q8_0")
    parsed = parse_modelfile((path.parent / "Modelfile").read_text())
    fields = dict(parsed)
    assert fields["FROM"] == f"./{path.name}"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert not tokenizer.chat_template  # a base model: the prompt goes in as it is
    # ... and its StarCoder FIM tokens serve editors' suffix requests in PSM order
    assert fields["TEMPLATE"] == (
        "{{ if .Suffix }}<fim_prefix>{{ .Prompt }}<fim_suffix>{{ .Suffix }}<fim_middle>"
        "{{ else }}{{ .Prompt }}{{ end }}"
    )
    params = [arg.split(" ", 1) for cmd, arg in parsed if cmd == "PARAMETER"]
    stops = [value.strip('"') for key, value in params if key == "stop"]
    assert stops == [tokenizer.eos_token]
    assert dict(params)["temperature"] == "0"
    assert dict(params)["num_ctx"] == "512"  # the tiny model's whole context


def test_modelfile_with_a_chat_template(tmp_path, tiny_model):
    """A model whose tokenizer has a chat template gets it as a Go template, its end-of-turn
    token as a stop, and a generation_config EOS list adds its tokens."""
    import json

    from transformers import AutoTokenizer

    from repotune.train.modelfile import write_modelfile
    from tests.train.test_modelfile import GEMMA3, TURN_TOKENS

    model = tmp_path / "model"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.add_tokens(TURN_TOKENS[:2], special_tokens=True)  # Gemma's turn tokens
    tokenizer.chat_template = GEMMA3
    tokenizer.save_pretrained(model)
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 131072}))
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    (model / "generation_config.json").write_text(json.dumps({"eos_token_id": [1, eot]}))
    info = write_modelfile(tmp_path / "m.gguf", model)
    fields = parse_modelfile((tmp_path / "Modelfile").read_text())
    template = dict(fields)["TEMPLATE"]
    assert (
        info["template"] == "chat" and '{{ if eq .Role "user" }}<start_of_turn>user\n' in template
    )
    assert "<start_of_turn>model\n" in template and "<bos>" not in template
    stops = [arg.split(" ", 1)[1].strip('"') for cmd, arg in fields if arg.startswith("stop ")]
    assert stops == ["<eos>", "<end_of_turn>"]
    assert ("PARAMETER", "num_ctx 8192") in fields  # capped: the KV cache is allocated whole


def _fake_ollama(bin_dir: Path, log: Path, code: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "ollama"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" >> {log}\n'
        f'[ {code} -eq 0 ] || echo "Error: could not connect to ollama app" >&2\nexit {code}\n'
    )
    script.chmod(0o755)


def test_ollama_runs_create_where_ollama_is_on_path(run_dir, tiny_model, tmp_path, monkeypatch):
    from repotune.cli import app

    log = tmp_path / "argv.txt"
    _fake_ollama(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    args = ["export", "--ollama", "tiny-coder", "--out", str(run_dir),
            "--set", f"model.name={tiny_model}"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    modelfile = run_dir / "export" / "Modelfile"
    assert log.read_text().split("\n")[:-1] == ["create", "tiny-coder", "-f", str(modelfile)]
    assert "ready: ollama run tiny-coder" in res.output


def test_ollama_commands_are_printed_without_ollama(run_dir, tiny_model, tmp_path, monkeypatch):
    from repotune.cli import app

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no ollama (nor anything else)
    args = ["export", "--ollama", "tiny-coder", "--out", str(run_dir),
            "--set", f"model.name={tiny_model}"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    modelfile = run_dir / "export" / "Modelfile"
    assert f"ollama create tiny-coder -f {modelfile}" in res.output
    assert "ollama run tiny-coder" in res.output


def test_ollama_mistakes_are_one_line(run_dir, tiny_model, tmp_path, monkeypatch, capsys):
    from tests.support.clirun import in_process

    _fake_ollama(tmp_path / "bin", tmp_path / "argv.txt", code=1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    base = ["export", "--out", str(run_dir), "--set", f"model.name={tiny_model}"]
    bad = in_process(monkeypatch, capsys, *base, "--ollama", "no spaces").one_line_error()
    assert "not an Ollama model name" in bad
    assert not (tmp_path / "argv.txt").exists()  # refused before anything ran
    failed = in_process(monkeypatch, capsys, *base, "--ollama", "tiny")  # after the export
    assert failed.code == 2 and failed.lines[-1].startswith("error: `ollama create tiny -f ")
    assert "could not connect to ollama app" in failed.lines[-1]
    assert "ollama serve" in failed.lines[-1]
