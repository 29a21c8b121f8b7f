"""Comment, docstring and layout changes are cosmetic; any change a test could see is not."""

import pytest

from repotune.code.cosmetic import is_cosmetic

PY = 'def mean(xs):\n    """Average of xs."""\n    return sum(xs) / len(xs)\n'


@pytest.mark.parametrize(
    "after",
    [
        # the docstring reflowed, as click's "Fix layout" commit did
        'def mean(xs):\n    """Average\n    of xs.\n    """\n    return sum(xs) / len(xs)\n',
        PY.replace("    return", "    # the arithmetic mean\n    return"),
        PY.replace("sum(xs) / len(xs)", "sum(xs)/len(xs)  # fast"),
        PY.replace("(xs):", "(\n    xs\n):"),
        PY.replace('    """Average of xs."""\n', ""),  # a docstring removed does nothing
    ],
)
def test_python_cosmetic(after):
    assert is_cosmetic(PY, after, "python")


@pytest.mark.parametrize(
    "after",
    [
        PY.replace("len(xs)", "max(len(xs), 1)"),
        PY.replace("sum(xs)", "sum(xs or [0])"),
        'def mean(xs):\n    """Average of xs."""\n    return sum(xs) / len(xs)\nX = "a"\n',
        PY.replace('"""Average of xs."""', "x = 'Average of xs.'"),  # an assignment is code
    ],
)
def test_python_changes_that_count(after):
    assert not is_cosmetic(PY, after, "python")


def test_moving_a_statement_into_a_block_is_not_layout():
    before = "if x:\n    a()\nb()\n"
    assert not is_cosmetic(before, "if x:\n    a()\n    b()\n", "python")


def test_c_and_languages_without_a_grammar():
    c = "int f(int x) { return x + 1; }\n"
    assert is_cosmetic(c, "/* f */\nint f(int x)\n{\n\treturn x + 1; // one more\n}\n", "c")
    assert not is_cosmetic(c, c.replace("+ 1", "+ 2"), "c")
    # a string statement means something outside Python ('use strict')
    js = "function f() { return 1; }\n"
    assert not is_cosmetic(js, '"use strict";\n' + js, "javascript")
    ruby = "def f(x)\n  x + 1\nend\n"
    assert is_cosmetic(ruby, "# adds one\ndef f(x)\n    x + 1\nend\n", "ruby")
    assert not is_cosmetic(ruby, ruby.replace("+ 1", "+ 2"), "ruby")


def test_a_file_that_does_not_parse_is_never_cosmetic():
    broken = "def f(:\n    return 1\n"
    assert not is_cosmetic(broken, broken.replace("return 1", "return  1"), "python")
