"""The per-label bug table: one function (repotune.tables) draws it for eval/bugs/table.md and
for the report, so both show the same cells; pinned to the text both drew before they shared
it."""

from __future__ import annotations

from repotune.evaluate.bugtable import by_label_markdown
from repotune.report.execution import Benchmark
from repotune.report.markdown import _benchmark

BY_LABEL = {
    "base": {
        "CWE-193": {"n_bugs": 3, "plausible_bugs": 1, "plausible_after_turns": 1,
                    "plausible@1": 0.25},
        "CWE-476": {"n_bugs": 2, "plausible_bugs": 0, "plausible_after_turns": 1,
                    "plausible@1": None},
    },
    "tuned": {
        "CWE-193": {"n_bugs": 3, "plausible_bugs": 2, "plausible_after_turns": 3,
                    "plausible@1": 2 / 3},
        "(no label)": {"n_bugs": 1, "plausible_bugs": 1, "plausible_after_turns": 1,
                       "plausible@1": 1.0},
    },
}  # fmt: skip
TABLE = [
    "| label | bugs | base | tuned |",
    "|---|---|---|---|",
    "| (no label) | 1 | – | 1/1, 1.000 |",
    "| CWE-193 | 3 | 1/3, 0.250 | 2/3 (3 after turns), 0.667 |",
    "| CWE-476 | 2 | 0/2 (1 after turns) | – |",
]
INTRO = "Per label: plausible bugs / the label's bugs, plausible@1."


def test_evaluate_and_report_draw_the_same_label_table():
    assert by_label_markdown(BY_LABEL) == "\n".join([INTRO, "", *TABLE]) + "\n"
    bench = Benchmark("bugs", "bug repair", "bugs", 5, {"base": {}, "tuned": {}}, None, [],
                      by_label=BY_LABEL)  # fmt: skip
    lines = _benchmark(bench)
    start = lines.index(INTRO)
    assert lines[start : start + 2 + len(TABLE)] == [INTRO, "", *TABLE]
