import json
import shutil

from repotune.config import EvaluateConfig, ModelConfig
from repotune.evaluate.run import run_evaluate
from repotune.fsutil import write_json, write_jsonl


def _rows(n):
    return [
        {
            "id": str(i),
            "task": "commit",
            "prompt": f"### Instruction:\nBump {i}\n### Diff:\n",
            "completion": f"-x = {i}\n+x = {i + 1}\n",
            "meta": {},
        }
        for i in range(n)
    ]


def test_full_fine_tune_is_evaluated_from_merged_and_other_sections_are_kept(tmp_path, tiny_model):
    write_jsonl(tmp_path / "datasets" / "commit" / "test.jsonl", _rows(5))
    shutil.copytree(tiny_model, tmp_path / "merged")  # same weights as the base
    earlier = {"complete": {"base": {"n": 3}}}  # a task evaluated before: it must stay
    write_json(tmp_path / "eval" / "summary.json", {"bugs": {"plausible": 1}, "tasks": earlier})
    cfg = EvaluateConfig(generate_examples=2, max_new_tokens=4)
    summary = run_evaluate(tmp_path, ModelConfig(name=tiny_model, dtype="float32"), cfg, 128)
    commit = summary["tasks"]["commit"]
    assert commit["base"]["n"] == commit["tuned"]["n"] == 5
    assert abs(commit["base"]["loss"] - commit["tuned"]["loss"]) < 1e-5
    on_disk = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert on_disk["bugs"] == {"plausible": 1} and "commit" in on_disk["tasks"]
    assert on_disk["tasks"]["complete"] == earlier["complete"]


def _diff_rows(n, start=0, context=""):
    from repotune.tasks.commit import PROMPT_TEMPLATE

    rows = []
    for i in range(start, start + n):
        code = f"{context}def f{i}(a):\n    return a\n"
        prompt = PROMPT_TEMPLATE.format(message=f"Double {i}", path="a.py", code=code)
        completion = f" def f{i}(a):\n-    return a\n+    return 2 * a\n"
        rows.append(
            {"id": str(i), "task": "commit", "prompt": prompt, "completion": completion, "meta": {}}
        )
    return rows


def _old_side_kept(text: str, code_lines: list[str]) -> bool:
    lines = text.rstrip("\n").split("\n")
    kept = [ln[1:] for ln in lines if ln[:1] in (" ", "-")]
    return all(ln[:1] in (" ", "-", "+") for ln in lines) and kept == code_lines[: len(kept)]


def test_generations_follow_the_diff_grammar_only_when_it_fits_the_run(tmp_path, tiny_model):
    from repotune.config import BuildConfig

    write_jsonl(tmp_path / "datasets" / "commit" / "train.jsonl", _diff_rows(20, start=100))
    write_jsonl(tmp_path / "datasets" / "commit" / "test.jsonl", _diff_rows(3))
    shutil.copytree(tiny_model, tmp_path / "merged")
    cfg = EvaluateConfig(generate_examples=3, max_new_tokens=24)
    model = ModelConfig(name=tiny_model, dtype="float32")

    def generations(build):
        summary = run_evaluate(tmp_path, model, cfg, 256, build=build)
        rows = [json.loads(ln) for ln in open(tmp_path / "eval" / "commit" / "tuned.jsonl")]
        return summary["tasks"]["commit"]["tuned"]["decoding"], [r["generation"] for r in rows]

    decoding, texts = generations(BuildConfig(input_context=0))
    assert decoding == "greedy, diff grammar"
    for i, text in enumerate(texts):
        assert _old_side_kept(text, [f"def f{i}(a):", "    return a"]), text
    assert generations(BuildConfig(input_context=8))[0] == "greedy"  # prompts not pinned
    no = EvaluateConfig(generate_examples=3, max_new_tokens=24, constrain_diffs=False)
    summary = run_evaluate(tmp_path, model, no, 256, build=BuildConfig(input_context=0))
    assert summary["tasks"]["commit"]["tuned"]["decoding"] == "greedy"
    # Datasets made with context around the hunk, read with a config that says none: the
    # grammar would force a wrong old side, and the training answers show it.
    write_jsonl(
        tmp_path / "datasets" / "commit" / "train.jsonl",
        _diff_rows(20, start=100, context="import os\n"),
    )
    assert generations(BuildConfig(input_context=0))[0] == "greedy"


def test_samples_spread_over_commits():
    from repotune.evaluate.sample import spread_sample

    rows = [{"id": f"big:a.py:{i}", "meta": {"sha": "big"}} for i in range(10)]
    rows += [{"id": "one:b.py:0", "meta": {"sha": "one"}}, {"id": "two:c.py:0"}]  # id only
    picked = spread_sample(rows, 4)
    assert picked == sorted(picked) and len(set(picked)) == 4
    assert {10, 11} <= set(picked)  # each small commit before a second row of the big one
    assert picked == spread_sample(rows, 4)  # fixed: base and tuned see the same rows
    assert spread_sample(rows, 50) == list(range(12))
