"""Where the functions, blocks and comments of a file are, in whole lines.

Tasks cut code on syntax boundaries (a function to repair or explain, a body or block to fill
in), so spans are line ranges: 0-based, inclusive, over the text split on "\\n". tree-sitter
finds them for the languages with a grammar; other files fall back to blank-line blocks, which
are whole lines by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repotune.code.languages import COMMENT_PREFIX
from repotune.code.parse import captures, parse

_JS_FUNCTIONS = (
    "[(function_declaration) (generator_function_declaration) (method_definition)] @function "
    "(lexical_declaration (variable_declarator value: [(arrow_function) (function_expression)]))"
    " @function "
    "(variable_declaration (variable_declarator value: [(arrow_function) (function_expression)]))"
    " @function"
)
_JS = (_JS_FUNCTIONS, "(statement_block) @block", "(comment) @comment")
# grammar -> (function query, block query, comment query)
QUERIES: dict[str, tuple[str, str, str]] = {
    "python": ("(function_definition) @function", "(block) @block", "(comment) @comment"),
    "c": ("(function_definition) @function", "(compound_statement) @block", "(comment) @comment"),
    "cpp": (
        "(function_definition) @function",
        "(compound_statement) @block",
        "(comment) @comment",
    ),
    "java": (
        "[(method_declaration) (constructor_declaration) (compact_constructor_declaration)]"
        " @function",
        "[(block) (constructor_body)] @block",
        "[(line_comment) (block_comment)] @comment",
    ),
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "go": (
        "[(function_declaration) (method_declaration)] @function",
        "(block) @block",
        "(comment) @comment",
    ),
    "rust": (
        "(function_item) @function",
        "(block) @block",
        "[(line_comment) (block_comment)] @comment",
    ),
}
# Wrappers that belong to the function they wrap (decorators, template headers).
_WRAPPERS = {"decorated_definition", "template_declaration"}
_BLANK = b" \t\r\v\f"


@dataclass(frozen=True)
class Span:
    """Lines `start`..`end` (0-based, inclusive). `body` is the whole-line range strictly inside
    a function's body (None when the body shares lines with its signature or braces)."""

    start: int
    end: int
    kind: str
    name: str | None = None
    body: tuple[int, int] | None = None

    def contains(self, first: int, last: int) -> bool:
        return self.start <= first and last <= self.end


@dataclass
class Outline:
    """One parse of a file: its functions, inner block ranges and comment-only lines."""

    language: str | None
    parsed: bool
    functions: list[Span] = field(default_factory=list)
    blocks: list[tuple[int, int]] = field(default_factory=list)
    comment_lines: frozenset[int] = frozenset()


def split_lines(text: str) -> list[str]:
    """Lines without their "\\n" (a final newline adds no empty line); the numbering git and
    tree-sitter use, unlike str.splitlines, which also splits on \\f, \\x1c and friends."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def outline(source: str, language: str | None) -> Outline:
    """Functions, blocks and comment-only lines of `source`; a file without a grammar gets its
    comment-only lines from the language's line-comment prefix and no functions."""
    data = source.encode("utf-8", "surrogatepass")
    parsed = parse(data, language)
    if parsed is None:
        return Outline(language, False, comment_lines=_prefix_comment_lines(source, language))
    tree, grammar_name = parsed
    fn_q, block_q, comment_q = QUERIES[grammar_name]
    byte_lines = data.split(b"\n")
    functions = sorted(
        {
            _function_span(n, byte_lines)
            for n in captures(tree, grammar_name, fn_q).get("function", [])
        },
        key=lambda s: (s.start, -s.end),
    )
    blocks = {
        inner
        for n in captures(tree, grammar_name, block_q).get("block", [])
        if (inner := _inner_lines(n, byte_lines)) is not None
    }
    comments = captures(tree, grammar_name, comment_q).get("comment", [])
    return Outline(
        language,
        True,
        functions=functions,
        blocks=sorted(blocks),
        comment_lines=_comment_only_lines(comments, byte_lines),
    )


def function_spans(source: str, language: str | None) -> list[Span]:
    """Functions and methods of `source`, outermost first; [] without a grammar."""
    return outline(source, language).functions


def blank_line_blocks(source: str) -> list[Span]:
    """Runs of non-blank lines: the fallback unit for files no grammar covers."""
    spans: list[Span] = []
    start = None
    lines = split_lines(source)
    for i, line in enumerate(lines):
        if line.strip():
            start = i if start is None else start
        elif start is not None:
            spans.append(Span(start, i - 1, "block"))
            start = None
    if start is not None:
        spans.append(Span(start, len(lines) - 1, "block"))
    return spans


