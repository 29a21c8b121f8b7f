"""`repotune doctor`: the facts table on this machine, and advice for machines we don't have."""

from __future__ import annotations

import json
import subprocess
import sys

from repotune.doctor import Facts, Gpu, ModelShape, advise, model_shape

SEVEN_B = ModelShape("llama-7b", 6.7e9, layers=32, hidden=4096, vocab=32_000)
GEMMA_270M = ModelShape("gemma-3-270m", 268e6, layers=18, hidden=640, vocab=262_144)


def _facts(gpus=(), ram=24.0, bnb="0.50.0", cpu_bf16=True) -> Facts:
    return Facts(
        python="3.11", torch="2.13.0", cuda="12.8" if gpus else None, gpus=list(gpus),
        cpu_cores=16, cpu_bf16=cpu_bf16, ram_total_gib=ram, ram_available_gib=ram,
        bitsandbytes=bnb, vllm=None, flash_attn=None, disk_free_gib=100.0,
        cache_dir="/tmp/cache", cache_gib=0.0,
    )  # fmt: skip


def test_big_gpu_trains_a_7b_lora_in_bf16():
    a = advise(_facts([Gpu("H100", 80, 79, True)]), SEVEN_B, max_length=1024)
    assert (a.method, a.dtype) == ("lora", "bfloat16")
    assert a.batch_size >= 4 and a.memory_gib < 79
    assert "train.per_device_train_batch_size=" in a.flags


def test_small_gpu_falls_back_to_qlora_and_says_so_without_bitsandbytes():
    a = advise(_facts([Gpu("RTX 3060", 12, 11.5, True)]), SEVEN_B, max_length=512)
    assert a.method == "qlora" and a.batch_size >= 1 and a.memory_gib < 11.5
    none = advise(_facts([Gpu("RTX 3060", 12, 11.5, True)], bnb=None), SEVEN_B, max_length=512)
    assert none.method is None and any("nothing fits" in n for n in none.notes)


def test_cpu_batch_size_follows_ram_and_dtype():
    roomy = advise(_facts(ram=24.0), GEMMA_270M, max_length=512)
    tight = advise(_facts(ram=3.0), GEMMA_270M, max_length=512)
    bf16 = advise(_facts(ram=4.0), GEMMA_270M, max_length=512)
    f32 = advise(_facts(ram=4.0, cpu_bf16=False), GEMMA_270M, max_length=512)
    assert roomy.device == "cpu" and roomy.method == "lora"
    assert roomy.batch_size == 4  # capped: a CPU gains nothing from bigger batches
    assert roomy.batch_size > tight.batch_size >= 1
    assert f32.dtype == "float32" and f32.batch_size < bf16.batch_size
    assert any("CPU" in n for n in roomy.notes)


def test_model_shape_reads_safetensors_headers(tiny_model):
    from transformers import AutoModelForCausalLM

    shape = model_shape(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert shape.params == model.num_parameters()
    assert (shape.layers, shape.hidden) == (2, 64)


def test_doctor_command_prints_one_table(tiny_model):
    cmd = [sys.executable, "-m", "repotune.cli", "doctor", "--model", tiny_model]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = ["python / torch", "CUDA", "bfloat16", "bitsandbytes", "vLLM", "flash attention",
            "free disk", "model cache", "→ method", "→ batch size"]  # fmt: skip
    for row in rows:
        assert row in res.stdout, row
    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    data = json.loads(res.stdout)
    assert data["facts"]["torch"] and data["advice"]["batch_size"] >= 1


def test_doctor_help_has_an_example():
    from typer.testing import CliRunner

    from repotune.cli import app

    for command in ("doctor", "report"):
        res = CliRunner().invoke(app, [command, "--help"])
        assert res.exit_code == 0 and f"Example: repotune {command}" in res.output
