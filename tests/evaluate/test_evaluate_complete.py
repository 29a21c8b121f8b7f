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
