"""Static analysers as a baseline: a tool counts for a bug when it flags a line in the span."""

from __future__ import annotations

import shutil

import pytest

from repotune.evaluate.static import analyse, available
from repotune.sandbox import Sandbox
from repotune.sandbox.manifest import Bug


def _project(sb: Sandbox, files: dict[str, str]):
    folder = sb.scratch("static")
    for name, text in files.items():
        (folder / name).write_text(text)
    sb.hand_over(folder)
    return folder


def test_python_analysers_flag_the_span_only_when_the_bug_is_there():
    tools = available()
    if "ruff" not in tools:
        pytest.skip("ruff is not installed")
    text = "import os\n\n\ndef area(r):\n    return pi * r * r\n"
    with Sandbox() as sb:
        folder = _project(sb, {"m.py": text})
        hit = analyse(Bug("b", ".", "m.py", (5, 5), "true"), folder, sb, tools)
        miss = analyse(Bug("b", ".", "m.py", (4, 4), "true"), folder, sb, tools)
    assert hit["ruff"] == {"flagged": True, "lines": [1, 5]}  # unused import, undefined name
    assert miss["ruff"]["flagged"] is False
    if "cppcheck" in tools:
        assert hit["cppcheck"] is None  # not a Python tool
    if "pyflakes" in tools:
        assert hit["pyflakes"]["flagged"] is True


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_gcc_analyzer_flags_a_null_dereference():
    text = "int f(void)\n{\n\tint *p = 0;\n\treturn *p;\n}\n"
    with Sandbox() as sb:
        folder = _project(sb, {"lib.c": text})
        res = analyse(Bug("c", ".", "lib.c", (4, 4), "true"), folder, sb)
    assert res["gcc-analyzer"]["flagged"] is True
    if "ruff" in res:
        assert res["ruff"] is None
