"""Tables more than one stage draws. Stages may not import each other, so a table that
`evaluate` writes (eval/bugs/table.md) and `report` shows again lives here, drawn once.
"""

from __future__ import annotations

from collections.abc import Sequence

LABEL_INTRO = "Per label: plausible bugs / the label's bugs, plausible@1."


def label_table(by_label: dict[str, dict[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-label bug table: a label, its bug count, then per model
    "plausible bugs/bugs" (with the count after feedback turns when higher) and plausible@1.
    `by_label`: model -> label -> the summary `evaluate.repair_eval.label_summaries` writes;
    a field missing (an entry from an older run) shows as "–"."""
    models = list(by_label)
    labels = sorted({label for per in by_label.values() for label in per})
    rows = []
    for label in labels:
        n = next((per[label].get("n_bugs") for per in by_label.values() if label in per), None)
        cells = [label, "–" if n is None else str(n)]
        for model in models:
            s = by_label[model].get(label)
            if s is None:
                cells.append("–")
                continue
            fixed, later = s.get("plausible_bugs", 0), s.get("plausible_after_turns", 0)
            turns = f" ({later} after turns)" if later != fixed else ""
            p1 = s.get("plausible@1")
            score = f", {p1:.3f}" if isinstance(p1, int | float) else ""
            cells.append(f"{fixed}/{s.get('n_bugs', '–')}{turns}{score}")
        rows.append(cells)
    return ["label", "bugs", *models], rows


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines: header, separator, one line per row."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]
