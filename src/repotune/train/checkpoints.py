"""Which checkpoint a run resumes from.

Checkpoints are the Trainer's own folders (`checkpoint-N`: adapter or model, optimizer,
scheduler, RNG and trainer state), so resuming restores the step count and the learning-rate
schedule exactly. The Trainer writes `trainer_state.json` last (and not atomically), so a folder
without it, or with half of it, was cut short by a kill and is skipped (and removed) rather
than crashing the resume.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from repotune.fsutil import atomic_write_text

STATE_FILE = "trainer_state.json"
STAMP_FILE = "fingerprint.txt"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoint folders, oldest step first."""
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def prepare_resume(ckpt_dir: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint for this fingerprint, or None to start fresh.

    Checkpoints of other data or settings are removed, as are incomplete ones. Call it on the
    main process only; the others wait for it and then call `last_complete`.
    """
    stamp = ckpt_dir / STAMP_FILE
    if ckpt_dir.is_dir() and (not stamp.is_file() or stamp.read_text() != fingerprint):
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file():
        atomic_write_text(stamp, fingerprint)  # a torn stamp would discard every checkpoint
    for folder in checkpoints(ckpt_dir):
        if state(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
    return last_complete(ckpt_dir)


def last_complete(ckpt_dir: Path) -> Path | None:
    done = [p for p in checkpoints(ckpt_dir) if state(p) is not None]
    return done[-1] if done else None


def state(folder: Path) -> dict | None:
    """The Trainer state a checkpoint was saved with; None if the save was cut short."""
    try:
        found = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "global_step" in found else None
