"""`evaluate` of the `complete` task on the tiny model: base, tuned and each with retrieval
answer the same built targets, stopped at the end of the line or block, and the summary
compares them pairwise."""

from __future__ import annotations

import json

import pytest

from repotune.build import run_build
from repotune.config import BuildConfig, EvaluateConfig, MineConfig, ModelConfig
from repotune.evaluate.completion import COMPARISONS, retrieval_sample
from repotune.evaluate.run import run_evaluate
from repotune.mine import run_mine
from repotune.rundir import load_split
from tests.build.test_complete_task import make_repo
from tests.train.test_merge import make_adapter

LABELS = ("base", "tuned", "base+retrieval", "tuned+retrieval")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model):
    """A run folder with a built `complete` dataset and a random LoRA adapter, evaluated."""
    root = tmp_path_factory.mktemp("eval-complete")
    run = root / "run"
    run_mine(make_repo(root / "repo"), run, MineConfig(dedup="off", max_changed_lines=None))
    run_build(run, BuildConfig(tasks=["complete"]), model=tiny_model, say=lambda _: None)
    make_adapter(tiny_model, run / "adapter")
    cfg = EvaluateConfig(complete_examples=5, retrieval_examples=3, max_new_tokens=12)
    model = ModelConfig(name=tiny_model, dtype="float32")
    summary = run_evaluate(run, model, cfg, 256, tasks=["complete"])
    per_row = {
        label: [json.loads(line) for line in open(run / "eval" / "complete" / f"{label}.jsonl")]
        for label in LABELS
    }
    return run, summary, per_row


def test_four_rows_on_the_same_targets(evaluated):
    run, summary, per_row = evaluated
    test = {r["id"]: r for r in load_split(run, "complete", "test")}
    assert len(test) > 5  # so complete_examples=5 is a cap that bites
    base_ids = [r["id"] for r in per_row["base"]]
    assert base_ids == [r["id"] for r in per_row["tuned"]] and len(base_ids) == 5
    assert set(base_ids) <= set(test)
    ret_ids = [r["id"] for r in per_row["base+retrieval"]]
    assert ret_ids == [r["id"] for r in per_row["tuned+retrieval"]]
    assert len(ret_ids) == 3 and set(ret_ids) <= set(base_ids)  # evaluate.retrieval_examples
    result = summary["tasks"]["complete"]
    assert [result[label]["n"] for label in LABELS] == [5, 5, 3, 3]
    for label in LABELS:
        for r in per_row[label]:
            # stopped after as many lines as the target has
            assert r["generation"].count("\n") <= max(test[r["id"]]["completion"].count("\n"), 1)
            assert isinstance(r["exact_match"], bool) and 0 <= r["edit_similarity"] <= 1
        em = sum(r["exact_match"] for r in per_row[label]) / len(per_row[label])
        assert result[label]["exact_match"] == pytest.approx(em)
    # the adapter is not the identity: tuned scores the targets differently
    assert [r["nll"] for r in per_row["base"]] != [r["nll"] for r in per_row["tuned"]]
    on_disk = json.loads((run / "eval" / "summary.json").read_text())
    assert set(on_disk["tasks"]["complete"]) == {*LABELS, "comparisons"}


def test_comparisons_pair_the_rows(evaluated):
    _, summary, per_row = evaluated
    comps = summary["tasks"]["complete"]["comparisons"]
    assert set(comps) == {f"{second} vs {first}" for second, first in COMPARISONS}
    for second, first in COMPARISONS:
        c = comps[f"{second} vs {first}"]
        assert 0.0 <= c["mcnemar_p"] <= 1.0
        assert c["lo"] <= c["diff"] <= c["hi"]
        by_id = {r["id"]: r["exact_match"] for r in per_row[first]}
        pairs = [(by_id[r["id"]], r["exact_match"]) for r in per_row[second] if r["id"] in by_id]
        assert c["n"] == len(pairs) == (5 if "retrieval" not in first + second else 3)
        assert c["second_only"] == sum(b and not a for a, b in pairs)
        assert c["first_only"] == sum(a and not b for a, b in pairs)


