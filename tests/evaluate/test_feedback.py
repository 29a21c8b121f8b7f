"""The error shown to a model on a retry: the useful lines only, trimmed."""

from repotune.evaluate.feedback import extract_error

GCC = """$ cc -Wall -o t test.c lib.c
lib.c: In function 'f':
lib.c:3:23: error: expected ';' before '}' token
    3 |  return x
      |          ^
lib.c:9:1: warning: unused variable 'y'
[build: exit 1]"""

PYTEST = """$ python -m pytest -q
F.                                                                       [100%]
=================================== FAILURES ===================================
____________________________ test_trailing_comma ____________________________
    def test_trailing_comma():
>       assert parse_ints('1,2,') == [1, 2]
E       AssertionError: assert [1, 2, 0] == [1, 2]
E         Left contains one more item: 0
test_mod.py:4: AssertionError
FAILED test_mod.py::test_trailing_comma - AssertionError: assert [1, 2, 0] == [1, 2]
1 failed, 1 passed in 0.03s
[test: exit 1]"""

TRACEBACK = """$ python test_mod.py
Traceback (most recent call last):
  File "/tmp/x/test_mod.py", line 3, in <module>
    assert average([]) == 0.0
  File "/tmp/x/mod.py", line 2, in average
    return sum(xs) / len(xs)
ZeroDivisionError: division by zero
[test: exit 1]"""


def test_compiler_errors_keep_only_error_lines():
    assert extract_error(GCC, "compile_error") == "lib.c:3:23: error: expected ';' before '}' token"


def test_pytest_failures_keep_the_assertion():
    text = extract_error(PYTEST, "test_fail")
    assert "E       AssertionError: assert [1, 2, 0] == [1, 2]" in text
    assert "FAILED test_mod.py::test_trailing_comma" in text
    assert "[100%]" not in text and "1 passed" not in text


def test_tracebacks_keep_the_raising_line_and_exception():
    text = extract_error(TRACEBACK, "test_fail")
    assert text.splitlines() == [
        "    return sum(xs) / len(xs)",
        "ZeroDivisionError: division by zero",
    ]


def test_silent_failures_timeouts_and_trimming():
    assert "exit 1" in extract_error("$ ./t\n\n[test: exit 1]", "test_fail")
    assert "timed out" in extract_error("anything", "timeout")
    long = "$ x\n" + "\n".join(f"assert {i}" for i in range(500)) + "\n[test: exit 1]"
    assert len(extract_error(long, "test_fail", max_lines=50, max_chars=200)) <= 200
