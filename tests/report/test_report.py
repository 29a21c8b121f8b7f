import json
from dataclasses import replace

import pytest

from repotune.fsutil import write_jsonl
from repotune.report.collect import collect
from repotune.report.effects import decide
from repotune.report.markdown import loss_ratio_ci, run_report


def _rows(nlls):
    return [{"id": str(i), "nll": v, "tokens": 10} for i, v in enumerate(nlls)]


def test_ratio_ci_brackets_the_ratio_and_detects_a_clear_win():
    base = _rows([10.0 + i % 3 for i in range(40)])
    tuned = _rows([5.0 + i % 2 for i in range(40)])
    r, lo, hi = loss_ratio_ci(base, tuned)
    assert lo <= r <= hi < 1.0


def test_ratio_ci_straddles_one_when_noisy():
    base = _rows([10, 1, 10, 1, 10, 1])
    tuned = _rows([1, 10, 1, 10, 1, 10.5])
    _, lo, hi = loss_ratio_ci(base, tuned)
    assert lo < 1.0 < hi


def _loss_halved_run(run, base: dict, tuned: dict) -> None:
    """A `commit` evaluation of 30 rows where the tuned loss is half the base's."""
    (run / "eval").mkdir()
    (run / "eval" / "summary.json").write_text(
        json.dumps({"model": "tiny", "tasks": {"commit": {"base": base, "tuned": tuned}}})
    )
    write_jsonl(run / "eval" / "commit" / "base.jsonl", _rows([2.0] * 30))
    write_jsonl(run / "eval" / "commit" / "tuned.jsonl", _rows([1.0] * 30))


def test_report_renders_verdict_and_table(tmp_path):
    m = {
        "loss": 2.0,
        "perplexity": 7.39,
        "exact_match": 0.0,
        "edit_similarity": 0.4,
        "n": 30,
        "n_generated": 4,
    }
    t = {**m, "loss": 1.0, "perplexity": 2.72, "exact_match": 0.25}
    _loss_halved_run(tmp_path, m, t)
    text = run_report(tmp_path).read_text()
    assert "tuned wins" in text
    assert "| tuned | 1.000 | 2.72 | 0.250 |" in text


# The `complete` task as evaluate writes it (evaluate/completion.py): base and tuned rows over
# every target, retrieval rows over a sub-sample, and each comparison from evaluate.paired.
COMPARED = (
    ("tuned", "base"),
    ("base+retrieval", "base"),
    ("tuned", "base+retrieval"),
    ("tuned+retrieval", "base+retrieval"),
    ("tuned+retrieval", "tuned"),
)


def _completion_run(run, hits, tasks=None, sim=None):
    """A run folder whose `complete` rows get right the targets `hits[row]` marks; rows with
    fewer marks than base answer the first targets only (a retrieval sub-sample). Edit
    similarity is 1 for a hit, 0.5 otherwise, or `sim` on every row."""
    from repotune.evaluate.paired import compare

    section, per_row = {}, {}
    for key, marks in hits.items():
        rows = [
            {"id": f"t{i}", "generation": "x", "exact_match": hit,
             "edit_similarity": sim or (1.0 if hit else 0.5)}
            for i, hit in enumerate(marks)
        ]  # fmt: skip
        if "+" not in key:
            rows = [{**r, "nll": 5.0, "tokens": 5} for r in rows]
        write_jsonl(run / "eval" / "complete" / f"{key}.jsonl", rows)
        per_row[key] = rows
        section[key] = {
            "exact_match": sum(marks) / len(marks),
            "edit_similarity": sum(r["edit_similarity"] for r in rows) / len(rows),
            "n_generated": len(rows),
            "decoding": "greedy, to the end of the line or block",
            "n": len(rows),
        }
        if "+" not in key:
            section[key].update(loss=1.0, perplexity=2.72, tokens=5 * len(rows))
    section["comparisons"] = {}
    for second, first in COMPARED:
        if second in per_row and first in per_row:
            shared = [(a["exact_match"], b["exact_match"])
                      for a, b in zip(per_row[first], per_row[second])]  # fmt: skip
            section["comparisons"][f"{second} vs {first}"] = compare(
                [a for a, _ in shared], [b for _, b in shared]
            )
    (run / "eval").mkdir(parents=True, exist_ok=True)
    summary = {"model": "m", "tasks": {**(tasks or {}), "complete": section}}
    (run / "eval" / "summary.json").write_text(json.dumps(summary))
    return run