def test_retrieval_rows_are_a_sample_spread_over_commits():
    rows = [{"id": f"a:{i}", "meta": {"sha": "a", "retrieval_prompt": "x"}} for i in range(6)]
    rows += [{"id": "b:0", "meta": {"sha": "b", "retrieval_prompt": "x"}}]
    rows += [{"id": "c:0", "meta": {"sha": "c"}}]  # no snippets: never picked
    rows += [{"id": "d:0", "meta": {"sha": "d", "retrieval_prompt": "x"}}]
    picked = retrieval_sample(rows, 3)
    assert picked == sorted(picked) and len(picked) == 3
    assert {rows[i]["meta"]["sha"] for i in picked} == {"a", "b", "d"}  # not the first three
    assert retrieval_sample(rows, 3) == picked  # seeded
    assert retrieval_sample(rows, 50) == [0, 1, 2, 3, 4, 5, 6, 8]
    assert retrieval_sample(rows, 0) == []


def test_the_base_answers_only_rows_that_changed_since_the_last_evaluation(
    evaluated, tmp_path, tiny_model, monkeypatch
):
    """A refresh moves the window a few commits: the base model (which never changes) keeps
    its answers to the rows that stayed, and answers the new ones; the tuned model answers all."""
    import shutil

    import repotune.evaluate.completion as completion
    import repotune.evaluate.run as evaluate_run
    from repotune.fsutil import read_jsonl, write_jsonl
    from repotune.rundir import split_path

    run = tmp_path / "run"
    shutil.copytree(evaluated[0], run)
    before = {r["id"]: r for r in read_jsonl(run / "eval" / "complete" / "base.jsonl")}
    changed = next(iter(before))
    test = load_split(run, "complete", "test")
    for row in test:
        if row["id"] == changed:
            row["prompt"] += "# edited\n"  # the row as a rebuild wrote it
    write_jsonl(split_path(run, "complete", "test"), test)

    loads, answered = [], []
    real_load, real_answers = evaluate_run.load_model, completion._answers
    monkeypatch.setattr(
        evaluate_run,
        "load_model",
        lambda p, **kw: loads.append(kw["adapter"]) or real_load(p, **kw),
    )
    monkeypatch.setattr(
        completion,
        "_answers",
        lambda m, t, prompts, *a: answered.append(len(prompts)) or real_answers(m, t, prompts, *a),
    )
    cfg = EvaluateConfig(
        complete_examples=5, retrieval_examples=3, max_new_tokens=12, reuse_base=True
    )
    model = ModelConfig(name=tiny_model, dtype="float32")
    said = []
    run_evaluate(run, model, cfg, 256, tasks=["complete"], say=said.append)
    assert answered == [1, 5, 3]  # base: the edited row only; tuned: every row, with snippets
    after = {r["id"]: r for r in read_jsonl(run / "eval" / "complete" / "base.jsonl")}
    assert after.keys() == before.keys()
    assert after[changed]["key"] != before[changed]["key"]
    for i in before.keys() - {changed}:
        assert after[i] == before[i]
    assert any("base: 4 of 5 answers kept" in line for line in said), said

    loads.clear(), answered.clear()
    run_evaluate(run, model, cfg, 256, tasks=["complete"])  # nothing changed
    assert len(loads) == 1 and loads[0] is not None  # the tuned model alone is loaded
    assert answered == [5, 3]
    assert read_jsonl(run / "eval" / "complete" / "base.jsonl") == list(after.values())

    answered.clear()
    no_reuse = EvaluateConfig(
        complete_examples=5, retrieval_examples=3, max_new_tokens=12, reuse_base=False
    )
    run_evaluate(run, model, no_reuse, 256, tasks=["complete"])
    assert answered == [5, 3, 5, 3]
