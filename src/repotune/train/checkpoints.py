"""Which checkpoint a run resumes from.

Checkpoints are the Trainer's own folders (`checkpoint-N`: adapter or model, optimizer,
scheduler, RNG and trainer state), so resuming restores the step count and the learning-rate
schedule exactly. The Trainer writes `trainer_state.json` last, so a folder without it was cut
short by a kill and is skipped (and removed) rather than crashing the resume.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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
    stamp.write_text(fingerprint)
    for folder in checkpoints(ckpt_dir):
        if not (folder / STATE_FILE).is_file():
            shutil.rmtree(folder, ignore_errors=True)
    return last_complete(ckpt_dir)


def last_complete(ckpt_dir: Path) -> Path | None:
    done = [p for p in checkpoints(ckpt_dir) if (p / STATE_FILE).is_file()]
    return done[-1] if done else None
