"""Static analysers as a baseline row: does ruff, pyflakes, cppcheck or GCC's analyser flag a
line inside the bug's span? A model that only finds what a linter finds has not earned much.

Each tool runs only where installed and only on its languages, inside the sandbox (a C
analyser reads the project's headers, and those are the user's untrusted files too).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from repotune.sandbox import Limits, Sandbox
from repotune.sandbox.manifest import Bug

_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:\d+:)?\s*(?P<msg>.*)$", re.M)
_C_LIKE = ("c", "cpp")


def _ruff() -> list[str] | None:
    exe = shutil.which("ruff") or _beside_python("ruff")
    if exe is None:
        return None
    return [exe, "check", "--no-cache", "--isolated", "--select", "E9,F,B,PLE",
            "--output-format", "concise", "--exit-zero"]  # fmt: skip


def _pyflakes() -> list[str] | None:
    if importlib.util.find_spec("pyflakes") is None:
        return None
    return [sys.executable, "-m", "pyflakes"]


def _cppcheck() -> list[str] | None:
    exe = shutil.which("cppcheck")
    if exe is None:
        return None
    return [exe, "--enable=warning,style", "--quiet",
            "--template={file}:{line}:{column}: {severity} {id}: {message}"]  # fmt: skip


def _gcc_analyzer() -> list[str] | None:
    exe = shutil.which("gcc")
    if exe is None:
        return None
    return [exe, "-fanalyzer", "-Wall", "-Wextra", "-c", "-o", "/dev/null"]


# tool -> (languages, command builder); the file path is appended to the command.
ANALYSERS: dict[str, tuple[tuple[str, ...], Callable[[], list[str] | None]]] = {
    "ruff": (("python",), _ruff),
    "pyflakes": (("python",), _pyflakes),
    "cppcheck": (_C_LIKE, _cppcheck),
    "gcc-analyzer": (_C_LIKE, _gcc_analyzer),
}


def available() -> dict[str, tuple[tuple[str, ...], list[str]]]:
    """The analysers installed here, with their languages and base command."""
    found = {}
    for name, (langs, build) in ANALYSERS.items():
        cmd = build()
        if cmd is not None:
            found[name] = (langs, cmd)
    return found


def analyse(bug: Bug, project: Path, sandbox: Sandbox, tools=None) -> dict[str, dict | None]:
    """Per tool: {"flagged": bool, "lines": [...]} for the bug's language, None otherwise."""
    tools = available() if tools is None else tools
    lang = bug.lang()
    result: dict[str, dict | None] = {}
    for name, (langs, cmd) in tools.items():
        if lang not in langs:
            result[name] = None
            continue
        argv = [*cmd, bug.file]
        if name == "gcc-analyzer":
            argv = [*cmd, f"-I{Path(bug.file).parent or '.'}", bug.file]
        res = sandbox.run(argv, project, Limits(wall_seconds=60, memory_mb=4096))
        if res.error or res.timed_out:
            result[name] = None
            continue
        lines = sorted(
            {
                int(m["line"])
                for m in _DIAG.finditer(res.output)
                if Path(m["file"].strip()).name == Path(bug.file).name
            }
        )
        first, last = bug.span
        result[name] = {"flagged": any(first <= n <= last for n in lines), "lines": lines}
    return result


def _beside_python(name: str) -> str | None:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.is_file() else None
