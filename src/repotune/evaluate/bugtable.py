"""The per-bug table researchers put in papers, as Markdown (pastes into a paper draft, renders
on GitHub, reads in a terminal)."""

from __future__ import annotations

from collections import Counter, defaultdict

from repotune.sandbox.validate import OUTCOMES
from repotune.tables import LABEL_INTRO, label_table, markdown_table


def per_bug(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """bug id -> model -> {"n", "c" (first-turn test_pass), "outcomes", "fixed_turn"}."""
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        cell = table[row["example_id"]].setdefault(
            row["model"], {"n": 0, "c": 0, "outcomes": Counter(), "fixed_turn": None}
        )
        turn = row.get("turn", 0)
        if turn == 0:
            cell["n"] += 1
            cell["c"] += row["outcome"] == "test_pass"
            cell["outcomes"][row["outcome"]] += 1
        if row["outcome"] == "test_pass" and (
            cell["fixed_turn"] is None or turn < cell["fixed_turn"]
        ):
            cell["fixed_turn"] = turn
    return table


def markdown(
    rows: list[dict],
    bug_ids: list[str],
    models: list[str],
    static: dict[str, dict[str, dict | None]] | None = None,
) -> str:
    """One line per bug; with one model its outcome counts, with several each model's c/n."""
    table = per_bug(rows)
    tools = sorted({t for s in (static or {}).values() for t, r in s.items() if r is not None})
    if len(models) == 1:
        head = ["bug", "n", *OUTCOMES, "plausible"]
    else:
        head = ["bug", *models]
    head += tools
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fixed = Counter()
    flagged = Counter()
    for bug in bug_ids:
        cells = [bug]
        for model in models:
            cell = table.get(bug, {}).get(model)
            if cell is None:
                cells += ["–"] * (len(OUTCOMES) + 2) if len(models) == 1 else ["–"]
                continue
            if cell["fixed_turn"] is not None:
                fixed[model] += 1
            if len(models) == 1:
                cells += [str(cell["n"]), *(str(cell["outcomes"][o]) for o in OUTCOMES)]
                cells.append(_plausible(cell))
            else:
                cells.append(f"{cell['c']}/{cell['n']}" + _later(cell))
        for tool in tools:
            res = (static or {}).get(bug, {}).get(tool)
            cells.append("–" if res is None else ("flagged" if res["flagged"] else "no"))
            flagged[tool] += bool(res and res["flagged"])
        lines.append("| " + " | ".join(cells) + " |")
    total = [f"**{len(bug_ids)} bugs**"]
    if len(models) == 1:
        outs = Counter()
        for bug in bug_ids:
            outs.update(table.get(bug, {}).get(models[0], {}).get("outcomes", Counter()))
        n = sum(outs.values())
        total += [str(n), *(str(outs[o]) for o in OUTCOMES), f"**{fixed[models[0]]}**"]
    else:
        total += [f"**{fixed[m]}** fixed" for m in models]
    total += [f"**{flagged[t]}** flagged" for t in tools]
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines) + "\n"


def _plausible(cell: dict) -> str:
    if cell["c"]:
        return "yes"
    return f"turn {cell['fixed_turn']}" if cell["fixed_turn"] else "no"


def _later(cell: dict) -> str:
    turn = cell["fixed_turn"]
    return f" (turn {turn})" if turn else ""


def by_label_markdown(by_label: dict[str, dict[str, dict]]) -> str:
    """The per-label table (repotune.tables, which the report draws too) with its intro line.
    `by_label`: model -> label -> the summary `repair_eval.label_summaries` writes."""
    return "\n".join([LABEL_INTRO, "", *markdown_table(*label_table(by_label))]) + "\n"
