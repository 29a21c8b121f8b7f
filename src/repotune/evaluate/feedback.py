"""The part of a failed run's log worth showing a model: the compiler error or the failing
assertion, trimmed. Whole logs are mostly noise (progress lines, passing tests, tracebacks
through the test runner) and would crowd the code out of a small model's context."""

from __future__ import annotations

import re

_COMPILER = re.compile(r"^\S[^:\n]*:\d+(?::\d+)?:\s*(?:fatal )?error\b.*$", re.M)
_PY_ERROR = re.compile(r"^(?:\w+\.)*\w*(?:Error|Exception|Failure|Exit)\b(?::.*)?$", re.M)
_PYTEST_E = re.compile(r"^E\s{2,}.*$", re.M)
_PYTEST_SUMMARY = re.compile(r"^(?:FAILED|ERROR) \S+.*$", re.M)
_ASSERT = re.compile(r"(?:assert|Assert|ASSERT|expected|Expected|FAIL|Fail)", re.M)


def extract_error(log: str, outcome: str, max_lines: int = 12, max_chars: int = 800) -> str:
    """A few lines that say why the candidate failed; "" when nothing useful is in the log."""
    if outcome == "timeout":
        return "The tests timed out (an infinite loop or a very slow path)."
    body, status = _strip_frame(log)
    picked: list[str] = []
    if outcome == "compile_error":
        picked = _COMPILER.findall(body) or _last_block(body, "SyntaxError")
    if not picked:
        picked = _PYTEST_E.findall(body) + _PYTEST_SUMMARY.findall(body)
    if not picked:
        picked = _python_traceback_tail(body)
    if not picked:
        picked = [ln for ln in body.splitlines() if _ASSERT.search(ln)]
    if not picked:
        picked = [ln for ln in body.splitlines() if ln.strip()][-max_lines:]
    if not picked and status:
        picked = [f"The tests failed without a message ({status})."]
    lines = list(dict.fromkeys(ln.rstrip() for ln in picked if ln.strip()))[:max_lines]
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _strip_frame(log: str) -> tuple[str, str]:
    """Drop the "$ command" header and "[step: status]" footer validation adds; return the
    rest and the status ("exit 1")."""
    lines = log.splitlines()
    status = ""
    if lines and lines[0].startswith("$ "):
        lines = lines[1:]
    if lines and (m := re.match(r"^\[\w+: (.*)\]$", lines[-1])):
        status = m.group(1)
        lines = lines[:-1]
    return "\n".join(lines), status


def _python_traceback_tail(body: str) -> list[str]:
    """The raising line and the exception of the last traceback."""
    if "Traceback (most recent call last)" not in body:
        return []
    tail = body.rsplit("Traceback (most recent call last)", 1)[1].splitlines()
    errors = [i for i, ln in enumerate(tail) if _PY_ERROR.match(ln.strip())]
    if not errors:
        return tail[-3:]
    end = errors[-1]
    frame = [ln for ln in tail[:end] if ln.startswith("    ") and not ln.strip().startswith("^")]
    return frame[-1:] + tail[end : end + 3]


def _last_block(body: str, marker: str) -> list[str]:
    lines = body.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if marker in lines[i]:
            return lines[max(0, i - 3) : i + 1]
    return []
