"""Export: a merged HF model as one GGUF file for llama.cpp / Ollama, written with `gguf`.

Gemma 3 (the embedded default and its family) is written natively, the way llama.cpp's own
`convert_hf_to_gguf.py` writes it: the same tensor names and hyperparameter keys, RMSNorm
weights stored as 1 + w (Gemma computes x * (1 + w), llama.cpp x * w), no separate output
matrix (tied to the embeddings), 1-D tensors in float32. The vocabulary comes from a template
GGUF where there is one (the embedded default ships as GGUF, so its exact tokenizer metadata is
copied) or from tokenizer.json for byte-level BPE tokenizers. Any other architecture goes
through llama.cpp's converter when given one (`--converter`). Either way the file is read back
with gguf.GGUFReader and checked before the path is returned, and an Ollama Modelfile with the
model's prompt template and stop tokens is written next to it (train/modelfile.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from repotune.errors import UserError
from repotune.fsutil import atomic_path
from repotune.train.modelfile import write_modelfile

OUTTYPES = ("f32", "f16", "bf16", "q8_0")
_NATIVE = {"gemma3_text", "gemma3"}


def run_export(
    model_dir: Path,
    dest: Path,
    outtype: str = "f16",
    template: Path | None = None,
    converter: Path | None = None,
    name: str | None = None,
) -> dict:
    """Write `model_dir` (a merged HF folder) as GGUF to `dest`, and a Modelfile beside it;
    returns what was read back. `name` is the model name in the file's metadata (default: the
    folder's name)."""
    model_dir, dest = Path(model_dir), Path(dest)
    if outtype not in OUTTYPES:
        raise UserError(f"unknown GGUF type {outtype} (expected {', '.join(OUTTYPES)})")
    config = json.loads((model_dir / "config.json").read_text())
    config = config.get("text_config", config)
    if converter is None and config.get("model_type") not in _NATIVE:
        raise UserError(
            f"GGUF export writes Gemma 3 models itself; for {config.get('model_type')} pass "
            "--converter PATH/convert_hf_to_gguf.py (llama.cpp; also in the llama-cpp-python "
            "source distribution)"
        )
    # Written and read back under a temp name: a killed export leaves no truncated model for
    # llama.cpp or Ollama to load.
    with atomic_path(dest) as tmp:
        if converter is not None:
            _run_converter(Path(converter), model_dir, tmp, outtype)
        else:
            _write_gemma3(model_dir, config, tmp, outtype, template, name or model_dir.name)
        info = read_back(tmp)
    modelfile = write_modelfile(dest, model_dir)
    return {**info, "path": str(dest), "modelfile": modelfile}


