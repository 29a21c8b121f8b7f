"""Which commits are mined: history filters, ranges, odd repositories and their error lines."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from repotune import cli
from repotune.config import MineConfig
from repotune.mine import read_commits, run_mine
from repotune.mine.select import author_filter, message_reason
from tests.mine.test_mine import (
    T0,
    GitRepo,
    by_sha,
    file_at,
    git_numstat,
    git_show,
    history,
    lines,
    mine,
)

__all__ = ["history"]  # the fixture, shared with test_mine.py

ALL_RULES = ["empty", "merge", "revert", "version_bump"]


def commit_as(repo: GitRepo, message: str, files: dict | None = None, author: str = "") -> str:
    """GitRepo.commit with another author and possibly an empty message."""
    repo.write(files or {})
    if files:
        repo.git("add", "-A", "--", *files)
    repo.time += 100
    extra = ["--author", author] if author else []
    repo.git("commit", "-q", "--allow-empty", "--allow-empty-message", *extra, "-m", message)
    return repo.git("rev-parse", "HEAD").strip()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Fix the parser for empty input", None),
        ("", "empty_message"),
        ("   \n\n", "empty_message"),
        ("Merge branch 'main' into feature", "merge_message"),
        ("Merge pull request #12 from ada/fix", "merge_message"),
        ("Merge two helpers into one", None),
        ('Revert "Add caching"\n\nThis reverts commit 0123456789abcdef.', "revert"),
        ("Undo it\n\nThis reverts commit 0123456789abcdef.", "revert"),
        ("Reverse the list before printing", None),
        ("Bump version to 1.2.3", "version_bump"),
        ("v2.34.0", "version_bump"),
        ("1.0.0", "version_bump"),
        ("Release 3.1", "version_bump"),
        ("chore(release): 1.4.0", "version_bump"),
        ("Bump actions/checkout from 4.1.0 to 4.2.0", "version_bump"),
        ("Update version to 0.9.1", "version_bump"),
        ("Bump the timeout for slow disks", None),
        ("Release the lock before returning", None),
        ("Support Python 3.12", None),
    ],
)
def test_message_filters(message: str, reason: str | None) -> None:
    assert message_reason(message, ALL_RULES) == reason


def test_message_filters_can_be_turned_off() -> None:
    assert message_reason("", []) is None
    assert message_reason("v1.2.3", ["empty", "revert"]) is None


@pytest.mark.parametrize(
    ("name", "email", "excluded"),
    [
        ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com", True),
        ("renovate-bot", "bot@renovateapp.com", True),
        ("github-actions", "41898282+github-actions[bot]@users.noreply.github.com", True),
        ("Ada Lovelace", "ada@example.com", False),
        ("b", "o@t", False),  # `[bot]` is literal text, not a character class
        ("Talbot", "talbot@example.com", False),
    ],
)
def test_default_bot_authors(name: str, email: str, excluded: bool) -> None:
    assert author_filter(MineConfig().exclude_authors)(name, email) is excluded


def test_author_globs_match_name_email_or_both_ignoring_case() -> None:
    assert author_filter(["*@CORP.example"])("Ada", "ada@corp.example")
    assert author_filter(["ada lovelace"])("Ada Lovelace", "ada@example.com")
    assert author_filter(["Ada* <*@example.com>"])("Ada Lovelace", "ada@example.com")
    assert not author_filter(["*@corp.example"])("Ada", "ada@example.com")
    assert not author_filter([])("anyone", "a@b")


@pytest.fixture(scope="module")
def filtered(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, dict[str, str]]:
    r = GitRepo(tmp_path_factory.mktemp("filtered") / "repo")
    s = {"root": commit_as(r, "Initial import", {"a.py": "x = 1\n", "README.md": "# r\n"})}
    s["bump"] = commit_as(r, "Bump version to 1.2.3", {"a.py": "x = 2\n"})
    s["bot"] = commit_as(r, "Update deps", {"a.py": "x = 3\n"}, author="dependabot[bot] <b@x>")
    s["empty_msg"] = commit_as(r, "", {"a.py": "x = 4\n"})
    s["revert"] = commit_as(r, 'Revert "x = 4"', {"a.py": "x = 3\n"})
    s["docs"] = commit_as(r, "Describe the module", {"README.md": "# r\n\nMore.\n"})
    s["two"] = commit_as(r, "Touch both files", {"a.py": "x = 5\n", "b.py": "y = 1\n"})
    s["last"] = commit_as(r, "Use a constant", {"a.py": "X = 5\n"})
    return r, s


def test_history_filters_count_by_reason(filtered: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = filtered
    commits, dropped = mine(repo)
    assert [c.sha for c in commits] == [s["last"], s["two"], s["docs"], s["root"]]
    assert dropped == {"version_bump": 1, "excluded_author": 1, "empty_message": 1, "revert": 1}
    everything, dropped = mine(repo, exclude_authors=[], drop_messages=[])
    assert len(everything) == 8 and dropped == {}


def test_dates(filtered: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = filtered
    # committer times are T0 + 100 k + 5 for the k-th commit
    since = datetime.fromtimestamp(T0 + 600, tz=UTC)
    until = datetime.fromtimestamp(T0 + 800, tz=UTC)
    commits, dropped = mine(repo, since=since.isoformat(), until=until.isoformat())
    assert [c.sha for c in commits] == [s["two"], s["docs"]]
    assert dropped == {"outside_dates": 6}  # dates are checked before authors and messages
    naive = datetime.fromtimestamp(T0 + 600, tz=UTC).replace(tzinfo=None)  # taken as UTC
    assert len(mine(repo, since=naive)[0]) == 3


def test_range_and_max_commits(filtered: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = filtered
    commits, dropped = mine(repo, ref=f"{s['revert']}..HEAD")
    assert [c.sha for c in commits] == [s["last"], s["two"], s["docs"]] and dropped == {}
    commits, _ = mine(repo, ref=f"{s['root']}..{s['docs']}")
    assert [c.sha for c in commits] == [s["docs"]]
    commits, dropped = mine(repo, max_commits=2)  # newest 2 that pass the history filters
    assert [c.sha for c in commits] == [s["last"], s["two"]] and dropped == {}


def test_languages_and_max_changed_files(filtered: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = filtered
    commits, dropped = mine(repo, languages=["markdown"])
    assert [c.sha for c in commits] == [s["docs"], s["root"]]
    assert {f.path for c in commits for f in c.files} == {"README.md"}
    assert dropped["no_files_after_filters"] == 2  # two, last (bump went for its message)
    commits, dropped = mine(repo, max_changed_files=1)
    assert s["two"] not in by_sha(commits) and s["root"] not in by_sha(commits)
    assert dropped["too_many_files"] == 2


def test_merges_against_first_parent(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    # dedup off: the merge brings in exactly the feature commit's change, a duplicate
    commits = by_sha(mine(repo, include_merges=True, max_changed_lines=None, dedup="off")[0])
    merge = commits[s["merge"]]
    assert merge.parents[0] == s["readme"] and len(merge.parents) == 2
    assert {f.path: (f.added, f.deleted) for f in merge.files} == git_numstat(repo, s["merge"])
    assert [f.path for f in merge.files] == ["src/util.py"]


def test_copies(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "repo")
    body = lines(30, "value =")
    r.commit("Add a", {"a.py": body})
    sha = r.commit("Split a into b", {"a.py": body + "extra = 1\n", "b.py": body + "more = 2\n"})
    [c] = [c for c in mine(r, find_copies=True)[0] if c.sha == sha]
    b = file_at(c, "b.py")
    assert (b.change_type, b.old_path, b.before) == ("copied", "a.py", body)
    assert (b.added, b.deleted) == (1, 0)
    out = r.git("log", "-1", "--numstat", "-C", "--format=", sha)
    assert "1\t0\ta.py => b.py" in out
    [plain] = [c for c in mine(r, max_changed_lines=None)[0] if c.sha == sha]
    assert file_at(plain, "b.py").change_type == "added"


def test_encoding_fallback(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    commits = by_sha(mine(repo, encoding_fallback="latin-1")[0])
    f = file_at(commits[s["latin"]], "legacy/latin.c")
    assert (f.skip_reason, f.encoding) == (None, "latin-1")
    assert f.after == "/* caf\xe9 */\nint x;\n"
    assert f.hunks[0].lines == ["+/* caf\xe9 */", "+int x;"]
    with pytest.raises(ValueError, match="unknown encoding"):
        MineConfig(encoding_fallback="klingon")


def test_hash_authors(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "repo")
    r.commit("Add a\n\nSigned-off-by: Ada Lovelace <ada@example.com>\n", {"a.py": "a = 1\n"})
    commit_as(r, "Add b", {"b.py": "b = 1\n"}, author="Grace <grace@example.com>")
    r.commit("Edit a", {"a.py": "a = 2\n"})
    commits, _ = mine(r, hash_authors=True)
    authors = [c.author for c in commits]
    assert authors[0] == authors[2] != authors[1] and authors[0].startswith("author-")
    text = repr([c.message for c in commits]) + repr(authors)
    assert "Ada" not in text and "ada@example.com" not in text and "Grace" not in text
    assert commits[2].message.endswith(f"Signed-off-by: {authors[0]}\n")
    salted, _ = mine(r, hash_authors=True, author_salt="pepper")
    assert salted[0].author != authors[0]


# --- odd repositories -----------------------------------------------------------------------


def clone(src: GitRepo, dest: Path, *args: str) -> Path:
    subprocess.run(
        ["git", "clone", "-q", *args, f"file://{src.path}", str(dest)],
        check=True,
        capture_output=True,
    )
    return dest


def test_shallow_clone(tmp_path: Path, filtered: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = filtered
    shallow = clone(repo, tmp_path / "shallow", "--depth", "3")
    warnings: list[str] = []
    stats = run_mine(shallow, tmp_path / "run", MineConfig(), warn=warnings.append)
    assert len(warnings) == 1 and "shallow clone" in warnings[0]
    assert "history is truncated" in warnings[0]
    assert stats["shallow"] is True
    assert stats["dropped"] == {"shallow_boundary": 1}  # its diff would be the whole tree
    assert [c.sha for c in read_commits(tmp_path / "run" / "commits.parquet")] == [
        s["last"],
        s["two"],
    ]


def test_bare_repository_and_worktree(tmp_path: Path, history: tuple[GitRepo, dict[str, str]]):
    repo, s = history
    expected = mine(repo)[0]
    bare = clone(repo, tmp_path / "bare.git", "--bare")
    assert mine_path(bare) == expected
    worktree = tmp_path / "wt"
    repo.git("worktree", "add", "-q", "--detach", str(worktree), s["fix"])
    try:
        commits = mine_path(worktree)  # HEAD of the worktree, not of the main checkout
        assert [c.sha for c in commits] == [s["fix"], s["root"]]
        assert commits[0].files[0].before == git_show(repo, s["root"], "src/app.py")
    finally:
        repo.git("worktree", "remove", "--force", str(worktree))


def mine_path(path: Path, **cfg: object) -> list:
    from repotune.mine.history import mine_commits

    return mine_commits(path, MineConfig(**cfg))[0]


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str):
    """`repotune ARGS` in this process (fast): (exit code, captured output)."""
    monkeypatch.setattr(sys, "argv", ["repotune", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    ("make", "ref", "message"),
    [
        ("plain", "HEAD", "not a git repository: {path}"),
        ("empty", "HEAD", "repository has no commits: {path}"),
        ("missing", "HEAD", "repository path does not exist: {path}"),
        ("repo", "nope", "unknown ref 'nope' in {path}"),
        ("repo", "nope..HEAD", "unknown ref 'nope' in {path}"),
        ("repo", "HEAD...HEAD~1", "symmetric ranges (A...B) are not supported"),
    ],
)
def test_error_lines(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    make: str,
    ref: str,
    message: str,
) -> None:
    path = tmp_path / make
    if make == "plain":
        path.mkdir()
    elif make == "empty":
        GitRepo(path)
    elif make == "repo":
        GitRepo(path).commit("One", {"a.py": "a = 1\n"})
    code, out = run_cli(
        monkeypatch, capsys, "mine", str(path), "--out", str(tmp_path / "run"), "--set",
        f"mine.ref={ref}",
    )  # fmt: skip
    assert code == 2
    err = [line for line in out.err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ")
    assert message.format(path=path) in err[0]
    assert not (tmp_path / "run" / "commits.parquet").exists()


def test_cli_stats_table(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    filtered: tuple[GitRepo, dict[str, str]],
) -> None:
    repo, _ = filtered
    code, out = run_cli(monkeypatch, capsys, "mine", str(repo.path), "-o", str(tmp_path), "--stats")
    assert code == 0
    assert "mined 4 commits" in out.err
    for text in ("kept", "version bump", "excluded author", "python", "changed lines"):
        assert text in out.out


def test_parallel_run_writes_what_mining_in_memory_gives(
    tmp_path: Path, history: tuple[GitRepo, dict[str, str]]
) -> None:
    repo, _ = history
    cfg = MineConfig(max_changed_lines=None, shard_size=3, workers=2)
    stats = run_mine(repo.path, tmp_path, cfg)
    assert stats["workers"] == 2 and stats["shards"] == 4
    assert read_commits(tmp_path / "commits.parquet") == mine(repo, max_changed_lines=None)[0]
