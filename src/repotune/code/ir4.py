"""RepairLLaMA's IR4 input and OR2 output: the format the `repair` task trains on (build) and
`evaluate --bugs` poses known bugs in (evaluate), so both stages import it from here.

IR4: the buggy function, where the buggy chunk was a line `<comment> buggy code`, then each
buggy line commented out in the language's own syntax, then `<FILL_ME>` indented like the
first buggy line; with a label (such as a CWE), a line `<comment> label: CWE-476` just above.
OR2: the fixed chunk, the lines that replace the mask.
"""

from __future__ import annotations

from repotune.code.languages import comment_prefix

FILL_ME = "<FILL_ME>"


def repair_prompt(
    function_lines: list[str],
    bug_first: int,
    bug_last: int,
    language: str | None,
    label: str | None = None,
) -> str:
    """RepairLLaMA IR4 for a function (lines without newlines) whose buggy chunk is lines
    bug_first..bug_last (0-based, inclusive; bug_last = bug_first - 1: an insertion point).
    `label`, when given, is shown as a comment line above the buggy chunk."""
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
        *([_label_line(label, language)] if label else []),
        f"{mark} buggy code",
        *(f"{mark} {line}" for line in buggy),
        f"{indent}{FILL_ME}",
        *function_lines[bug_last + 1 :],
    ]
    return "\n".join(lines) + "\n"


def _label_line(label: str, language: str | None) -> str:
    """The label as one comment line in the language's syntax (whitespace runs collapsed)."""
    return f"{comment_prefix(language)} label: {' '.join(label.split())}"


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
