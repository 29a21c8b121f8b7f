"""The `explain` task: code units of the current tree, explained by a teacher model.

Distillation: the student learns to explain this codebase's functions the way a stronger model
(behind any OpenAI-compatible endpoint, or a local one) does. Units are functions where a
grammar finds them and blank-line blocks elsewhere, between `min_lines` and `max_lines` long;
`max_units` caps the cost (a seeded sample, so a rebuild asks for the same units and hits
the cache).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from repotune.build.teacher import AnswerCache, ask_all, default_cache_dir, make_teacher
from repotune.code.functions import code_units, split_lines
from repotune.code.languages import PROSE
from repotune.code.tree import Snapshot
from repotune.config import BuildConfig

PROMPT_TEMPLATE = """### Instruction:
Explain this code.

### File: {path}
### Code:
{code}
### Explanation:
"""
TEACHER_SYSTEM = "You are a senior engineer explaining code from your team's repository."


def select_units(snapshot: Snapshot, cfg: BuildConfig, dropped: Counter[str]) -> list[dict]:
    """The units to explain: path, language, line span, code."""
    ec = cfg.explain
    units = []
    for file in snapshot.files:
        if file.language is None or file.language in PROSE:
            continue  # code units only: prose and unknown files are not explained
        lines = split_lines(file.text)
        for span in code_units(file.text, file.language):
            size = span.end - span.start + 1
            if not ec.min_lines <= size <= ec.max_lines:
                continue
            code = "\n".join(lines[span.start : span.end + 1]) + "\n"
            units.append({"file": file, "span": span, "code": code, "name": span.name or "block"})
    if len(units) > ec.max_units:
        dropped["over_max_units"] += len(units) - ec.max_units
        units = random.Random(cfg.seed).sample(units, ec.max_units)
        units.sort(key=lambda u: (u["file"].path, u["span"].start))
    return units


def teacher_messages(unit: dict, instruction: str) -> list[dict[str, str]]:
    file = unit["file"]
    fence = file.language or ""
    user = f"{instruction}\n\nFile: {file.path}\n```{fence}\n{unit['code']}```"
    return [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": user}]


def explain_examples(
    snapshot: Snapshot, cfg: BuildConfig, dropped: Counter[str], say: Callable[[str], None]
) -> list[dict]:
    """Rows for every unit the teacher answered; asks only for answers not in the cache."""
    units = select_units(snapshot, cfg, dropped)
    if not units:
        return []
    teacher = make_teacher(cfg.explain)
    cache = AnswerCache(
        default_cache_dir() if cfg.explain.cache_dir is None else cfg.explain.cache_dir
    )
    requests = [teacher_messages(u, cfg.explain.instruction) for u in units]
    answers = ask_all(teacher, requests, cache, cfg.explain, say)
    rows = []
    for unit, answer in zip(units, answers, strict=True):
        if answer is None:
            dropped["teacher_gave_no_answer"] += 1
            continue
        file, span = unit["file"], unit["span"]
        rows.append(
            {
                "id": f"{snapshot.sha[:12]}:{file.path}:{span.start + 1}",
                "task": "explain",
                "prompt": PROMPT_TEMPLATE.format(path=file.path, code=unit["code"]),
                "completion": answer.strip() + "\n",
                "meta": {
                    "sha": snapshot.sha,
                    "path": file.path,
                    "time": snapshot.time,
                    "language": file.language,
                    "function": span.name,
                    "lines": [span.start, span.end],
                    "teacher": teacher.model,
                },
            }
        )
    return rows
