"""`export --ollama NAME`: the commands that make an exported GGUF an Ollama model.

`ollama create` is what installs it, so that one runs where `ollama` is on PATH (it needs the
Ollama server running, as every ollama command does). `ollama run NAME` opens an interactive
chat, so it is printed for the user to run rather than started inside `export`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from repotune.errors import UserError

# Ollama's model names: [namespace/]model[:tag], letters, digits, '_', '-', '.'.
_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_NAME = re.compile(rf"^(?:{_PART}/)?{_PART}(?::{_PART})?$")


def check_name(name: str) -> str:
    """`name` if Ollama accepts it, else a UserError before anything is exported."""
    if not _NAME.match(name):
        raise UserError(
            f"not an Ollama model name: {name!r} (letters, digits, '_', '-', '.'; "
            "optionally namespace/ before and :tag after)"
        )
    return name


def commands(name: str, modelfile: Path) -> list[list[str]]:
    """`ollama create NAME -f MODELFILE`, then `ollama run NAME`."""
    return [["ollama", "create", name, "-f", str(modelfile)], ["ollama", "run", name]]


def install(name: str, modelfile: Path, say: Callable[[str], None]) -> bool:
    """Print the commands; run `ollama create` where `ollama` is on PATH. True if it ran."""
    create, run = commands(name, modelfile)
    exe = shutil.which("ollama")
    if exe is None:
        say("ollama is not on PATH; to use the model in Ollama run:")
        say(f"  {shlex.join(create)}")
        say(f"  {shlex.join(run)}")
        return False
    say(f"running: {shlex.join(create)}")
    res = subprocess.run([exe, *create[1:]], capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(
            f"`{shlex.join(create)}` failed (exit {res.returncode}): {last}; is the Ollama "
            "server running (ollama serve)?"
        )
    say(f"ready: {shlex.join(run)}")
    return True
