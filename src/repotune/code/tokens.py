"""cregit-style token streams: code as one `kind|text` token per line, and token-level diffs.

cregit (srcML: C, C++, Java) writes `begin_<tag>`/`end_<tag>` around top-level elements and
each token as `<kind>|<text>`; tree-sitter's leaves give the same shape for every grammar here.
Kinds: `name` (identifiers), `keyword`, `operator` (punctuation too), `literal`, `comment`.
A token's newlines are written as `\\n` so each token stays on one line. Files without a grammar
get a regex tokenizer (names, numbers, strings, single characters) and no begin/end lines.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from repotune.code.parse import parse

_LITERAL_TYPES = {"true", "false", "null", "none", "nil", "undefined", "number", "iota"}
_LITERAL_PARTS = ("string", "char", "literal", "integer", "float")
_WORD = re.compile(r"[A-Za-z_]\w*\Z")
_FALLBACK = re.compile(
    r"""[A-Za-z_]\w*|\d[\w.]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|\S""", re.ASCII
)


def _escape(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\\n")


def _kind(node: Any) -> str:
    t = node.type
    if "comment" in t:
        return "comment"
    if node.is_named and (t in _LITERAL_TYPES or any(p in t for p in _LITERAL_PARTS)):
        return "literal"
    if node.is_named:
        return "name"
    return "keyword" if _WORD.match(node.text.decode("utf-8", "replace")) else "operator"


def _atomic(node: Any) -> bool:
    """Leaves, plus strings and comments kept whole (their inner nodes are not tokens)."""
    t = node.type
    return node.child_count == 0 or (
        node.is_named and ("comment" in t or "string" in t or t.endswith("literal"))
    )


def token_stream(
    source: str, language: str | None, lines: tuple[int, int] | None = None
) -> list[str]:
    """Tokens of `source` (or of its lines first..last, 0-based inclusive) in cregit's shape."""
    data = source.encode("utf-8", "surrogatepass")
    parsed = parse(data, language)
    if parsed is None:
        return _fallback_tokens(source, lines)
    root = parsed[0].root_node
    first, last = lines if lines is not None else (0, root.end_point.row)
    return list(_walk(root, first, last, enclosed=False, is_root=True))


def _inside(node: Any, first: int, last: int) -> bool:
    return first <= node.start_point.row and node.end_point.row <= last


def _walk(node: Any, first: int, last: int, enclosed: bool, is_root: bool = False) -> Iterator[str]:
    """Leaves in order; `enclosed`: an ancestor below the root already got begin/end lines."""
    if node.end_point.row < first or node.start_point.row > last:
        return
    if not is_root and _atomic(node):
        text = node.text.decode("utf-8", "replace")
        if text and first <= node.start_point.row <= last:
            yield f"{_kind(node)}|{_escape(text)}"
        return
    # begin/end around the outermost named elements that lie wholly inside the range
    mark = not is_root and not enclosed and node.is_named and _inside(node, first, last)
    if mark:
        yield f"begin_{node.type}"
    for child in node.children:
        yield from _walk(child, first, last, enclosed or mark)
    if mark:
        yield f"end_{node.type}"


def _fallback_tokens(source: str, lines: tuple[int, int] | None) -> list[str]:
    text_lines = source.split("\n")
    if lines is not None:
        text_lines = text_lines[lines[0] : lines[1] + 1]
    out = []
    for tok in _FALLBACK.findall("\n".join(text_lines)):
        if tok[0] in "\"'" or tok[0].isdigit():
            out.append(f"literal|{tok}")
        elif _WORD.match(tok):
            out.append(f"name|{tok}")
        else:
            out.append(f"operator|{tok}")
    return out


def token_diff(before: list[str], after: list[str], context: int = 3) -> list[str]:
    """Token-level diff: ` tok` unchanged, `-tok` removed, `+tok` added; `context` unchanged
    tokens around each change; groups separated by `@@`. difflib does the alignment."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    out: list[str] = []
    for group in matcher.get_grouped_opcodes(context):
        if out:
            out.append("@@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + t for t in before[i1:i2]]
                continue
            out += ["-" + t for t in before[i1:i2]]
            out += ["+" + t for t in after[j1:j2]]
    return out
