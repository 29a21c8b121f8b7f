import json
import shutil

from repotune.config import EvaluateConfig, ModelConfig
from repotune.evaluate.run import run_evaluate
from repotune.fsutil import write_json, write_jsonl


def _rows(n):
    return [
        {"id": str(i), "task": "commit", "prompt": f"### Instruction:\nBump {i}\n### Diff:\n",
         "completion": f"-x = {i}\n+x = {i + 1}\n", "meta": {}}
        for i in range(n)
    ]


def test_full_fine_tune_is_evaluated_from_merged_and_other_sections_are_kept(tmp_path, tiny_model):
    write_jsonl(tmp_path / "datasets" / "commit" / "test.jsonl", _rows(5))
    shutil.copytree(tiny_model, tmp_path / "merged")  # same weights as the base
    write_json(tmp_path / "eval" / "summary.json", {"bugs": {"plausible": 1}})
    cfg = EvaluateConfig(generate_examples=2, max_new_tokens=4)
    summary = run_evaluate(tmp_path, ModelConfig(name=tiny_model, dtype="float32"), cfg, 128)
    commit = summary["tasks"]["commit"]
    assert commit["base"]["n"] == commit["tuned"]["n"] == 5
    assert abs(commit["base"]["loss"] - commit["tuned"]["loss"]) < 1e-5
    on_disk = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert on_disk["bugs"] == {"plausible": 1} and "commit" in on_disk["tasks"]
