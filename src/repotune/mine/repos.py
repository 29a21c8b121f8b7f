"""Several repositories in one run: each mined on its own into RUN/repos/<name>/ (resumable
each, as `run_mine` is), a few at a time in worker processes, then joined into one
RUN/commits.parquet whose rows name their repository (`repo`), newest first.

Within a repository, `run_mine` already drops repeated changes. Across repositories the same
file is often vendored or copied: a file change whose changed lines *and* resulting text were
already seen in an older commit of another repository is dropped here, so the copy cannot sit
on both sides of the time split (build cuts every repository at one date). With mine.dedup
"near" (the default) a near copy goes too (a vendored file with its licence header changed or
one line patched), found as near-duplicate commits are within a repository (mine/dedup.py).
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repotune.commits import COMMIT_SCHEMA, read_commits, write_commits
from repotune.config import MineConfig
from repotune.errors import UserError
from repotune.fsutil import write_json
from repotune.mine.dedup import LSH, NUM_PERM, minhash_crc
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
    stats = join_repos(specs, out_dir, Copies(cfg.dedup, cfg.near_dup_threshold))
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


def join_repos(
    specs: list[RepoSpec], out_dir: Path, copies: Copies | None = None
) -> dict[str, Any]:
    """RUN/commits.parquet from each repository's, cross-repository copies dropped (`copies`:
    which count, by default mine.dedup's default), and the run's mine stats: totals plus each
    repository's own."""
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
    kept, gone = drop_copies(rows, copies)
    for name, n in gone.items():
        per_repo[name]["cross_repo_copies"] = n
        per_repo[name]["kept"] = sum(r["repo"] == name for r in kept)
    dropped["cross_repo_copy"] += sum(gone.values())
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


def change_lines(f: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """What change_key hashes, as two sets to compare: the changed lines (sign kept) and the
    lines of the text the change leaves, whitespace collapsed, each line as its CRC-32 (sorted,
    unique). None: no changed line or no text (only the exact key counts then)."""
    if f["skip_reason"] is not None:
        return None
    changed = [
        line[0] + " ".join(line[1:].split())
        for hunk in f["hunks"]
        for line in hunk["lines"]
        if line[:1] != " "
    ]
    text = f["after"] if f["after"] is not None else f["before"]
    lines = [" ".join(t.split()) for t in (text or "").splitlines()]
    if not changed or not any(lines):
        return None
    return _crc_set(changed), _crc_set(t for t in lines if t)


def _crc_set(lines: Iterable[str]) -> np.ndarray:
    crcs = [zlib.crc32(line.encode("utf-8", "surrogatepass")) for line in lines]
    return np.unique(np.array(crcs, dtype=np.uint32))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique arrays."""
    both = np.intersect1d(a, b, assume_unique=True).size
    return both / (a.size + b.size - both)


class Copies:
    """The file changes kept so far, each with the repository that made it first. `mode` is
    mine.dedup's: "exact" drops a change whose change_key another repository made first,
    "near" also one whose changed lines and text lines both have a Jaccard similarity of at
    least `threshold` (mine.near_dup_threshold) with such a change, "off" drops none.

    Both must be near: the same vendored file patched differently in two repositories keeps
    both patches (the texts are near, the changed lines are not), and the same line added to
    two different files keeps both (the changed lines are equal, the texts are not). Lines
    are compared as sets, so at 0.85 one line may differ in a file of 13 lines or more.

    Candidates come from MinHash LSH over the changed lines (mine/dedup.py's), its bands set
    for a similarity 0.25 below the threshold, and are confirmed with the exact Jaccard: at
    0.85, LSH bands set for 0.85 itself find a pair at 0.9 six times in ten, these find 999 in
    1000 (and make a pair at 0.5 a candidate 15 times in 100, a cheap set intersection each).
    A change from the same repository is never a copy: `run_mine` judged those."""

    def __init__(self, mode: str = "near", threshold: float = 0.85) -> None:
        self.mode = mode
        self.threshold = threshold
        self.exact: dict[bytes, str] = {}
        self.lsh = LSH(max(threshold - 0.25, 0.05), NUM_PERM) if mode == "near" else None
        self.kept: list[tuple[str, np.ndarray, np.ndarray]] = []  # repo, changed, text lines

    def keep(self, f: dict[str, Any], repo: str) -> bool:
        """Whether file change `f` of `repo` is no copy of another repository's earlier one
        (then it is remembered). Feed changes oldest first."""
        if self.mode == "off" or (key := change_key(f)) is None:
            return True
        if (first := self.exact.get(key)) is not None:
            return first == repo
        lines = change_lines(f) if self.lsh is not None else None
        sketch = None
        if lines is not None:
            sketch = minhash_crc(lines[0])
            if self._near(repo, sketch, *lines):
                return False
        self._add(key, repo, lines, sketch)
        return True

    def remember(self, rows: Iterable[dict[str, Any]]) -> Copies:
        """Every file change of `rows` (older rows, all kept: a refresh's), oldest first, so
        later rows are checked against them."""
        if self.mode == "off":
            return self
        for row in _oldest_first(rows):
            for f in row["files"]:
                if (key := change_key(f)) is not None and key not in self.exact:
                    lines = change_lines(f) if self.lsh is not None else None
                    sketch = None if lines is None else minhash_crc(lines[0])
                    self._add(key, row["repo"], lines, sketch)
        return self

    def _near(self, repo: str, sketch: np.ndarray, changed: np.ndarray, text: np.ndarray) -> bool:
        assert self.lsh is not None
        for i in self.lsh.query(sketch):
            other, c, t = self.kept[i]
            if (
                other != repo
                and jaccard(c, changed) >= self.threshold
                and jaccard(t, text) >= self.threshold
            ):
                return True
        return False

    def _add(
        self,
        key: bytes,
        repo: str,
        lines: tuple[np.ndarray, np.ndarray] | None,
        sketch: np.ndarray | None,
    ) -> None:
        self.exact[key] = repo
        if self.lsh is not None and lines is not None and sketch is not None:
            self.lsh.insert(len(self.kept), sketch)
            self.kept.append((repo, *lines))


def drop_copies(
    rows: list[dict[str, Any]], copies: Copies | None = None
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Rows (each with `repo`) newest first, without file changes first made in another
    repository; a commit left with no file goes. `copies` (default: near copies at 0.85, as
    mine.dedup's default) may already hold older rows' changes (a refresh: `remember`).
    Returns (kept rows, commits dropped per repo)."""
    copies = Copies() if copies is None else copies
    kept: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for row in _oldest_first(rows):
        files = [f for f in row["files"] if copies.keep(f, row["repo"])]
        if files:
            kept.append({**row, "files": files})
        else:
            dropped[row["repo"]] += 1
    kept.reverse()
    return kept, dropped


def _oldest_first(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["committer_time"], r["repo"], r["sha"]))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """commits.parquet as plain rows, `repo` None in a run of one."""
    return [c.to_dict() for c in read_commits(path)]
