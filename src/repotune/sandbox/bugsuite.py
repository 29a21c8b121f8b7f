"""A manifest of small real bugs built on the fly: 12 Python projects and 3 C projects, each
with a test that fails on the bug and passes on the fix. Used by the validation tests and by
bench/validate.py (in the package rather than tests/ because bench scripts import no test
helpers)."""

from __future__ import annotations

import json
from pathlib import Path

# (id, module text with the bug, buggy line(s) as they appear, the fix, test code)
PYTHON_BUGS = [
    (
        "sum-to",
        "def sum_to(n):\n    total = 0\n    for i in range(1, n):\n        total += i\n"
        "    return total\n",
        "    for i in range(1, n):\n",
        "    for i in range(1, n + 1):\n",
        "assert sum_to(3) == 6\nassert sum_to(1) == 1\n",
    ),
    (
        "maximum",
        "def maximum(xs):\n    best = xs[0]\n    for x in xs:\n        if x < best:\n"
        "            best = x\n    return best\n",
        "        if x < best:\n",
        "        if x > best:\n",
        "assert maximum([3, 9, 2]) == 9\n",
    ),
    (
        "is-even",
        "def is_even(n):\n    return n % 2 == 1\n",
        "    return n % 2 == 1\n",
        "    return n % 2 == 0\n",
        "assert is_even(4) and not is_even(3)\n",
    ),
    (
        "reverse",
        "def reverse(s):\n    return s[::1]\n",
        "    return s[::1]\n",
        "    return s[::-1]\n",
        "assert reverse('abc') == 'cba'\n",
    ),
    (
        "factorial",
        "def factorial(n):\n    if n == 0:\n        return 0\n    return n * factorial(n - 1)\n",
        "        return 0\n",
        "        return 1\n",
        "assert factorial(0) == 1\nassert factorial(4) == 24\n",
    ),
    (
        "average",
        "def average(xs):\n    return sum(xs) / len(xs)\n",
        "    return sum(xs) / len(xs)\n",
        "    return sum(xs) / len(xs) if xs else 0.0\n",
        "assert average([]) == 0.0\nassert average([1, 3]) == 2.0\n",
    ),
    (
        "word-count",
        "def word_count(text):\n    counts = {}\n    for w in text.split():\n"
        "        counts[w] = counts.get(w) + 1\n    return counts\n",
        "        counts[w] = counts.get(w) + 1\n",
        "        counts[w] = counts.get(w, 0) + 1\n",
        "assert word_count('a b a') == {'a': 2, 'b': 1}\n",
    ),
    (
        "clamp",
        "def clamp(x, lo, hi):\n    if x < lo:\n        return hi\n    if x > hi:\n"
        "        return hi\n    return x\n",
        "        return hi\n",  # first occurrence: line 3
        "        return lo\n",
        "assert clamp(-5, 0, 10) == 0\nassert clamp(50, 0, 10) == 10\n"
        "assert clamp(5, 0, 10) == 5\n",
    ),
    (
        "palindrome",
        "def is_palindrome(s):\n    s = s.replace(' ', '')\n    return s == s[::-1]\n",
        "    s = s.replace(' ', '')\n",
        "    s = s.replace(' ', '').lower()\n",
        "assert is_palindrome('Never odd or even')\n",
    ),
    (
        "last-item",
        "def last(xs):\n    return xs[len(xs)]\n",
        "    return xs[len(xs)]\n",
        "    return xs[len(xs) - 1]\n",
        "assert last([1, 2, 3]) == 3\n",
    ),
    (
        "circle-area",  # a bug ruff and pyflakes see (undefined name)
        "import math\n\n\ndef area(r):\n    return pi * r * r\n",
        "    return pi * r * r\n",
        "    return math.pi * r * r\n",
        "assert abs(area(1) - 3.14159) < 1e-3\n",
    ),
    (
        "parse-ints",  # tested with pytest, as real projects are
        "def parse_ints(text):\n    return [int(p) for p in text.split(',')]\n",
        "    return [int(p) for p in text.split(',')]\n",
        "    return [int(p) for p in text.split(',') if p.strip()]\n",
        "def test_trailing_comma():\n    assert parse_ints('1,2,') == [1, 2]\n",
    ),
]

C_BUGS = [
    (
        "c-abs",
        "int my_abs(int x)\n{\n\treturn x > 0 ? x : x;\n}\n",
        "\treturn x > 0 ? x : x;\n",
        "\treturn x > 0 ? x : -x;\n",
        "int my_abs(int x);\nint main(void) { return !(my_abs(-3) == 3 && my_abs(4) == 4); }\n",
    ),
    (
        "c-count",
        "int count_char(const char *s, char c)\n{\n\tint n = 0;\n"
        "\tfor (int i = 1; s[i]; i++)\n\t\tif (s[i] == c)\n\t\t\tn++;\n\treturn n;\n}\n",
        "\tfor (int i = 1; s[i]; i++)\n",
        "\tfor (int i = 0; s[i]; i++)\n",
        "int count_char(const char *s, char c);\n"
        "int main(void) { return !(count_char(\"aba\", 'a') == 2); }\n",
    ),
    (
        "c-max",
        "int max_of(const int *xs, int n)\n{\n\tint best = 0;\n"
        "\tfor (int i = 0; i < n; i++)\n\t\tif (xs[i] > best)\n\t\t\tbest = xs[i];\n"
        "\treturn best;\n}\n",
        "\tint best = 0;\n",
        "\tint best = xs[0];\n",
        "int max_of(const int *xs, int n);\n"
        "int main(void) { int v[] = {-4, -2, -9}; return !(max_of(v, 3) == -2); }\n",
    ),
]


def _span(text: str, buggy: str) -> tuple[int, int]:
    start = text.index(buggy)
    first = text[:start].count("\n") + 1
    return first, first + buggy.count("\n") - 1


def make_suite(root: Path, timeout: float = 20.0) -> Path:
    """Write every project under `root` and return the path of its manifest (bugs.jsonl)."""
    root = Path(root)
    lines = []
    for bug_id, module, buggy, fix, test in PYTHON_BUGS:
        proj = root / bug_id
        proj.mkdir(parents=True)
        (proj / "mod.py").write_text(module)
        pytest_style = "def test_" in test
        (proj / "test_mod.py").write_text("from mod import *\n\n" + test)
        cmd = (
            "python -m pytest -q -p no:cacheprovider test_mod.py"
            if pytest_style
            else ("python test_mod.py")
        )
        lines.append(
            {
                "id": bug_id,
                "repo": bug_id,
                "file": "mod.py",
                "span": list(_span(module, buggy)),
                "test_command": cmd,
                "timeout": timeout,
                "fix": fix,
            }
        )
    for bug_id, lib, buggy, fix, test in C_BUGS:
        proj = root / bug_id
        proj.mkdir(parents=True)
        (proj / "lib.c").write_text(lib)
        (proj / "test.c").write_text(test)
        lines.append(
            {
                "id": bug_id,
                "repo": bug_id,
                "file": "lib.c",
                "span": list(_span(lib, buggy)),
                "build_command": "cc -std=c99 -Wall -o test_bin test.c lib.c",
                "test_command": "./test_bin",
                "timeout": timeout,
                "fix": fix,
            }
        )
    manifest = root / "bugs.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return manifest
