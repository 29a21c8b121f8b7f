"""Running the `repotune` CLI from tests: in this process (fast, as the console script runs it)
or in a child process with a time limit (when a hang would be the bug)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.err.splitlines() if line.strip()]

    def one_line_error(self) -> str:
        """The error line of a run that failed cleanly: exit code 2, one line, no traceback."""
        assert self.code == 2 and "Traceback" not in self.err, self.err
        assert len(self.lines) == 1 and self.lines[0].startswith("error: "), self.err
        return self.lines[0]


def in_process(monkeypatch, capsys, *args: str) -> Ran:
    from repotune.cli import main

    monkeypatch.setattr(sys, "argv", ["repotune", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return Ran(code, captured.out, captured.err)


def child(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Ran:
    res = subprocess.run(
        [sys.executable, "-m", "repotune.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in res.stderr, res.stderr
    return Ran(res.returncode, res.stdout, res.stderr)
