"""Whether a change is cosmetic: it touches only comments, docstrings or layout, so no test can
tell the two versions apart (a "fix" of a docstring's wording is no bug to mine).

Two versions are compared by their syntax trees with comments and docstrings left out: node
types in order, and the text of each leaf. Layout (indentation that keeps the nesting, line
breaks, spacing) is not in the tree; a moved statement is, since its parent changes. Languages
without a grammar compare their tokens with comment-only lines dropped.
"""

from __future__ import annotations

from typing import Any

from repotune.code.languages import COMMENT_PREFIX
from repotune.code.parse import parse

# Python: a statement that is only a string literal does nothing (a docstring, or a string used
# as a comment). Elsewhere such statements can mean something ('use strict'), so only Python.
_NO_OP_STRINGS = {"python": ("string", "concatenated_string")}


def is_cosmetic(before: str, after: str, language: str | None) -> bool:
    """True when `before` and `after` differ in comments, docstrings or layout only.

    A file that does not parse cleanly is never called cosmetic: the comparison would not be
    trustworthy, and keeping a candidate costs only a test run.
    """
    if before == after:
        return True
    a, b = _signature(before, language), _signature(after, language)
    return a is not None and a == b


def _signature(source: str, language: str | None) -> list[str] | None:
    parsed = parse(source.encode("utf-8", "surrogatepass"), language)
    if parsed is None:
        return _fallback_signature(source, language)
    tree, grammar_name = parsed
    root = tree.root_node
    if root.has_error:
        return None
    no_op = _NO_OP_STRINGS.get(grammar_name, ())
    out: list[str] = []
    stack: list[Any] = [root]
    while stack:  # pre-order, iteratively: deep trees must not hit the recursion limit
        node = stack.pop()
        if node.child_count == 0:
            out.append(f"{node.type}\0{node.text.decode('utf-8', 'replace')}")
            continue
        kept = [c for c in node.children if not _left_out(c, no_op)]
        out.append(f"{node.type}/{len(kept)}")  # the count keeps the nesting
        stack.extend(reversed(kept))
    return out


def _left_out(node: Any, no_op: tuple[str, ...]) -> bool:
    return "comment" in node.type or _is_no_op_string(node, no_op)


def _is_no_op_string(node: Any, kinds: tuple[str, ...]) -> bool:
    if not kinds or node.type != "expression_statement":
        return False
    named = node.named_children
    return len(named) == 1 and named[0].type in kinds


def _fallback_signature(source: str, language: str | None) -> list[str]:
    prefix = COMMENT_PREFIX.get(language or "")
    lines = source.split("\n")
    if prefix:
        lines = [line for line in lines if not line.lstrip().startswith(prefix)]
    return " ".join(lines).split()
