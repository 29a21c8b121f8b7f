"""Function spans, blocks and comment-only lines from tree-sitter; blank-line fallback."""

import random

import pytest

from repotune.code.functions import (
    Span,
    blank_line_blocks,
    code_units,
    function_spans,
    innermost,
    outline,
    split_lines,
)
from repotune.code.parse import has_grammar

SNIPPETS = {
    "python": (
        "import os\n\n@cache\ndef f(x):\n    if x:\n        return 1\n    return 2\n\n"
        "class A:\n    def g(self):\n        pass\n",
        [(2, 6, "f"), (9, 10, "g")],
    ),
    "c": (
        "#include <stdio.h>\n\nstatic int clamp(int x, int lo, int hi)\n{\n\tif (x < lo)\n"
        "\t\treturn lo;\n\treturn x > hi ? hi : x;\n}\n\nint *p(void) { return 0; }\n",
        [(2, 7, "clamp"), (9, 9, "p")],
    ),
    "cpp": (
        "template <class T>\nT twice(T x) {\n  return x + x;\n}\nclass A {\n  int g() {\n"
        "    return 1;\n  }\n};\nint A::h() {\n  return 2;\n}\n",
        [(0, 3, "twice"), (5, 7, "g"), (9, 11, "A::h")],
    ),
    "java": (
        "class A {\n  A() {\n    x = 1;\n  }\n  @Override\n  public int m(int a) {\n"
        "    return a;\n  }\n}\n",
        [(1, 3, "A"), (4, 7, "m")],
    ),
    "javascript": (
        "const f = (a) => {\n  return a;\n};\nfunction g() {\n  return 1;\n}\n"
        "class B {\n  m() {\n    return 2;\n  }\n}\n",
        [(0, 2, "f"), (3, 5, "g"), (7, 9, "m")],
    ),
    "typescript": (
        "export function f(a: number): number {\n  return a;\n}\n"
        "const h = (): JSX.Element => {\n  return <div/>;\n};\n",
        [(0, 2, "f"), (3, 5, "h")],
    ),
    "go": (
        "package main\n\nfunc (s *S) F(x int) int {\n\tif x > 0 {\n\t\treturn 1\n\t}\n"
        "\treturn 0\n}\n\nfunc main() {\n}\n",
        [(2, 7, "F"), (9, 10, "main")],
    ),
    "rust": (
        "impl S {\n    fn f(&self) -> i32 {\n        1\n    }\n}\n\nfn main() {\n"
        "    let x = 1;\n}\n",
        [(1, 3, "f"), (6, 8, "main")],
    ),
}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_function_spans_per_language(language):
    source, expected = SNIPPETS[language]
    assert has_grammar(language)
    spans = function_spans(source, language)
    assert [(s.start, s.end, s.name) for s in spans] == expected


def test_bodies_and_blocks_are_whole_lines_inside_the_braces():
    source, _ = SNIPPETS["c"]
    info = outline(source, "c")
    clamp = info.functions[0]
    assert clamp.body == (4, 6)  # between the '{' line and the '}' line
    assert info.functions[1].body is None  # a one-line body shares its line with the braces
    py = outline(SNIPPETS["python"][0], "python")
    assert py.functions[0].body == (4, 6)
    assert (5, 5) in py.blocks  # the `if` body


def test_comment_only_lines():
    source = "int f(void) {\n  /* a\n   b */\n  return 1; // trailing\n  // only\n}\n"
    assert outline(source, "c").comment_lines == {1, 2, 4}
    py = "def f():\n    # note\n    x = 1  # trailing\n    return x\n"
    assert outline(py, "python").comment_lines == {1}
    # no grammar: the language's line-comment prefix
    recipe = 'SRC_URI = "x"\n# comment\nDEPENDS = "y"\n'
    assert outline(recipe, "bitbake").comment_lines == {1}


def test_fallback_units_are_blank_line_blocks():
    text = "A = 1\nB = 2\n\n\nC = 3\n  \nD = 4\nE = 5"
    assert code_units(text, "bitbake") == [
        Span(0, 1, "block"),
        Span(4, 4, "block"),
        Span(6, 7, "block"),
    ]
    assert code_units(text, None) == code_units(text, "bitbake")


def test_blank_line_blocks_never_cut_mid_line():
    rng = random.Random(7)
    words = ["x = 1", "", "   ", "if y:", "\tz()", "é = 'ü'", "", "end"]
    for _ in range(200):
        text = "\n".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        lines = split_lines(text)
        blocks = blank_line_blocks(text)
        covered = set()
        for b in blocks:
            assert 0 <= b.start <= b.end < len(lines)
            chunk = lines[b.start : b.end + 1]
            assert all(ln.strip() for ln in chunk)  # whole non-blank lines only
            covered |= set(range(b.start, b.end + 1))
        assert covered == {i for i, ln in enumerate(lines) if ln.strip()}


def test_innermost_and_insertion_points():
    spans = [Span(0, 10, "f", "outer"), Span(2, 5, "f", "inner")]
    assert innermost(spans, 3, 4).name == "inner"
    assert innermost(spans, 3, 7).name == "outer"
    assert innermost(spans, 3, 2).name == "inner"  # insertion before line 3
    assert innermost(spans, 0, -1) is None  # before the first line: outside
    assert innermost(spans, 11, 11) is None


def test_split_lines_counts_like_git():
    assert split_lines("a\nb\n") == ["a", "b"]
    assert split_lines("a\x0cb\n") == ["a\x0cb"]  # a form feed is not a line break
    assert split_lines("") == []