def _commit_task(run, n=30, base_sim=0.5, tuned_sim=0.5):
    """A `commit` task whose rows have equal loss and exact match, and the given whole-hunk
    edit similarities."""
    m = {"loss": 1.0, "perplexity": 2.72, "exact_match": 0.0, "n": n, "n_generated": n}
    for model, sim in (("base", base_sim), ("tuned", tuned_sim)):
        rows = [{"id": str(i), "nll": 5.0, "tokens": 5, "generation": "-a\n+a\n",
                 "exact_match": False, "edit_similarity": sim + 0.01 * (i % 3)}
                for i in range(n)]  # fmt: skip
        write_jsonl(run / "eval" / "commit" / f"{model}.jsonl", rows)
    return {model: {**m, "edit_similarity": sim}
            for model, sim in (("base", base_sim), ("tuned", tuned_sim))}  # fmt: skip


def test_completion_table_and_comparisons_lead_the_report(tmp_path):
    n = 40
    hits = {
        "base": [i < 8 for i in range(n)],  # 8 of 40
        "tuned": [i < 8 or 20 <= i < 34 for i in range(n)],  # 22 of 40: 14 vs 0 discordant
        "base+retrieval": [i < 10 for i in range(20)],  # the first 20 targets only
        "tuned+retrieval": [i < 12 for i in range(20)],
    }
    commit = _commit_task(tmp_path)
    run = _completion_run(tmp_path, hits, tasks={"commit": commit})
    text = run_report(run).read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## Verdict", "## Completion (`complete`)", "## Task `complete`"]
    assert text.index("## Completion") < text.index("## Task `commit`")
    # one row per model row, in the order evaluate names them
    assert "| base | 0.200 | 0.600 | 40 |\n| base + retrieval | 0.500 | 0.750 | 20 |\n" in text
    assert "| tuned | 0.550 | 0.775 | 40 |\n| tuned + retrieval | 0.600 | 0.800 | 20 |" in text
    assert "Retrieval rows: 20 of the 40" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| tuned vs base |"))
    assert "| 0.550 vs 0.200 | +0.350 |" in row and "| 14 vs 0 | < 0.001 | 40 | tuned |" in row
    assert "| base + retrieval vs base | 0.500 vs 0.400 |" in text  # on the 20 both answered
    # the verdict names completion first, though the summary lists `commit` first
    assert "`complete`" in text.split("\n\n")[2].split("`commit`")[0]
    line = next(ln for ln in text.splitlines() if ln.startswith("- `complete`:"))
    assert line.startswith(
        "- `complete`: **tuned wins** on exact match: 0.550 vs 0.200 (+0.350, 95% CI +0."
    )
    assert "; McNemar p < 0.001, 14 vs 0 discordant, 40 targets)" in line
    assert "beats the tuned model" not in text  # 10 vs 4 on the shared 20: retrieval loses


def test_retrieval_beating_the_tuned_model_is_said_plainly(tmp_path):
    n = 40
    hits = {
        "base": [i < 8 for i in range(n)],
        "tuned": [i < 10 for i in range(n)],
        "base+retrieval": [i < 30 for i in range(n)],  # right on 20 targets tuned misses
    }
    run = _completion_run(tmp_path, hits)
    report = collect(run)
    versus = report.completion.comparisons["tuned vs base+retrieval"]
    assert versus["mcnemar_p"] < 0.05 and versus["diff"] < 0
    assert "base + retrieval beats the tuned model on completion" in report.verdict
    text = run_report(run, report).read_text()
    section = text.split("## Completion (`complete`)")[1].split("\n## ")[0]
    assert "base + retrieval beats the tuned model on completion" in section
    assert "20 vs 0 discordant, 40 targets" in section
    assert "Retrieval rows:" not in text  # every target answered with retrieval
    assert "| tuned + retrieval |" not in text  # a row that was not evaluated is not shown


