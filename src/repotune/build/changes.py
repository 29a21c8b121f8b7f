"""Which functions a file change touched, from its hunks and both versions' syntax.

A hunk's context lines can join changes to two neighbouring functions, so changes are taken
as runs of consecutive `-`/`+` lines, and each run is placed in the innermost function of the
old and of the new version. Tasks that learn function-level edits (repair, the `functions`
representation of `commit`) use the pairs found here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repotune.code.functions import Outline, Span, blank_line_blocks, innermost, outline
from repotune.records import FileChange, Hunk, is_changed_line


@dataclass(frozen=True)
class Run:
    """One run of changed lines, 0-based. A count of 0 is an insertion point: the side has no
    lines there and the other side's lines go before line `first`."""

    old_first: int
    old_count: int
    new_first: int
    new_count: int


@dataclass
class FunctionChange:
    old: Span
    new: Span
    runs: list[Run] = field(default_factory=list)


@dataclass
class FileFunctions:
    """A change's function pairs, the runs outside any function, and both outlines (reused for
    comment-only lines)."""

    pairs: list[FunctionChange]
    outside: int
    before: Outline
    after: Outline


def change_runs(hunk: Hunk) -> list[Run]:
    """Runs of consecutive `-`/`+` lines of a hunk, in old/new line numbers."""
    # A side with no lines in the hunk names the line *after which* the other side's lines go.
    old = hunk.old_start - 1 if hunk.old_lines > 0 else hunk.old_start
    new = hunk.new_start - 1 if hunk.new_lines > 0 else hunk.new_start
    runs: list[Run] = []
    cur: list[int] | None = None  # [old_first, old_count, new_first, new_count]
    for line in hunk.lines:
        tag = line[:1]
        if tag == "\\":  # "\ No newline at end of file"
            continue
        if is_changed_line(line):
            if cur is None:
                cur = [old, 0, new, 0]
            if tag == "-":
                cur[1] += 1
                old += 1
            else:
                cur[3] += 1
                new += 1
            continue
        if cur is not None:
            runs.append(Run(*cur))
            cur = None
        old += 1
        new += 1
    if cur is not None:
        runs.append(Run(*cur))
    return runs


def changed_functions(change: FileChange) -> FileFunctions | None:
    """Pairs (function before, function after) holding the change's runs; None when either
    text is missing (binary, too large, added or deleted file). Files without a grammar use
    blank-line blocks as their functions."""
    if change.before is None or change.after is None:
        return None
    before = outline(change.before, change.language)
    after = outline(change.after, change.language)
    old_units = before.functions if before.parsed else blank_line_blocks(change.before)
    new_units = after.functions if after.parsed else blank_line_blocks(change.after)
    pairs: dict[tuple[Span, Span], FunctionChange] = {}
    outside = 0
    for hunk in change.hunks:
        for run in change_runs(hunk):
            old = innermost(old_units, run.old_first, run.old_first + run.old_count - 1)
            new = innermost(new_units, run.new_first, run.new_first + run.new_count - 1)
            if old is None or new is None or old.name != new.name:
                outside += 1
                continue
            pairs.setdefault((old, new), FunctionChange(old, new)).runs.append(run)
    return FileFunctions(list(pairs.values()), outside, before, after)