def read_back(path: Path) -> dict:
    """Open the file with gguf's reader: architecture, tensor count, the types written."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()
    names = [t.name for t in reader.tensors]
    if not names or "token_embd.weight" not in names:
        raise UserError(f"{path}: GGUF written but it has no token embeddings")
    return {
        "path": str(path),
        "architecture": arch,
        "tensors": len(names),
        "types": sorted({t.tensor_type.name for t in reader.tensors}),
        "bytes": path.stat().st_size,
    }


def _run_converter(script: Path, model_dir: Path, dest: Path, outtype: str) -> None:
    if not script.is_file():
        raise UserError(f"converter not found: {script}")
    cmd = [sys.executable, str(script), str(model_dir), "--outfile", str(dest),
           "--outtype", outtype]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{script.name} failed: {last}")


def _write_gemma3(
    model_dir: Path, config: dict, dest: Path, outtype: str, template: Path | None, name: str
) -> None:
    import gguf
    from safetensors import safe_open

    arch = gguf.MODEL_ARCH.GEMMA3
    n_layers = config["num_hidden_layers"]
    names = gguf.get_tensor_name_map(arch, n_layers)
    writer = gguf.GGUFWriter(str(dest), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name)
    n_vocab = _metadata(writer, model_dir, config, template, outtype)

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise UserError(f"no safetensors weights in {model_dir}: run `repotune merge` first")
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for hf_name in f.keys():
                if hf_name == "lm_head.weight":  # tied to token_embd in llama.cpp's Gemma 3
                    continue
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise UserError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
                data = f.get_tensor(hf_name).float().numpy()
                if "embed_tokens" in hf_name:
                    data = data[:n_vocab]  # llama.cpp drops rows past the real vocabulary
                if hf_name.endswith("norm.weight"):
                    data = data + 1.0
                _add_tensor(writer, name, data, outtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_tensor(writer, name: str, data: np.ndarray, outtype: str) -> None:
    import gguf

    qtype = {
        "f32": gguf.GGMLQuantizationType.F32,
        "f16": gguf.GGMLQuantizationType.F16,
        "bf16": gguf.GGMLQuantizationType.BF16,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
    }[outtype]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if data.ndim < 2 or data.shape[-1] % block:
        qtype = gguf.GGMLQuantizationType.F32  # norms and odd shapes stay exact, as llama.cpp does
    if qtype == gguf.GGMLQuantizationType.F32:
        writer.add_tensor(name, data.astype(np.float32))
    elif qtype == gguf.GGMLQuantizationType.F16:
        writer.add_tensor(name, data.astype(np.float16))
    else:
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def _metadata(writer, model_dir: Path, config: dict, template: Path | None, outtype: str) -> int:
    """Hyperparameters and vocabulary; returns the vocabulary size."""
    import gguf

    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[outtype]
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    head_dim = config.get("head_dim", 256)
    rope = config.get("rope_parameters") or {}
    theta = rope.get("full_attention", rope).get("rope_theta", config.get("rope_theta", 1e6))
    writer.add_context_length(config.get("max_position_embeddings", 131072))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config.get("num_attention_heads", 8))
    writer.add_head_count_kv(config.get("num_key_value_heads", 4))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(theta)
    if config.get("sliding_window"):
        writer.add_sliding_window(config["sliding_window"])
        _local_attention(writer, config, rope)
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])
    if template is not None:
        return _vocab_from_template(writer, template)
    return _vocab_from_tokenizer_json(writer, model_dir)


def _local_attention(writer, config: dict, rope: dict) -> None:
    """Which layers slide and their RoPE base, where they differ from what llama.cpp assumes
    for Gemma 3 (every 6th layer global, local base 10000; the converter writes neither key,
    and the real models follow it). A model that does not would otherwise run differently in
    llama.cpp, which reads these keys (Ollama's own engine may not)."""
    types = config.get("layer_types") or []
    swa = [t == "sliding_attention" for t in types]
    if swa and swa != [i % 6 < 5 for i in range(len(swa))]:
        writer.add_sliding_window_pattern(swa)
    local = rope.get("sliding_attention", {}).get("rope_theta")
    local = local or config.get("rope_local_base_freq", 10000.0)
    if local != 10000.0:
        writer.add_rope_freq_base_swa(local)


def _vocab_from_template(writer, template: Path) -> int:
    """Copy every tokenizer.* key of a GGUF of the same base model (exact llama.cpp vocab)."""
    import gguf

    reader = gguf.GGUFReader(str(template))
    n_vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        main = field.types[0]
        sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        writer.add_key_value(key, value, main, sub_type=sub)
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    return n_vocab


def _vocab_from_tokenizer_json(writer, model_dir: Path) -> int:
    """A byte-level BPE tokenizer as llama.cpp's "gpt2" vocabulary (tokens, types, merges)."""
    import gguf
    from transformers import AutoTokenizer

    path = model_dir / "tokenizer.json"
    spec = json.loads(path.read_text()) if path.is_file() else {}
    model = spec.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise UserError(
            f"GGUF export: {model_dir} has no byte-level BPE tokenizer.json to convert; export "
            "from the embedded default, or pass --converter (llama.cpp's convert_hf_to_gguf.py)"
        )
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    size = max([*model["vocab"].values(), *added]) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, i in model["vocab"].items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    for token_id, add in (
        (tok.bos_token_id, writer.add_bos_token_id),
        (tok.eos_token_id, writer.add_eos_token_id),
        (tok.pad_token_id, writer.add_pad_token_id),
        (tok.unk_token_id, writer.add_unk_token_id),
    ):
        if token_id is not None:
            add(token_id)
    first = tok("a")["input_ids"][:1]
    writer.add_add_bos_token(bool(first) and first[0] == tok.bos_token_id)
    return size
