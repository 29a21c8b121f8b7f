"""Model names resolve to loadable sources; models and adapters load the same way everywhere."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from repotune.errors import UserError
from repotune.models import load, registry
from repotune.models.load import load_model, load_tokenizer, pick_dtype
from repotune.models.registry import EMBEDDED_DEFAULT, cache_dir, resolve_model


@pytest.fixture
def isolated_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPOTUNE_CACHE", str(cache))
    return cache


@pytest.fixture
def fake_conversion(monkeypatch: pytest.MonkeyPatch, tiny_model: str) -> list[Path]:
    """Replace the minute-long GGUF conversion by a copy of the tiny model; records each call."""
    calls: list[Path] = []

    def convert(gguf_dir: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        shutil.copytree(tiny_model, out_dir)

    monkeypatch.setattr(registry, "_convert_embedded_gguf", convert)
    return calls


# --- resolve_model -------------------------------------------------------------------------


def test_cache_dir_honours_env(isolated_cache: Path) -> None:
    assert cache_dir() == isolated_cache


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPOTUNE_CACHE", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "repotune"


def test_local_folder_resolves_to_absolute_path(
    tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = Path(tiny_model)
    monkeypatch.chdir(folder.parent)
    assert resolve_model(folder.name) == str(folder.resolve())


@pytest.mark.parametrize("name", ["./no-such-model", "/no/such/model", "a/b/c", "just-a-name"])
def test_unknown_name_is_user_error(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=f"model not found: {name} "):
        resolve_model(name)


def test_folder_without_config_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="without config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_passes_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model("google/gemma-3-270m") == "google/gemma-3-270m"


def test_embedded_default_builds_once_into_cache(
    isolated_cache: Path, fake_conversion: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first = resolve_model(EMBEDDED_DEFAULT)
    second = resolve_model(EMBEDDED_DEFAULT)

    target = isolated_cache / "models" / EMBEDDED_DEFAULT
    assert first == second == str(target)
    assert len(fake_conversion) == 1
    assert (target / "model.safetensors").is_file()
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert capsys.readouterr().err.count("preparing the embedded default model") == 1


def test_concurrent_first_uses_build_once(
    isolated_cache: Path, fake_conversion: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = registry._convert_embedded_gguf

    def slow_convert(gguf_dir: Path, out_dir: Path) -> None:
        time.sleep(0.5)  # long enough for the other thread to reach the lock
        copy(gguf_dir, out_dir)

    monkeypatch.setattr(registry, "_convert_embedded_gguf", slow_convert)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: resolve_model(EMBEDDED_DEFAULT), range(2)))
    assert results[0] == results[1]
    assert len(fake_conversion) == 1


def test_failed_build_leaves_nothing_behind(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(gguf_dir: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(registry, "_convert_embedded_gguf", crash)
    with pytest.raises(RuntimeError):
        resolve_model(EMBEDDED_DEFAULT)
    models = isolated_cache / "models"
    assert sorted(p.name for p in models.iterdir()) == [f".{EMBEDDED_DEFAULT}.lock"]


def test_stale_and_incomplete_builds_are_replaced(
    isolated_cache: Path, fake_conversion: list[Path]
) -> None:
    models = isolated_cache / "models"
    (models / f".{EMBEDDED_DEFAULT}.abc123.tmp").mkdir(parents=True)  # a killed build
    (models / EMBEDDED_DEFAULT).mkdir()  # emptied by hand
    resolve_model(EMBEDDED_DEFAULT)
    assert len(fake_conversion) == 1
    assert (models / EMBEDDED_DEFAULT / "model.safetensors").is_file()
    assert not (models / f".{EMBEDDED_DEFAULT}.abc123.tmp").exists()


# --- pick_dtype ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)],
)
def test_pick_dtype_explicit(name: str, dtype: torch.dtype) -> None:
    assert pick_dtype(name) == dtype


def test_pick_dtype_unknown_is_user_error() -> None:
    with pytest.raises(UserError, match="unknown dtype"):
        pick_dtype("int3")


@pytest.mark.parametrize(("native", "dtype"), [(True, torch.bfloat16), (False, torch.float32)])
def test_pick_dtype_auto_on_cpu(
    native: bool, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(load, "cpu_has_native_bf16", lambda: native)
    assert pick_dtype("auto") == dtype


def test_cpuinfo_flags() -> None:
    assert load.cpuinfo_has_bf16("flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert load.cpuinfo_has_bf16("Features\t: fp asimd bf16 i8mm\n")
    assert not load.cpuinfo_has_bf16("flags\t\t: fpu sse avx2 avx512f\n")


# --- load_tokenizer / load_model -----------------------------------------------------------


def test_load_tokenizer_has_pad_and_fim_tokens(tiny_model: str) -> None:
    tokenizer = load_tokenizer(tiny_model)
    assert tokenizer.pad_token == "<pad>"
    assert tokenizer.eos_token == "<eos>"
    ids = tokenizer("<fim_prefix>x<fim_suffix>", add_special_tokens=False).input_ids
    assert tokenizer.convert_ids_to_tokens(ids)[0] == "<fim_prefix>"


def test_load_tokenizer_falls_back_to_eos_for_pad(tiny_model: str, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_model, tmp_path / "nopad"))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    del config["pad_token"]
    config_path.write_text(json.dumps(config))
    assert load_tokenizer(str(folder)).pad_token == "<eos>"


def test_load_model_runs_a_forward_pass(tiny_model: str) -> None:
    tokenizer = load_tokenizer(tiny_model)
    model = load_model(tiny_model, dtype="float32")
    assert not model.training
    assert model.dtype == torch.float32
    batch = tokenizer(["def add(a, b):", "x"], return_tensors="pt", padding=True).to(model.device)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch.input_ids.shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


def test_load_model_in_bfloat16(tiny_model: str) -> None:
    assert load_model(tiny_model, dtype="bfloat16").dtype == torch.bfloat16


def test_load_missing_model_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="model not found"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="model not found"):
        load_tokenizer(str(tmp_path / "nope"))


def test_uncached_hub_id_offline_is_user_error() -> None:
    with pytest.raises(UserError, match="could not load nobody-here/no-such-model"):
        load_tokenizer("nobody-here/no-such-model")


def _save_perturbed_adapter(base: str, out_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero, i.e. a no-op adapter
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(str(out_dir))


def test_load_model_with_adapter_changes_logits(tiny_model: str, tmp_path: Path) -> None:
    from peft import PeftModel

    adapter = tmp_path / "adapter"
    _save_perturbed_adapter(tiny_model, adapter)
    tokenizer = load_tokenizer(tiny_model)
    base = load_model(tiny_model, dtype="float32")
    tuned = load_model(tiny_model, dtype="float32", adapter=str(adapter))
    assert isinstance(tuned, PeftModel)
    assert not tuned.training
    batch = tokenizer("def fibonacci(n):", return_tensors="pt").to(base.device)
    with torch.no_grad():
        difference = (tuned(**batch).logits - base(**batch).logits).abs().max().item()
    assert difference > 1e-3


def test_missing_adapter_is_user_error(tiny_model: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="adapter not found"):
        load_model(tiny_model, adapter=str(tmp_path / "no-adapter"))
