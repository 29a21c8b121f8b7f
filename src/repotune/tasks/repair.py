"""The `repair` task, RepairLLaMA style: IR4 input -> OR2 output.

IR4: the buggy function, where the buggy chunk was a line `<comment> buggy code`, then each
buggy line commented out in the language's own syntax, then `<FILL_ME>` indented like the
first buggy line. OR2: the fixed chunk, the lines that replace the mask. The chunk spans the
first to the last changed line, so with `multi_hunk` several changes in one function collapse
into one chunk; comment-only and blank lines are dropped first (`strip_comments`), as
RepairLLaMA does.

Examples come from bug-fix commits that change exactly one function, and from external fix
sets (JSONL of {path, before, after | diff}, or .diff/.patch files next to their pre-images).
`repair_prompt` is also what evaluation by execution uses to pose a known bug.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repotune.code.functions import split_lines
from repotune.code.languages import COMMENT_PREFIX, PROSE, comment_prefix, language_for_path
from repotune.code.parse import has_grammar
from repotune.config import RepairTaskConfig
from repotune.errors import UserError
from repotune.records import Commit, FileChange, Hunk
from repotune.tasks.changes import changed_functions

__all__ = [
    "COMMENT_PREFIX",
    "FILL_ME",
    "comment_prefix",
    "load_external",
    "repair_examples",
    "repair_prompt",
]

FILL_ME = "<FILL_ME>"


def repair_prompt(
    function_lines: list[str], bug_first: int, bug_last: int, language: str | None
) -> str:
    """RepairLLaMA IR4 for a function (lines without newlines) whose buggy chunk is lines
    bug_first..bug_last (0-based, inclusive; bug_last = bug_first - 1: an insertion point)."""
    if not 0 <= bug_first <= len(function_lines) or not bug_first - 1 <= bug_last < len(
        function_lines
    ):
        raise ValueError(
            f"bug lines {bug_first}..{bug_last} outside a {len(function_lines)}-line function"
        )
    mark = comment_prefix(language)
    buggy = function_lines[bug_first : bug_last + 1]
    anchor = buggy[0] if buggy else _neighbour(function_lines, bug_first)
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    lines = [
        *function_lines[:bug_first],
        f"{mark} buggy code",
        *(f"{mark} {line}" for line in buggy),
        f"{indent}{FILL_ME}",
        *function_lines[bug_last + 1 :],
    ]
    return "\n".join(lines) + "\n"


def _neighbour(lines: list[str], at: int) -> str:
    """The line an inserted chunk is indented like: the next non-blank one, else the last."""
    for line in lines[at:]:
        if line.strip():
            return line
    for line in reversed(lines[:at]):
        if line.strip():
            return line
    return ""


def repair_completion(fixed_lines: list[str]) -> str:
    """OR2: the fixed chunk's lines, each ended by a newline."""
    return "\n".join(fixed_lines) + "\n"


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
) -> Iterator[dict]:
    """The commit's one example, if it is a fix (per `cfg.commits`) of exactly one function.
    `fits(prompt, completion)` applies the token caps; `dropped` counts every reason."""
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
    prompt = repair_prompt(chunk.function, chunk.first, chunk.last, change.language)
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
        },
    }


def _code_changes(commit: Commit) -> list[FileChange]:
    """The files a fix is looked for in: those with a grammar when there are any (a fix that
    also edits docs or configs is still a one-function fix), else any non-prose text file."""
    usable = [c for c in commit.files if not c.skip_reason and c.hunks and c.language]
    code = [c for c in usable if has_grammar(c.language)]
    return code or [c for c in usable if c.language not in PROSE]


# --- external fix sets -------------------------------------------------------------------------


def load_external(paths: list[str]) -> list[Commit]:
    """External fixes as one-file pseudo-commits (sha = a hash of the content, time 0)."""
    commits: list[Commit] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for diff in sorted([*path.rglob("*.diff"), *path.rglob("*.patch")]):
                commits += _diff_file_commits(diff)
        elif path.is_file():
            commits += _jsonl_commits(path)
        else:
            raise UserError(f"repair fix set not found: {path}")
    return commits


def _jsonl_commits(path: Path) -> Iterator[Commit]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("before"), str):
                raise UserError(f"{path}:{n}: expected an object with 'path' and 'before' text")
            if not isinstance(row.get("path"), str):
                raise UserError(f"{path}:{n}: missing 'path'")
            if isinstance(row.get("after"), str):
                after = row["after"]
            elif isinstance(row.get("diff"), str):
                after = _apply(
                    row["before"], _parse_hunks(row["diff"], f"{path}:{n}"), f"{path}:{n}"
                )
            else:
                raise UserError(f"{path}:{n}: needs 'after' text or a unified 'diff'")
            yield _pseudo_commit(row["path"], row["before"], after, str(row.get("id") or ""))


