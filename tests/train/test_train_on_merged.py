"""Training on top of a merged earlier run (`model.name=RUN/merged`): the labelled-fix-set
experiment's two stages, labels hidden then shown, the second continuing from the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from repotune.build import run_build
from repotune.config import BuildConfig, ModelConfig, RepairTaskConfig, TrainConfig
from repotune.errors import UserError


def _fixes(path: Path) -> Path:
    """Eight labelled one-line fixes, Python and C, as a fix set's JSONL."""
    rows = []
    for i in range(4):
        py = f"def f{i}(x):\n    y = x * {i}\n    return y - 1\n"
        c = f"int g{i}(int x)\n{{\n\treturn x + {i};\n}}\n"
        rows.append({"path": f"p{i}.py", "before": py, "after": py.replace("- 1", "+ 1"),
                     "label": "CWE-682"})  # fmt: skip
        rows.append({"path": f"c{i}.c", "before": c, "after": c.replace(" + ", " - "),
                     "label": "CWE-191"})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _stage(run: Path, fixes: Path, base: str, method: str, show: bool) -> dict:
    from repotune.train.sft import run_train

    repair = RepairTaskConfig(
        external=[str(fixes)], external_split="train", show_label=show,
        max_input_tokens=None, max_output_tokens=None,
    )  # fmt: skip
    run_build(run, BuildConfig(tasks=["repair"], repair=repair))
    cfg = TrainConfig(
        method=method, max_steps=2, per_device_train_batch_size=4, max_length=96, save_steps=2,
        logging_steps=1,
        learning_rate=5e-3, report_to=[], progress=False, save_minutes=None,
    )  # fmt: skip
    dtype = "bfloat16" if method == "qlora" else "float32"
    return run_train(run, ModelConfig(name=base, dtype=dtype), cfg, ["repair"])


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_second_run_trains_on_the_first_runs_merged_model(tmp_path, tiny_model, method):
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from repotune.train.merge import run_merge

    fixes = _fixes(tmp_path / "fixes.jsonl")
    first, second = tmp_path / "hidden", tmp_path / "shown"
    _stage(first, fixes, tiny_model, "lora", show=False)
    merged = run_merge(tiny_model, first / "adapter", first / "merged", "float32")

    s = _stage(second, fixes, str(merged), method, show=True)
    assert s["steps"] == 2 and s["model"] == str(merged)
    prompt = json.loads((second / "datasets" / "repair" / "train.jsonl").open().readline())
    assert "label: CWE-" in prompt["prompt"]
    adapter = json.loads((second / "adapter" / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == merged.resolve()

    # The adapter loads on the merged first model (what evaluate and serve do) and changes it.
    ids = torch.randint(5, 500, (1, 24), generator=torch.Generator().manual_seed(0))
    base = AutoModelForCausalLM.from_pretrained(merged).eval()
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, str(second / "adapter")).eval()
        after = tuned(input_ids=ids).logits
    assert torch.isfinite(after).all() and (after - before).abs().max() > 1e-4


def test_a_run_cannot_continue_into_its_own_merged_folder(tmp_path, tiny_model):
    """`model.name=RUN/merged` with the same RUN: merging (or full training) would overwrite
    the base it reads, so both stop with one line before loading anything."""
    import shutil

    from repotune.train.merge import run_merge
    from repotune.train.sft import run_train

    run = tmp_path / "run"
    repair = RepairTaskConfig(
        external=[str(_fixes(tmp_path / "fixes.jsonl"))], external_split="train",
        max_input_tokens=None, max_output_tokens=None,
    )  # fmt: skip
    run_build(run, BuildConfig(tasks=["repair"], repair=repair))
    merged = Path(shutil.copytree(tiny_model, run / "merged"))  # stands in for a merge
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(UserError, match="would overwrite its own base"):
        run_merge(str(merged), run / "adapter", run / "merged")
    with pytest.raises(UserError, match="which this run writes"):
        run_train(run, ModelConfig(name=str(merged)), TrainConfig(method="full"), ["repair"])
