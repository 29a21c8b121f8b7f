"""Numbers behind a build: examples per task and split, length percentiles, what was dropped
and why. Written to datasets/stats.json; `stats_tables` renders them for `build --stats`."""

from __future__ import annotations

import math
from typing import Any

from repotune.build.split import SPLITS


def percentiles(values: list[int]) -> dict[str, int] | None:
    """Nearest-rank p50/p90/p99 and the maximum; None for no values."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(p: float) -> int:
        return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": ordered[-1]}


def length_stats(splits: dict[str, list[dict]], tokenizer: Any | None = None) -> dict[str, Any]:
    """Prompt and completion lengths over all splits, in characters and, given a tokenizer, in
    its tokens (what train.max_length cuts)."""
    rows = [r for name in SPLITS for r in splits.get(name, [])]
    out: dict[str, Any] = {
        "prompt_chars": percentiles([len(r["prompt"]) for r in rows]),
        "completion_chars": percentiles([len(r["completion"]) for r in rows]),
    }
    if tokenizer is not None and rows:
        for field in ("prompt", "completion"):
            ids = tokenizer([r[field] for r in rows], add_special_tokens=False)["input_ids"]
            out[f"{field}_tokens"] = percentiles([len(x) for x in ids])
    return out


def stats_tables(stats: dict[str, Any]) -> Any:
    """A rich renderable: one row per task (examples per split, lengths, drop reasons)."""
    from rich.table import Table

    table = Table(title="datasets", show_lines=False)
    for col in ("task", *SPLITS, "leaks dropped", "prompt p50/p90/max", "completion p50/p90/max"):
        table.add_column(col, justify="left" if col == "task" else "right")
    notes = []
    for task, s in stats.items():
        lengths = s.get("lengths", {})
        unit = "tokens" if "prompt_tokens" in lengths else "chars"

        def fmt(p: dict | None) -> str:
            return "-" if not p else f"{p['p50']}/{p['p90']}/{p['max']}"

        table.add_row(
            task,
            *(str(s["examples"].get(name, 0)) for name in SPLITS),
            str(sum(s.get("dropped_as_leaks", {}).values())),
            fmt(lengths.get(f"prompt_{unit}")) + f" {unit}",
            fmt(lengths.get(f"completion_{unit}")) + f" {unit}",
        )
        dropped = s.get("dropped") or {}
        if dropped:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items(), key=lambda x: -x[1]))
            notes.append(f"{task} dropped: {reasons}")
    if notes:
        table.caption = "\n".join(notes)
    return table
