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


def _diff_rows(n, start=0, pinned=True):
    """Commit rows as build writes them: with the old side's span in the meta when `pinned`
    (a diff with no context around the hunk), without it otherwise."""
    from repotune.build.commit import PROMPT_TEMPLATE, old_side_span
    from repotune.config import BuildConfig

    rows = []
    for i in range(start, start + n):
        code = f"def f{i}(a):\n    return a\n"
        prompt = PROMPT_TEMPLATE.format(message=f"Double {i}", path="a.py", code=code)
        completion = f" def f{i}(a):\n-    return a\n+    return 2 * a\n"
        span = old_side_span(prompt, BuildConfig(input_context=0)) if pinned else None
        meta = {"old_side": span} if span else {}
        rows.append(
            {
                "id": str(i),
                "task": "commit",
                "prompt": prompt,
                "completion": completion,
                "meta": meta,
            }
        )
    return rows


def _old_side_kept(text: str, code_lines: list[str]) -> bool:
    lines = text.rstrip("\n").split("\n")
    kept = [ln[1:] for ln in lines if ln[:1] in (" ", "-")]
    return all(ln[:1] in (" ", "-", "+") for ln in lines) and kept == code_lines[: len(kept)]


def test_generations_follow_the_diff_grammar_where_build_pinned_the_old_side(tmp_path, tiny_model):
    test = tmp_path / "datasets" / "commit" / "test.jsonl"
    write_jsonl(test, _diff_rows(3))
    shutil.copytree(tiny_model, tmp_path / "merged")
    cfg = EvaluateConfig(generate_examples=3, max_new_tokens=24)
    model = ModelConfig(name=tiny_model, dtype="float32")

    def generations(cfg):
        summary = run_evaluate(tmp_path, model, cfg, 256)
        rows = [json.loads(ln) for ln in open(tmp_path / "eval" / "commit" / "tuned.jsonl")]
        return summary["tasks"]["commit"]["tuned"]["decoding"], [r["generation"] for r in rows]

    decoding, texts = generations(cfg)
    assert decoding == "greedy, diff grammar"
    for i, text in enumerate(texts):
        assert _old_side_kept(text, [f"def f{i}(a):", "    return a"]), text
    no = EvaluateConfig(generate_examples=3, max_new_tokens=24, constrain_diffs=False)
    assert generations(no)[0] == "greedy"
    # Rows without the span (context around the hunk, or built before build recorded it):
    # nothing tells evaluation which lines the answer must keep, so it decodes freely.
    write_jsonl(test, _diff_rows(3, pinned=False))
    assert generations(cfg)[0] == "greedy"


def test_samples_spread_over_commits():
    from repotune.evaluate.sample import spread_sample

    rows = [{"id": f"big:a.py:{i}", "meta": {"sha": "big"}} for i in range(10)]
    rows += [{"id": "one:b.py:0", "meta": {"sha": "one"}}, {"id": "two:c.py:0"}]  # id only
    picked = spread_sample(rows, 4)
    assert picked == sorted(picked) and len(set(picked)) == 4
    assert {10, 11} <= set(picked)  # each small commit before a second row of the big one
    assert picked == spread_sample(rows, 4)  # fixed: base and tuned see the same rows
    assert spread_sample(rows, 50) == list(range(12))


def test_a_window_moved_forward_keeps_most_of_its_sample():
    """A refresh drops the oldest test commits and adds the newest: the rows that stay in the
    window stay in the sample, so their base answers can be kept."""
    from repotune.evaluate.sample import spread_sample

    def window(first, last):
        return [{"id": f"c{c}:a.py:{k}", "meta": {"sha": f"c{c}"}} for c in range(first, last)
                for k in range(2)]  # fmt: skip

    before, after = window(0, 100), window(5, 105)  # 5 commits out, 5 in
    old = {before[i]["id"] for i in spread_sample(before, 40, seed=3)}
    new = {after[i]["id"] for i in spread_sample(after, 40, seed=3)}
    assert len(old & new) >= 32  # a reshuffle keeps about 40 * 40 / 100 = 16


def test_held_out_tasks_keep_the_base_answers_too(tmp_path, tiny_model, monkeypatch):
    import repotune.evaluate.run as evaluate_run

    write_jsonl(tmp_path / "datasets" / "commit" / "test.jsonl", _diff_rows(4))
    shutil.copytree(tiny_model, tmp_path / "merged")
    cfg = EvaluateConfig(generate_examples=2, max_new_tokens=8, reuse_base=True)
    model = ModelConfig(name=tiny_model, dtype="float32")
    first = run_evaluate(tmp_path, model, cfg, 256)["tasks"]["commit"]
    loads = []
    real = evaluate_run.load_model
    monkeypatch.setattr(
        evaluate_run, "load_model", lambda p, **kw: loads.append(p) or real(p, **kw)
    )
    said = []
    again = run_evaluate(tmp_path, model, cfg, 256, say=said.append)["tasks"]["commit"]
    assert loads == [str(tmp_path / "merged")]  # the base was not loaded: nothing changed
    assert said == ["  commit, base: 4 of 4 rows kept from the last run"]
    assert again == first  # the same summary, kept or answered
    assert again["base"]["exact_match"] == first["base"]["exact_match"]
    # answers on all four rows: the two answered before are kept, the base answers the others
    said.clear()
    four = EvaluateConfig(generate_examples=4, max_new_tokens=8, reuse_base=True)
    run_evaluate(tmp_path, model, four, 256, say=said.append)
    assert said == ["  commit, base: 2 of 4 rows kept from the last run"] and len(loads) == 3
