import json

from repotune.fsutil import write_jsonl
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
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text(
        json.dumps({"model": "tiny", "tasks": {"commit": {"base": m, "tuned": t}}})
    )
    write_jsonl(tmp_path / "eval" / "commit" / "base.jsonl", _rows([2.0] * 30))
    write_jsonl(tmp_path / "eval" / "commit" / "tuned.jsonl", _rows([1.0] * 30))
    text = run_report(tmp_path).read_text()
    assert "tuned wins" in text
    assert "| tuned | 1.000 | 2.72 | 0.250 |" in text
