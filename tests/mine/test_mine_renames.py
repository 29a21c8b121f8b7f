"""Rename pairing checked against `git log -M --numstat` on renames built near the threshold.

Mining pairs renames with libgit2, whose similarity is not git's (docs/mine.md): both cut
at 50 %, and where a file's lines are alike in length the two agree to the point; where kept
and changed lines differ in length, git (which weighs bytes) and libgit2 (which weighs lines)
can decide a pair differently. These tests pin both halves of that statement.
"""

from __future__ import annotations

import pytest

from repotune.records import Commit
from tests.mine.test_mine import GitRepo, mine

WIDTH = 48  # every line this many bytes, newline included, so lines and bytes weigh alike


def _line(tag: str, i: int, width: int = WIDTH) -> str:
    head = f"{tag}_{i:03d} = "
    return head + "v" * (width - len(head) - 1) + "\n"


def _kept_share(tag: str, percent: int, n: int = 100) -> tuple[str, str]:
    """A file of n equal lines and its successor keeping the first `percent` % of them."""
    old = [_line(tag, i) for i in range(n)]
    keep = n * percent // 100
    new = old[:keep] + [_line(tag + "_new", i) for i in range(keep, n)]
    return "".join(old), "".join(new)


def _renamed(repo: GitRepo, pairs: dict[str, tuple[str, str, str]]) -> str:
    """One commit that deletes each old path and adds its new path with the new text."""
    repo.commit("add", {old: text for old, (text, _, _) in pairs.items()})
    files: dict[str, str | bytes | None] = {old: None for old in pairs}
    files.update({new: after for _, after, new in pairs.values()})
    return repo.commit("move", files)


def git_pairs(repo: GitRepo, sha: str) -> dict[str, str | None]:
    """New path -> old path (None: not a rename) from `git log -M --numstat -z`."""
    out = repo.git("log", "-1", "--numstat", "-M", "-z", "--format=", sha)
    tokens = iter(out.split("\0"))
    pairs: dict[str, str | None] = {}
    for token in tokens:
        token = token.strip("\n")
        if not token:
            continue
        _, _, path = token.split("\t")
        if path:
            pairs[path] = None
        else:
            old, new = next(tokens), next(tokens)
            pairs[new] = old
    return pairs


def mined_pairs(repo: GitRepo, sha: str) -> dict[str, str | None]:
    commits, _ = mine(repo, max_changed_lines=None)
    commit: Commit = next(c for c in commits if c.sha == sha)
    return {
        f.path: f.old_path if f.change_type == "renamed" else None
        for f in commit.files
        if f.new_path is not None or f.change_type == "deleted"
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    return GitRepo(tmp_path_factory.mktemp("renames") / "repo")


def test_renames_near_the_threshold_pair_as_git_pairs_them(repo: GitRepo) -> None:
    """45 % and 48 % similar: add + delete; 50 %, 52 %, 55 %: renamed, with git's counts."""
    shares = (45, 48, 50, 52, 55)
    moves = {}
    for p in shares:
        old, new = _kept_share(f"s{p}", p)
        moves[f"old/s{p}.py"] = (old, new, f"new/s{p}.py")
    sha = _renamed(repo, moves)
    git = git_pairs(repo, sha)
    assert git == mined_pairs(repo, sha)
    renamed = {new: old for new, old in git.items() if old}
    assert renamed == {f"new/s{p}.py": f"old/s{p}.py" for p in (50, 52, 55)}
    commits, _ = mine(repo, max_changed_lines=None)
    row = next(f for c in commits if c.sha == sha for f in c.files if f.path == "new/s52.py")
    assert (row.added, row.deleted) == (48, 48)  # what `git log --numstat -M` shows


def test_where_bytes_and_lines_disagree_the_pairing_is_libgit2s(repo: GitRepo) -> None:
    """The documented difference, pinned: long lines kept and short ones changed is a rename
    to git (66 % of the bytes kept) and not to libgit2 (40 % of the lines); short lines kept
    and long ones changed is the reverse (62 % of the lines, 29 % of the bytes)."""
    kept = [_line("keep", i, 60) for i in range(20)]
    long_kept = (
        "".join(kept + [_line("o", i, 20) for i in range(30)]),
        "".join(kept + [_line("n", i, 20) for i in range(30)]),
        "b/long_kept.py",
    )
    kept = [_line("k", i, 10) for i in range(50)]
    short_kept = (
        "".join(kept + [_line("old", i, 40) for i in range(30)]),
        "".join(kept + [_line("new", i, 40) for i in range(30)]),
        "b/short_kept.py",
    )
    sha = _renamed(repo, {"a/long_kept.py": long_kept, "a/short_kept.py": short_kept})
    git, ours = git_pairs(repo, sha), mined_pairs(repo, sha)
    assert git["b/long_kept.py"] == "a/long_kept.py" and ours["b/long_kept.py"] is None
    assert git["b/short_kept.py"] is None and ours["b/short_kept.py"] == "a/short_kept.py"


def test_exact_renames_among_identical_sources(repo: GitRepo) -> None:
    """One file moved, an identical one deleted: git pairs the source with the same name,
    libgit2 the first in path order. The text and counts are the same either way."""
    text = "".join(_line("same", i) for i in range(10))
    repo.commit("two copies", {"a/first.py": text, "b/moved.py": text})
    sha = repo.commit("move one", {"a/first.py": None, "b/moved.py": None, "c/moved.py": text})
    assert git_pairs(repo, sha)["c/moved.py"] == "b/moved.py"
    assert mined_pairs(repo, sha)["c/moved.py"] == "a/first.py"