def code_units(source: str, language: str | None) -> list[Span]:
    """Functions where a grammar finds them, blank-line blocks for other files."""
    info = outline(source, language)
    return info.functions if info.parsed else blank_line_blocks(source)


def innermost(spans: list[Span], first: int, last: int) -> Span | None:
    """The smallest span holding lines first..last (last = first - 1: an insertion point
    before line `first`, which must fall inside the span, after its first line)."""
    best = None
    for s in spans:
        inside = s.contains(first, last) if last >= first else s.start < first <= s.end + 1
        if inside and (best is None or s.end - s.start < best.end - best.start):
            best = s
    return best


# --- tree-sitter helpers ---------------------------------------------------------------------


def _text(node: Any) -> str:
    return node.text.decode("utf-8", "replace")


def _function_name(node: Any) -> str | None:
    name = node.child_by_field_name("name")
    if name is None and node.type in ("lexical_declaration", "variable_declaration"):
        name = node.named_children[0].child_by_field_name("name")
    if name is None:  # C/C++: the name sits at the end of a declarator chain
        d = node
        while (nxt := d.child_by_field_name("declarator")) is not None:
            d = nxt
        name = d if d is not node else None
    return _text(name) if name is not None else None


def _function_body(node: Any) -> Any | None:
    body = node.child_by_field_name("body")
    if body is None and node.type in ("lexical_declaration", "variable_declaration"):
        value = node.named_children[0].child_by_field_name("value")
        body = value.child_by_field_name("body") if value is not None else None
    return body


def _function_span(node: Any, byte_lines: list[bytes]) -> Span:
    outer = node
    while outer.parent is not None and outer.parent.type in _WRAPPERS:
        outer = outer.parent
    body = _function_body(node)
    return Span(
        start=outer.start_point.row,
        end=_last_row(node),
        kind=node.type,
        name=_function_name(node),
        body=_inner_lines(body, byte_lines) if body is not None else None,
    )


def _last_row(node: Any) -> int:
    """The node's last line; a node ending at column 0 ends on the line before."""
    row = node.end_point.row
    return row - 1 if node.end_point.column == 0 and row > node.start_point.row else row


def _inner_lines(node: Any, byte_lines: list[bytes]) -> tuple[int, int] | None:
    """Whole lines inside a block: between `{` and `}` when each brace has its line to itself
    (after the header / before any `else`), or the block's own lines when it starts a line and
    ends one (Python)."""
    children = node.children
    r0, r1 = node.start_point.row, _last_row(node)
    if children and children[0].type == "{" and children[-1].type == "}":
        open_, close = children[0], children[-1]
        after_open = byte_lines[open_.end_point.row][open_.end_point.column :]
        before_close = byte_lines[close.start_point.row][: close.start_point.column]
        first, last = open_.end_point.row + 1, close.start_point.row - 1
        if after_open.strip() or before_close.strip() or first > last:
            return None
        return first, last
    line0 = byte_lines[r0]
    starts_line = not line0[: node.start_point.column].strip()
    ends_line = (
        node.end_point.column == 0
        or not byte_lines[node.end_point.row][node.end_point.column :].strip()
    )
    return (r0, r1) if starts_line and ends_line and r0 <= r1 else None


def _comment_only_lines(comments: list[Any], byte_lines: list[bytes]) -> frozenset[int]:
    """Lines whose every non-blank byte lies inside a comment node."""
    covered: dict[int, list[tuple[int, int]]] = {}
    for node in comments:
        (r0, c0), (r1, c1) = node.start_point, node.end_point
        for row in range(r0, r1 + 1):
            start = c0 if row == r0 else 0
            stop = c1 if row == r1 else len(byte_lines[row])
            covered.setdefault(row, []).append((start, stop))
    only = set()
    for row, spans in covered.items():
        line = byte_lines[row]
        if all(any(a <= i < b for a, b in spans) for i, ch in enumerate(line) if ch not in _BLANK):
            only.add(row)
    return frozenset(only)


def _prefix_comment_lines(source: str, language: str | None) -> frozenset[int]:
    prefix = COMMENT_PREFIX.get(language or "")
    if prefix is None:
        return frozenset()
    return frozenset(
        i for i, line in enumerate(split_lines(source)) if line.lstrip().startswith(prefix)
    )
