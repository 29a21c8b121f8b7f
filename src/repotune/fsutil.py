"""Atomic file writes: a reader (or a resumed run) never sees a half-written output."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps(path: Path) -> None:
    """Remove temp files of `path` left by writers that were killed (kill -9, OOM, power):
    nothing else removes them, and a large output's temp is as large as the output."""
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid, *rest = temp.name[len(path.name) + 2 :].split(".")  # PID.RANDOM.tmp
        if len(rest) == 2 and pid.isdigit() and not _alive(int(pid)):
            temp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path, *, clean: bool = True):
    """Yield a temp path in the same folder; rename over `path` only if the block succeeds.
    The temp's name carries the writer's pid, so a later write removes it if the writer died
    (`clean=False`: the caller cleans the folder itself, e.g. one of thousands of shards)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_stale_temps(path)
    prefix = f".{path.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir(tmp: Path, dest: Path) -> None:
    """Put the finished folder `tmp` at `dest`, replacing what is there. The old folder is
    renamed away before it is deleted, so a reader (or a run resumed after a kill) finds a
    whole folder at `dest` or none, never one half deleted."""
    old = dest.with_name(f".{dest.name}.old.tmp")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per line; a line that is not one stops with a UserError naming it
    (files are edited by hand, and a traceback from deep in a stage would not say where)."""
    from repotune.errors import UserError

    rows = []
    with Path(path).open("rb") as fh:
        for i, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise UserError(f"{path}:{i}: not UTF-8 text") from None
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{i}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows
