"""Several repositories in one run: each mined on its own into RUN/repos/<name>/ (resumable
each, as `run_mine` is), a few at a time in worker processes, then joined into one
RUN/commits.parquet whose rows name their repository (`repo`), newest first.

Within a repository, `run_mine` already drops repeated changes. Across repositories the same
file is often vendored or copied: a file change whose changed lines *and* resulting text were
already seen in an older commit of another repository is dropped here, so the copy cannot sit
on both sides of the time split (build cuts every repository at one date).
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repotune.commits import COMMIT_SCHEMA, read_commits, write_commits
from repotune.config import MineConfig
from repotune.errors import UserError
from repotune.fsutil import write_json
from repotune.mine.select import open_repo, resolve_ref
from repotune.records import Commit
from repotune.rundir import MINE_STATS, commits_path, mine_stats

REPOS_DIR = "repos"  # RUN/repos/<name>/: each repository's own mine output
HEADS_FILE = "heads.json"  # RUN/heads.json: the commit each repository was mined up to
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RepoSpec:
    """One repository of a run: where it is, what it is called in records and reports, how
    much its training rows count, and which branch is mined (None: mine.ref)."""

    path: str
    name: str
    weight: float = 1.0
    branch: str | None = None

    def ref(self, default: str) -> str:
        return self.branch or default


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    branch: str | None = None
    name: str | None = None


def specs_from_paths(paths: Iterable[Path]) -> list[RepoSpec]:
    return _named([_Entry(path=str(Path(p).expanduser().resolve())) for p in paths])


def load_repo_list(path: Path) -> list[RepoSpec]:
    """A YAML list, one repository per item: a path, or `{path, weight, branch, name}`.
    Relative paths are relative to the list file, so the list travels with the repositories."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read repository list {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, list) or not data:
        raise UserError(f"{path}: expected a YAML list of repositories (`- path: ../api`)")
    entries = []
    for i, item in enumerate(data, 1):
        try:
            entry = _Entry(path=item) if isinstance(item, str) else _Entry.model_validate(item)
        except ValidationError as err:
            e = err.errors()[0]
            where = ".".join(str(p) for p in e["loc"]) or "item"
            raise UserError(f"{path}: repository {i}: {where}: {e['msg']}") from None
        entry.path = str((path.parent / Path(entry.path).expanduser()).resolve())
        entries.append(entry)
    return _named(entries)


def _named(entries: list[_Entry]) -> list[RepoSpec]:
    """Names from the folder (a `.git` suffix dropped), made unique with -2, -3, ..."""
    seen: Counter[str] = Counter()
    specs = []
    for e in entries:
        base = _NAME.sub("-", e.name or Path(e.path).name.removesuffix(".git")).strip("-.")
        base = base or "repo"
        seen[base] += 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        specs.append(RepoSpec(e.path, name, e.weight, e.branch))
    if len({s.path for s in specs}) != len(specs):
        raise UserError("a repository is listed twice")
    return specs


def tip(spec: RepoSpec, cfg: MineConfig) -> str:
    """The sha of the commit the repository's ref (or a range's end) names now."""
    ref = spec.ref(cfg.ref)
    end = (ref.split("..", 1)[1] or "HEAD") if ".." in ref else ref
    path = Path(spec.path)
    return str(resolve_ref(open_repo(path), path, end).id)


# --- mining ----------------------------------------------------------------------------------


def mine_repos(
    specs: list[RepoSpec], out_dir: Path, cfg: MineConfig, say: Callable[[str], None]
) -> dict[str, Any]:
    """Mine every repository into RUN/repos/<name>/ and join them into RUN/commits.parquet.
    Returns the joined mine_stats.json."""
    from repotune.mine.shards import _context, default_workers

    t0 = time.monotonic()
    out_dir = Path(out_dir)
    heads = {s.name: tip(s, cfg) for s in specs}  # bad paths and refs fail before any work
    at_once = min(cfg.repo_workers, len(specs))
    # the CPU budget (mine.workers) is shared: each repository's shards get a part of it
    each = max(1, (cfg.workers or default_workers()) // at_once)
    jobs = [(s, out_dir / REPOS_DIR / s.name, _repo_cfg(s, cfg, each)) for s in specs]
    if at_once <= 1:
        results = [_mine_one(*job) for job in jobs]
    else:
        with ProcessPoolExecutor(at_once, _context()) as pool:
            results = list(pool.map(_mine_one, *zip(*jobs, strict=True)))
    for spec, stats in zip(specs, results, strict=True):
        say(f"  {spec.name}: {stats['kept']} commits kept of {stats['considered']}")
    stats = join_repos(specs, out_dir)
    stats["seconds"] = round(time.monotonic() - t0, 3)
    stats["repo_workers"] = at_once
    write_json(out_dir / MINE_STATS, stats)
    write_json(out_dir / HEADS_FILE, heads)
    return stats


def _repo_cfg(spec: RepoSpec, cfg: MineConfig, workers: int) -> MineConfig:
    return cfg.model_copy(update={"ref": spec.ref(cfg.ref), "workers": workers})


def _mine_one(spec: RepoSpec, out: Path, cfg: MineConfig) -> dict[str, Any]:
    from repotune.mine import run_mine

    return run_mine(Path(spec.path), out, cfg, warn=lambda m: print(m, file=sys.stderr))


def join_repos(specs: list[RepoSpec], out_dir: Path) -> dict[str, Any]:
    """RUN/commits.parquet from each repository's, cross-repository copies dropped, and the
    run's mine stats: totals plus each repository's own."""
    rows: list[dict[str, Any]] = []
    per_repo: dict[str, Any] = {}
    dropped: Counter[str] = Counter()
    for spec in specs:
        folder = out_dir / REPOS_DIR / spec.name
        table = pq.read_table(commits_path(folder)).select(COMMIT_SCHEMA.names)
        rows += [{**r, "repo": spec.name} for r in table.to_pylist()]
        own = mine_stats(folder)
        dropped.update(own.get("dropped") or {})
        per_repo[spec.name] = {
            **asdict(spec),
            "kept": own.get("kept"),
            "considered": own.get("considered"),
            "dropped": own.get("dropped"),
        }
    kept, copies = drop_copies(rows)
    for name, n in copies.items():
        per_repo[name]["cross_repo_copies"] = n
        per_repo[name]["kept"] = sum(r["repo"] == name for r in kept)
    dropped["cross_repo_copy"] += sum(copies.values())
    write_commits(commits_path(out_dir), [Commit.from_dict(r) for r in kept])
    return {
        "repo": None,  # several: tree tasks need build.tree.repo
        "repos": per_repo,
        "kept": len(kept),
        "dropped": dict(sorted((k, v) for k, v in dropped.items() if v)),
        "considered": sum(p["considered"] or 0 for p in per_repo.values()),
    }


# --- copies across repositories ------------------------------------------------------------


def change_key(f: dict[str, Any]) -> bytes | None:
    """A file change as its changed lines (whitespace collapsed) and the text it leaves, with
    no path: a vendored file is the same change under `vendor/` and `third_party/`, while one
    `+import os` in two different files is not (their texts differ). None: no text kept."""
    if f["skip_reason"] is not None:
        return None
    h = hashlib.blake2b(digest_size=16)
    for hunk in f["hunks"]:
        for line in hunk["lines"]:
            if line[:1] != " ":
                h.update((line[0] + " ".join(line[1:].split()) + "\n").encode("utf-8", "replace"))
    text = f["after"] if f["after"] is not None else f["before"]
    h.update(b"\0" + " ".join((text or "").split()).encode("utf-8", "replace"))
    return h.digest()


def drop_copies(
    rows: list[dict[str, Any]], seen: dict[bytes, str] | None = None
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Rows (each with `repo`) newest first, without file changes first made in another
    repository; a commit left with no file goes. `seen` (key -> repository) carries the keys
    of older rows already kept (a refresh). Returns (kept rows, commits dropped per repo)."""
    seen = {} if seen is None else seen
    kept: list[dict[str, Any]] = []
    copies: Counter[str] = Counter()
    for row in sorted(rows, key=lambda r: (r["committer_time"], r["repo"], r["sha"])):
        files = []
        for f in row["files"]:
            key = change_key(f)
            first = seen.setdefault(key, row["repo"]) if key is not None else row["repo"]
            if first == row["repo"]:
                files.append(f)
        if files:
            kept.append({**row, "files": files})
        else:
            copies[row["repo"]] += 1
    kept.reverse()
    return kept, copies


def change_keys(rows: Iterable[dict[str, Any]]) -> dict[bytes, str]:
    """key -> repository of every file change of `rows`, oldest first wins."""
    seen: dict[bytes, str] = {}
    for row in sorted(rows, key=lambda r: (r["committer_time"], r["repo"], r["sha"])):
        for f in row["files"]:
            if (key := change_key(f)) is not None:
                seen.setdefault(key, row["repo"])
    return seen


def read_rows(path: Path) -> list[dict[str, Any]]:
    """commits.parquet as plain rows, `repo` None in a run of one."""
    return [c.to_dict() for c in read_commits(path)]
