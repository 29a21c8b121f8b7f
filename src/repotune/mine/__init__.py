"""The mine stage: a git repository in, `commits.parquet` and `mine_stats.json` out, so later
stages never touch git and the numbers behind a dataset can be read without rerunning."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from repotune.config import MineConfig
from repotune.fsutil import write_json
from repotune.mine.history import mine_commits
from repotune.mine.store import read_commits, write_commits
from repotune.records import Commit

__all__ = ["mine_commits", "read_commits", "run_mine", "write_commits"]


def run_mine(repo: Path, out_dir: Path, cfg: MineConfig) -> dict[str, Any]:
    """Mine `repo` into `out_dir`; return the stats also written to mine_stats.json."""
    out_dir = Path(out_dir)
    commits, dropped = mine_commits(Path(repo), cfg)
    write_commits(out_dir / "commits.parquet", commits)
    stats = {"repo": str(repo), "ref": cfg.ref, **mine_stats(commits, dropped)}
    write_json(out_dir / "mine_stats.json", stats)
    return stats


def mine_stats(commits: list[Commit], dropped: dict[str, int]) -> dict[str, Any]:
    """Counts a user checks first when a dataset is smaller than expected."""
    files = [f for c in commits for f in c.files]
    skipped = Counter(f.skip_reason for f in files if f.skip_reason)
    languages = Counter(f.language or "unknown" for f in files)
    return {
        "kept": len(commits),
        "dropped": dict(sorted(dropped.items())),
        "files_kept": len(files),
        "files_without_text": dict(sorted(skipped.items())),
        "languages": dict(languages.most_common()),
    }
