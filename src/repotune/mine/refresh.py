"""Mine only what is new: each repository of a run is walked from its tip with the commit it
was last mined up to hidden (`A..B`), so libgit2 walks and diffs the new commits alone and the
cost grows with them, not with the history. The new rows are mined as any run's are (into
RUN/refresh/<index>/<repo>/, resumable), checked against the old rows for repeated changes (and
for copies across repositories, exact or near as mine.dedup says), and put in front of
RUN/commits.parquet.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repotune.commits import write_commits
from repotune.config import MineConfig
from repotune.errors import UserError
from repotune.fsutil import write_json
from repotune.mine.dedup import Deduper, signature
from repotune.mine.repos import HEADS_FILE, Copies, RepoSpec, drop_copies, read_rows, tip
from repotune.records import Commit
from repotune.rundir import MINE_STATS, commits_path, mine_stats


def run_specs(stats: dict[str, Any]) -> tuple[list[RepoSpec], bool]:
    """The run's repositories from its mine_stats.json, and whether it has several."""
    if stats.get("repos"):
        specs = [
            RepoSpec(r["path"], r["name"], r.get("weight", 1.0), r.get("branch"))
            for r in stats["repos"].values()
        ]
        return specs, True
    if not stats.get("repo"):
        raise UserError("the run folder has no mine_stats.json: run `repotune run REPO` first")
    return [RepoSpec(str(stats["repo"]), "repo")], False


def refresh_commits(
    run_dir: Path, cfg: MineConfig, index: int, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Add the commits made since the last mine to RUN/commits.parquet; return what the
    refresh found (also appended to mine_stats.json's `refreshes`)."""
    from repotune.mine import run_mine

    run_dir = Path(run_dir)
    stats = mine_stats(run_dir)
    specs, several = run_specs(stats)
    old = read_rows(commits_path(run_dir))
    heads = _read_json(run_dir / HEADS_FILE)
    scratch = run_dir / "refresh" / f"{index:03d}"
    added: list[dict[str, Any]] = []
    found: dict[str, Any] = {}
    new_heads: dict[str, str] = {}
    for spec in specs:
        name = spec.name if several else None
        if not Path(spec.path).expanduser().exists():
            raise UserError(f"repository {spec.path} (from mine_stats.json) not found")
        now = tip(spec, cfg)
        before = heads.get(spec.name) or _newest(old, name)
        new_heads[spec.name] = now
        if before == now:
            found[spec.name] = {"considered": 0, "kept": 0}
            continue
        part = cfg.model_copy(update={"ref": f"{before}..{now}"} if before else {})
        mined = run_mine(Path(spec.path), scratch / spec.name, part, warn=_stderr)
        rows = [{**r, "repo": name} for r in read_rows(commits_path(scratch / spec.name))]
        added += rows
        found[spec.name] = {"considered": mined["considered"], "kept": len(rows)}
        found[spec.name]["dropped"] = mined["dropped"]
    new, repeats = _not_repeated(old, added, cfg)
    copies: Counter[str] = Counter()
    if several and new:
        seen = Copies(cfg.dedup, cfg.near_dup_threshold).remember(old)
        new, copies = drop_copies(new, seen)
    new.sort(key=lambda r: r["committer_time"], reverse=True)
    write_commits(commits_path(run_dir), [Commit.from_dict(r) for r in new + old])
    write_json(run_dir / HEADS_FILE, new_heads)  # after the rows: a rerun re-finds, dedup drops
    result = {
        "index": index,
        "considered": sum(f["considered"] for f in found.values()),
        "kept": len(new),
        "repeats_of_old": repeats,
        "cross_repo_copies": sum(copies.values()),
        "repos": found,
    }
    stats["kept"] = len(new) + len(old)
    stats["refreshes"] = [*stats.get("refreshes", []), result]
    write_json(run_dir / MINE_STATS, stats)
    shutil.rmtree(scratch, ignore_errors=True)
    say(f"  {result['kept']} new commits kept of {result['considered']} new")
    return result


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _newest(rows: list[dict[str, Any]], repo: str | None) -> str | None:
    """A run mined before heads were recorded: its newest kept commit stands for the head
    (commits after it that filters dropped are walked again, and dropped again)."""
    mine = [r for r in rows if r.get("repo") == repo]
    return max(mine, key=lambda r: r["committer_time"])["sha"] if mine else None


def _not_repeated(
    old: list[dict[str, Any]], new: list[dict[str, Any]], cfg: MineConfig
) -> tuple[list[dict[str, Any]], int]:
    """New rows whose change no older row of the same repository made (mine.dedup's rule,
    applied across the old and new rows as one history)."""
    if cfg.dedup == "off" or not new:
        return new, 0
    near = cfg.dedup == "near"
    dedupers: dict[str | None, Deduper] = {}

    def check(row: dict[str, Any]) -> str | None:
        d = dedupers.setdefault(row.get("repo"), Deduper(cfg.dedup, cfg.near_dup_threshold))
        return d.check(row["sha"], *signature(row["files"], near=near))

    for row in sorted(old, key=lambda r: r["committer_time"]):
        check(row)
    kept = [r for r in sorted(new, key=lambda r: r["committer_time"]) if check(r) is None]
    return kept, len(new) - len(kept)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
