"""The `repair` task, RepairLLaMA style: IR4 input -> OR2 output.

IR4: the buggy function, where the buggy chunk was a line `<comment> buggy code`, then each
buggy line commented out in the language's own syntax, then `<FILL_ME>` indented like the
first buggy line. OR2: the fixed chunk, the lines that replace the mask. The chunk spans the
first to the last changed line, so with `multi_hunk` several changes in one function collapse
into one chunk; comment-only and blank lines are dropped first (`strip_comments`), as
RepairLLaMA does.

With a label (an external fix's class, such as a CWE) and `show_label`, a line
`<comment> label: CWE-476` goes just above `<comment> buggy code`, so the model reads the class
beside the bug it names; without one the prompt is unchanged.

Examples come from bug-fix commits that change exactly one function, and from external fix
sets (build/fixsets.py).
The format itself (`repair_prompt`, `repair_completion`) is in code/ir4.py, which evaluation by
execution also uses to pose a known bug.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from repotune.build.changes import changed_functions
from repotune.code.functions import split_lines
from repotune.code.ir4 import FILL_ME, repair_completion, repair_prompt
from repotune.code.languages import COMMENT_PREFIX, PROSE, comment_prefix
from repotune.code.parse import has_grammar
from repotune.config import RepairTaskConfig
from repotune.records import Commit, FileChange

__all__ = ["COMMENT_PREFIX", "FILL_ME", "comment_prefix", "repair_examples", "repair_prompt"]


@dataclass(frozen=True)
class Chunk:
    """A buggy function (kept lines) with the buggy chunk [first, last] and the fixed lines."""

    function: list[str]
    first: int
    last: int
    fixed: list[str]


def fix_chunk(
    buggy: list[str],
    fixed: list[str],
    *,
    drop: tuple[set[int], set[int]] | None = None,
    multi_hunk: bool = False,
) -> Chunk | str:
    """The chunk between a buggy and a fixed function, or the reason there is none. `drop`
    holds line indexes (comment-only, blank) to remove from each version first."""
    if drop is not None:
        buggy = [ln for i, ln in enumerate(buggy) if i not in drop[0] and ln.strip()]
        fixed = [ln for i, ln in enumerate(fixed) if i not in drop[1] and ln.strip()]
    ops = [
        op
        for op in difflib.SequenceMatcher(None, buggy, fixed, autojunk=False).get_opcodes()
        if op[0] != "equal"
    ]
    if not ops:
        return "comment_or_blank_change"
    if len(ops) > 1 and not multi_hunk:
        return "several_hunks"
    i1, j1 = ops[0][1], ops[0][3]
    i2, j2 = ops[-1][2], ops[-1][4]
    return Chunk(buggy, i1, i2 - 1, fixed[j1:j2])


def is_bugfix(message: str, pattern: str) -> bool:
    return re.search(pattern, message, re.IGNORECASE) is not None


def repair_examples(
    commit: Commit,
    cfg: RepairTaskConfig,
    dropped: Counter[str],
    fits: Any = None,
    source: str = "history",
    label: str | None = None,
) -> Iterator[dict]:
    """The commit's one example, if it is a fix (per `cfg.commits`) of exactly one function.
    `fits(prompt, completion)` applies the token caps; `dropped` counts every reason. `label`
    goes into the meta always, into the prompt only with `cfg.show_label`."""
    if (
        cfg.commits == "bugfix"
        and source == "history"
        and not is_bugfix(commit.message, cfg.bugfix_pattern)
    ):
        dropped["not_bugfix"] += 1
        return
    found = []
    for change in _code_changes(commit):
        functions = changed_functions(change)
        if functions is None:
            continue
        if functions.outside:
            dropped["change_outside_function"] += 1
            return
        found += [(change, functions, pair) for pair in functions.pairs]
    if len(found) != 1:
        dropped["no_function_changed" if not found else "several_functions"] += 1
        return
    change, functions, pair = found[0]
    before = split_lines(change.before or "")[pair.old.start : pair.old.end + 1]
    after = split_lines(change.after or "")[pair.new.start : pair.new.end + 1]
    drop = None
    if cfg.strip_comments:
        drop = (
            {i - pair.old.start for i in functions.before.comment_lines},
            {i - pair.new.start for i in functions.after.comment_lines},
        )
    chunk = fix_chunk(before, after, drop=drop, multi_hunk=cfg.multi_hunk)
    if isinstance(chunk, str):
        dropped[chunk] += 1
        return
    shown = label if cfg.show_label else None
    prompt = repair_prompt(chunk.function, chunk.first, chunk.last, change.language, shown)
    completion = repair_completion(chunk.fixed)
    if fits is not None and not fits(prompt, completion):
        dropped["over_token_cap"] += 1
        return
    yield {
        "id": f"{commit.sha[:12]}:{change.path}:{pair.old.name or 'fn'}",
        "task": "repair",
        "prompt": prompt,
        "completion": completion,
        "meta": {
            "sha": commit.sha,
            "path": change.path,
            "time": commit.committer_time,
            "language": change.language,
            "function": pair.old.name,
            "bug_lines": [chunk.first, chunk.last],
            "source": source,
            **({"label": label} if label else {}),
        },
    }


def _code_changes(commit: Commit) -> list[FileChange]:
    """The files a fix is looked for in: those with a grammar when there are any (a fix that
    also edits docs or configs is still a one-function fix), else any non-prose text file."""
    usable = [c for c in commit.files if not c.skip_reason and c.hunks and c.language]
    code = [c for c in usable if has_grammar(c.language)]
    return code or [c for c in usable if c.language not in PROSE]