def _diff_file_commits(diff_path: Path) -> Iterator[Commit]:
    """A .diff/.patch file; each file it changes is read from beside it (its pre-image)."""
    text = diff_path.read_text(encoding="utf-8", errors="replace")
    files = parse_unified_diff(text, str(diff_path))
    if not files:
        raise UserError(f"{diff_path}: no file changes found (expected a unified diff)")
    for old_path, new_path, hunks in files:
        pre = diff_path.parent / old_path
        if not pre.is_file():
            raise UserError(f"{diff_path}: pre-image {old_path} not found next to it ({pre})")
        before = pre.read_text(encoding="utf-8").replace("\r\n", "\n")
        after = _apply(before, hunks, str(diff_path))
        yield _pseudo_commit(new_path, before, after, f"{diff_path.name}:{old_path}")


_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def _diff_path(line: str) -> str:
    """`--- a/src/x.c\t2024-01-01` -> `src/x.c` (git's a/ b/ prefixes and dates dropped)."""
    name = line[4:].split("\t")[0].strip()
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse_unified_diff(text: str, where: str) -> list[tuple[str, str, list[Hunk]]]:
    """(old path, new path, hunks) per file of a unified diff (`git diff` or `diff -u`).
    A bare hunk list without ---/+++ lines counts as one file named "file"."""
    files: list[tuple[str, str, list[Hunk]]] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            files.append((_diff_path(line), _diff_path(lines[i + 1]), []))
            i += 2
            continue
        m = _HUNK_HEADER.match(line)
        if m is None:
            i += 1
            continue
        if not files:
            files.append(("file", "file", []))
        old_n = int(m[2]) if m[2] is not None else 1
        new_n = int(m[4]) if m[4] is not None else 1
        body: list[str] = []
        i += 1
        seen_old = seen_new = 0
        while i < len(lines) and (seen_old < old_n or seen_new < new_n or lines[i][:1] == "\\"):
            tag = lines[i][:1]
            if tag not in (" ", "-", "+", "\\") and lines[i] != "":
                raise UserError(f"{where}: malformed hunk line {i + 1}: {lines[i][:40]!r}")
            if tag != "\\":
                body.append(lines[i] if lines[i] else " ")
                seen_old += tag in (" ", "-", "")
                seen_new += tag in (" ", "+", "")
            i += 1
        header = line
        files[-1][2].append(Hunk(int(m[1]), old_n, int(m[3]), new_n, header, body))
    return files


def _parse_hunks(diff_text: str, where: str) -> list[Hunk]:
    files = parse_unified_diff(diff_text, where)
    if not files:
        raise UserError(f"{where}: 'diff' has no hunks (expected a unified diff)")
    return files[0][2]


def _apply(before: str, hunks: list[Hunk], where: str) -> str:
    """Apply hunks to `before`, checking that their context and removed lines match."""
    lines = split_lines(before)
    out: list[str] = []
    pos = 0
    for h in hunks:
        start = h.old_start - 1 if h.old_lines > 0 else h.old_start
        if start < pos:
            raise UserError(f"{where}: hunks overlap or are out of order")
        out += lines[pos:start]
        pos = start
        for line in h.lines:
            tag, body = line[:1], line[1:]
            if tag in (" ", "-"):
                if pos >= len(lines) or lines[pos] != body:
                    raise UserError(f"{where}: diff does not apply at line {pos + 1}")
                pos += 1
            if tag in (" ", "+"):
                out.append(body)
    out += lines[pos:]
    return "\n".join(out) + ("\n" if out else "")


def _pseudo_commit(path: str, before: str, after: str, ident: str) -> Commit:
    before, after = before.replace("\r\n", "\n"), after.replace("\r\n", "\n")
    digest = hashlib.sha1(f"{ident}\0{path}\0{before}\0{after}".encode()).hexdigest()
    hunks = _hunks_between(before, after)
    change = FileChange(
        old_path=path,
        new_path=path,
        change_type="modified",
        language=language_for_path(path),
        before=before,
        after=after,
        added=sum(ln.startswith("+") for h in hunks for ln in h.lines),
        deleted=sum(ln.startswith("-") for h in hunks for ln in h.lines),
        hunks=hunks,
    )
    return Commit(digest, [], 0, 0, "", f"external fix {ident or path}", [change])


def _hunks_between(before: str, after: str) -> list[Hunk]:
    """Zero-context hunks (one per change run) from difflib."""
    a, b = split_lines(before), split_lines(after)
    hunks = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lines = [f"-{x}" for x in a[i1:i2]] + [f"+{x}" for x in b[j1:j2]]
        old_start = i1 + 1 if i2 > i1 else i1
        new_start = j1 + 1 if j2 > j1 else j1
        header = f"@@ -{old_start},{i2 - i1} +{new_start},{j2 - j1} @@"
        hunks.append(Hunk(old_start, i2 - i1, new_start, j2 - j1, header, lines))
    return hunks
