"""External fix sets for the `repair` task: bugs fixed outside the mined history.

Accepted: JSONL rows of {path, before, after} or {path, before, diff} (a unified diff of that
file), and folders of .diff/.patch files whose pre-images sit beside them at the paths the diff
names (a layout bug collections use). Each fix becomes a one-file pseudo-commit (sha = a hash
of its content, time 0), so the same extraction as for mined commits applies.

A JSONL row may carry a `label`, the class researchers file the fix under (a CWE such as
"CWE-476"). It travels with the fix (`ExternalFix.label`) into the example's meta, and into
the prompt when `build.repair.show_label` is on. It is not part of the hash, so one fix set
built with the label shown and hidden splits the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repotune.code.functions import split_lines
from repotune.code.languages import language_for_path
from repotune.errors import UserError
from repotune.records import Commit, FileChange, Hunk


@dataclass
class ExternalFix(Commit):
    """A fix from an external set: a pseudo-commit plus the row's `label`, if any."""

    label: str | None = None


def load_external(paths: list[str]) -> list[ExternalFix]:
    """External fixes as one-file pseudo-commits (sha = a hash of the content, time 0)."""
    commits: list[ExternalFix] = []
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


def _jsonl_commits(path: Path) -> Iterator[ExternalFix]:
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
            fix = _pseudo_commit(row["path"], row["before"], after, str(row.get("id") or ""))
            fix.label = _label(row.get("label"), f"{path}:{n}")
            yield fix


def _label(value: object, where: str) -> str | None:
    """A row's label as one line of text (it becomes a comment line); empty or null: none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"{where}: 'label' must be text, such as \"CWE-476\"")
    return " ".join(value.split()) or None


def _diff_file_commits(diff_path: Path) -> Iterator[ExternalFix]:
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


def _pseudo_commit(path: str, before: str, after: str, ident: str) -> ExternalFix:
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
    return ExternalFix(digest, [], 0, 0, "", f"external fix {ident or path}", [change])


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