def test_edit_similarity_alone_does_not_win_a_diff_task(tmp_path):
    """Copying the input scores high on whole-hunk edit similarity: on a diff task it is
    shown but does not vote, so a gain there alone is no win."""
    commit = _commit_task(tmp_path, base_sim=0.5, tuned_sim=0.8)
    (tmp_path / "eval" / "summary.json").write_text(
        json.dumps({"model": "m", "tasks": {"commit": commit}})
    )
    report = collect(tmp_path)
    (task,) = report.tasks
    sim = next(m for m in task.metrics if m.name == "edit similarity")
    # the test could fail: the interval favours tuned, and under the old rule (every metric
    # votes) that alone made the task a tuned win
    assert sim.winner == "tuned" and not sim.votes
    assert decide(replace(m, votes=True) for m in task.metrics) == "tuned"
    assert task.winner is None
    assert not report.verdict.startswith("Ship")
    text = run_report(tmp_path, report).read_text()
    assert "tuned wins" not in text
    assert "| edit similarity | +0.300 |" in text and "tuned (does not vote) |" in text


def test_mcnemar_decides_completion_exact_match(tmp_path):
    def run(name, tuned_only, base_only):
        n = 100
        base = [i < 20 or 60 <= i < 60 + base_only for i in range(n)]
        tuned = [i < 20 or 40 <= i < 40 + tuned_only for i in range(n)]
        hits = {"base": base, "tuned": tuned}
        report = collect(_completion_run(tmp_path / name, hits, sim=0.6))
        (task,) = report.tasks
        return task, next(m for m in task.metrics if m.name == "exact match")

    # 5 vs 0 discordant: every resample favours tuned, but McNemar's p = 2/32 = 0.0625
    task, em = run("five", 5, 0)
    assert em.lo > 0 and em.mcnemar_p == pytest.approx(0.0625)
    assert em.winner is None and task.winner is None  # the interval alone would say tuned
    assert replace(em, mcnemar_p=None).winner == "tuned"
    # 12 vs 2: p = 0.013
    task, em = run("twelve", 12, 2)
    assert em.mcnemar_p < 0.05 and em.winner == "tuned" and task.winner == "tuned"
    # a significant loss goes to the base model
    task, em = run("loss", 1, 11)
    assert em.mcnemar_p < 0.05 and task.winner == "base"


def test_loss_only_task_says_no_generations(tmp_path):
    m = {"loss": 2.0, "perplexity": 7.39, "n": 30, "n_generated": 0}
    t = {**m, "loss": 1.0, "perplexity": 2.72}
    _loss_halved_run(tmp_path, m, t)
    text = run_report(tmp_path).read_text()
    assert "30 test examples); no generations." in text
    assert "on 0 generations" not in text


def test_bug_sections_from_separate_runs_keep_every_model(tmp_path):
    """`evaluate --bugs -m base` then `-m tuned`: the second run once replaced the section, so
    base vanished and no pair was left to compare. Both stay, per model and per bug."""
    from repotune.rundir import update_section

    bugs = [f"b{i}" for i in range(12)]

    def section(model: str, fixed: int) -> dict:
        return {
            "manifest": "bugs.yaml",
            "n_bugs": len(bugs),
            "models": {model: {"plausible@1": fixed / len(bugs), "n_bugs": len(bugs)}},
            "per_bug": {
                b: {"models": {model: {"n": 1, "c": int(i < fixed), "fixed_turn": None}}}
                for i, b in enumerate(bugs)
            },
        }

    update_section(tmp_path, "bugs", section("base", 1))
    update_section(tmp_path, "bugs", section("tuned", 11))
    update_section(tmp_path, "humaneval", {"n_problems": 1, "models": {"x": {"pass@1": 1.0}}})
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert set(summary["bugs"]["models"]) == {"base", "tuned"}
    assert summary["bugs"]["per_bug"]["b5"]["models"] == {
        "base": {"n": 1, "c": 0, "fixed_turn": None},
        "tuned": {"n": 1, "c": 1, "fixed_turn": None},
    }
    update_section(tmp_path, "bugs", section("tuned", 12))  # a re-run replaces its own entry
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["bugs"]["models"]["tuned"]["plausible@1"] == 1.0
    assert summary["bugs"]["models"]["base"]["plausible@1"] == pytest.approx(1 / 12)
    (bench, _) = collect(tmp_path).benchmarks
    assert bench.task == "bugs" and bench.n == 12 and bench.size == "12 bugs"
    assert bench.metrics[0].n == 12 and bench.winner == "tuned"
