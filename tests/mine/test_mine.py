"""Mining checked against git itself on repositories built here with the git CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from repotune.commits import read_commits, write_commits
from repotune.config import MineConfig
from repotune.errors import UserError
from repotune.mine import run_mine
from repotune.mine.history import mine_commits, path_filter
from repotune.records import Commit, FileChange

T0 = 1_700_000_000


class GitRepo:
    """A repository with deterministic, strictly increasing commit times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.time = T0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Ada Lovelace")
        self.git("config", "user.email", "ada@example.com")

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_DATE": f"{self.time} +0000",
            "GIT_COMMITTER_DATE": f"{self.time + 5} +0000",
        }
        out = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True
        )
        return out.stdout.decode("utf-8", errors="replace")

    def write(self, files: dict[str, str | bytes | None]) -> None:
        for name, data in files.items():
            p = self.path / name
            if data is None:
                p.unlink()
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                data = data.encode("utf-8")
            p.write_bytes(data)

    def commit(self, message: str, files: dict[str, str | bytes | None] | None = None) -> str:
        """Commit `files` (None deletes) on top of whatever is already staged."""
        self.write(files or {})
        if files:
            self.git("add", "-A", "--", *files)
        self.time += 100
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


def lines(n: int, word: str = "line") -> str:
    return "".join(f"{word} {i}\n" for i in range(n))


APP = "import os\n\n\ndef main():\n    return os.getcwd()\n"
APP2 = "import os\n\n\ndef main():\n    print('hi')\n    return os.getcwd()\n"
APP3 = "import os\n\n\ndef main():\n    print('hello')\n    return os.getcwd()\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, dict[str, str]]:
    """One repository with every case the miner must handle; shas by name."""
    r = GitRepo(tmp_path_factory.mktemp("history") / "repo")
    s: dict[str, str] = {}
    s["root"] = r.commit(
        "Initial import",
        {"src/app.py": APP, "README.md": "# demo\n", "docs/guide.md": "Read me.\n",
         "assets/logo.png": PNG},
    )  # fmt: skip
    s["fix"] = r.commit("Print a greeting in main\n\nLonger body.\n", {"src/app.py": APP2})
    r.git("checkout", "-q", "-b", "feature")
    s["feature"] = r.commit("Add util helpers", {"src/util.py": lines(3, "x =")})
    r.git("checkout", "-q", "main")
    s["readme"] = r.commit("Describe the project", {"README.md": "# demo\n\nA demo.\n"})
    r.time += 100
    r.git("merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    s["merge"] = r.git("rev-parse", "HEAD").strip()
    s["big"] = r.commit("Add generated table", {"gen/big.py": lines(100)})
    r.git("mv", "src/app.py", "src/main.py")
    s["rename"] = r.commit("Rename app to main", {"src/main.py": APP3})
    s["latin"] = r.commit(
        "Add legacy code, new logo",
        {"legacy/latin.c": "/* caf\xe9 */\nint x;\n".encode("latin-1"), "assets/logo.png": PNG * 2},
    )
    s["noeol"] = r.commit("Drop final newline", {"src/main.py": APP3.rstrip("\n")})
    os.symlink("src/main.py", r.path / "link.py")
    r.git("add", "link.py")
    r.git("update-index", "--add", "--cacheinfo", f"160000,{s['root']},ext/lib")
    s["links"] = r.commit("Add a symlink and a submodule")
    s["empty"] = r.commit("Nothing at all")
    s["delete"] = r.commit(
        "Drop the guide, extend util", {"docs/guide.md": None, "src/util.py": lines(4, "x =")}
    )
    return r, s


def mine(repo: GitRepo, **cfg: object) -> tuple[list[Commit], dict[str, int]]:
    return mine_commits(repo.path, MineConfig(**cfg))


def by_sha(commits: list[Commit]) -> dict[str, Commit]:
    return {c.sha: c for c in commits}


def git_numstat(repo: GitRepo, sha: str) -> dict[str, tuple[int, int]]:
    """Path -> (added, deleted) from `git log --numstat --first-parent`; binary is (0, 0)."""
    out = repo.git("log", "-1", "--numstat", "--first-parent", "-M", "-z", "--format=", sha)
    tokens = iter(out.split("\0"))
    counts = {}
    for token in tokens:
        token = token.strip("\n")
        if not token:
            continue
        added, deleted, path = token.split("\t")
        if not path:  # rename: old and new path follow
            next(tokens)
            path = next(tokens)
        counts[path] = (0 if added == "-" else int(added), 0 if deleted == "-" else int(deleted))
    return counts


def git_show(repo: GitRepo, rev: str, path: str) -> str:
    return repo.git("show", f"{rev}:{path}")


def file_at(commit: Commit, path: str) -> FileChange:
    return next(f for f in commit.files if f.path == path)


# --- agreement with git ---------------------------------------------------------------------


def test_counts_and_texts_match_git(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, _ = history
    commits, _ = mine(repo, max_changed_lines=None)
    assert commits
    for c in commits:
        assert {f.path: (f.added, f.deleted) for f in c.files} == git_numstat(repo, c.sha)
        parent = c.parents[0] if c.parents else None
        for f in c.files:
            if f.skip_reason is not None:
                continue
            if f.old_path is None:
                assert f.before is None and f.change_type == "added"
            else:
                assert f.before == git_show(repo, parent, f.old_path)
            if f.new_path is None:
                assert f.after is None and f.change_type == "deleted"
            else:
                assert f.after == git_show(repo, c.sha, f.new_path)
            plus = sum(line.startswith("+") for h in f.hunks for line in h.lines)
            minus = sum(line.startswith("-") for h in f.hunks for line in h.lines)
            assert (plus, minus) == (f.added, f.deleted)


def test_commit_metadata(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    c = by_sha(mine(repo)[0])[s["fix"]]
    assert c.parents == [s["root"]]
    assert c.message == "Print a greeting in main\n\nLonger body.\n"
    assert c.author == "Ada Lovelace"
    assert c.author_time == T0 + 200
    assert c.committer_time == T0 + 205
    assert file_at(c, "src/app.py").language == "python"


def test_order_and_merges(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    commits, dropped = mine(repo, max_changed_lines=None)
    expected = repo.git("rev-list", "--no-merges", "--date-order", "HEAD").split()
    expected.remove(s["empty"])
    assert [c.sha for c in commits] == expected
    assert s["feature"] in expected  # commits reached through a merge are mined too
    assert dropped == {"merge": 1, "empty": 1}
    assert all(len(c.parents) <= 1 for c in commits)


# --- filters --------------------------------------------------------------------------------


def test_max_changed_lines_drops_large_commit(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    commits, dropped = mine(repo, max_changed_lines=25)
    assert s["big"] not in by_sha(commits)
    assert dropped["too_many_lines"] == 1
    commits, dropped = mine(repo, max_changed_lines=100)
    assert s["big"] in by_sha(commits) and "too_many_lines" not in dropped


def test_include_exclude(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    commits, dropped = mine(repo, max_changed_lines=None, include=["src/**"])
    paths = {f.path for c in commits for f in c.files}
    assert paths == {"src/app.py", "src/util.py", "src/main.py"}
    assert s["readme"] not in by_sha(commits)
    assert dropped["no_files_after_filters"] == 4  # readme, big, links, latin

    commits, _ = mine(repo, max_changed_lines=None, exclude=["*.md", "assets"])
    paths = {f.path for c in commits for f in c.files}
    assert not {p for p in paths if p.endswith(".md") or p.startswith("assets/")}
    assert "src/main.py" in paths


@pytest.mark.parametrize(
    ("include", "exclude", "path", "kept"),
    [
        ([], [], "a/b/c.py", True),
        (["*.py"], [], "a/b/c.py", True),
        (["*.py"], [], "a/b/c.pyc", False),
        (["src/**/*.py"], [], "src/c.py", True),
        (["src/**/*.py"], [], "src/x/y/c.py", True),
        (["src/**/*.py"], [], "lib/src/c.py", False),
        (["src/*.py"], [], "src/x/c.py", False),
        (["**/test_*.py"], [], "tests/unit/test_a.py", True),
        ([], ["vendor"], "third/vendor/x.c", False),
        ([], ["src/vendor"], "src/vendor/x/y.c", False),
        ([], ["src/vendor/"], "src/vendor2/y.c", True),
        ([], ["docs/**"], "docs/a/b.md", False),
        (["*.[ch]"], [], "kernel/fork.c", True),
        (["*.[!ch]"], [], "kernel/fork.c", False),
        (["?.py"], [], "a.py", True),
        (["src/**"], ["**/*_test.go"], "src/pkg/a_test.go", False),
    ],
)
def test_path_filter(include: list[str], exclude: list[str], path: str, kept: bool) -> None:
    assert path_filter(include, exclude)(path) is kept


def test_max_commits_counts_considered_commits(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    commits, dropped = mine(repo, max_commits=3, max_changed_lines=None)
    assert [c.sha for c in commits] == [s["delete"], s["links"]]
    assert dropped == {"empty": 1}
    # the merge is skipped, not counted: 8 considered reach one commit past it
    commits, dropped = mine(repo, max_commits=8, max_changed_lines=None)
    assert len(commits) == 7 and dropped == {"empty": 1, "merge": 1}
    assert commits[-1].sha == s["readme"]


def test_ref_starts_the_walk(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    repo.git("tag", "-a", "v1", "-m", "release", s["fix"])
    commits, _ = mine(repo, ref="v1")
    assert [c.sha for c in commits] == [s["fix"], s["root"]]
    commits, _ = mine(repo, ref="feature")
    assert [c.sha for c in commits] == [s["feature"], s["fix"], s["root"]]


# --- per-file records -----------------------------------------------------------------------


def test_rename_detected(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    f = file_at(by_sha(mine(repo)[0])[s["rename"]], "src/main.py")
    assert (f.change_type, f.old_path, f.new_path) == ("renamed", "src/app.py", "src/main.py")
    assert (f.added, f.deleted) == (1, 1)
    assert f.before == APP2 and f.after == APP3


def test_hunks(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    f = file_at(by_sha(mine(repo)[0])[s["fix"]], "src/app.py")
    [h] = f.hunks
    assert (h.old_start, h.old_lines, h.new_start, h.new_lines) == (2, 4, 2, 5)
    assert h.header.startswith("@@ -2,4 +2,5 @@")
    assert h.lines == [" ", " ", " def main():", "+    print('hi')", "     return os.getcwd()"]
    f0 = file_at(by_sha(mine(repo, context_lines=0)[0])[s["fix"]], "src/app.py")
    assert [h.lines for h in f0.hunks] == [["+    print('hi')"]]


def test_no_newline_marker_skipped(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    f = file_at(by_sha(mine(repo)[0])[s["noeol"]], "src/main.py")
    assert f.hunks[0].lines[-2:] == ["-    return os.getcwd()", "+    return os.getcwd()"]
    assert not any(line.startswith("\\") for h in f.hunks for line in h.lines)
    assert f.after == APP3.rstrip("\n")


def test_files_without_text(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    commits = by_sha(mine(repo)[0])
    cases = [
        (s["root"], "assets/logo.png", "binary"),
        (s["latin"], "assets/logo.png", "binary"),
        (s["latin"], "legacy/latin.c", "not_utf8"),
        (s["links"], "link.py", "symlink"),
        (s["links"], "ext/lib", "submodule"),
    ]
    for sha, path, reason in cases:
        f = file_at(commits[sha], path)
        assert (f.skip_reason, f.before, f.after, f.hunks) == (reason, None, None, [])
    assert file_at(commits[s["latin"]], "legacy/latin.c").added == 2


def test_too_large(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    f = file_at(by_sha(mine(repo, max_file_bytes=20)[0])[s["fix"]], "src/app.py")
    assert (f.skip_reason, f.before, f.after, f.hunks) == ("too_large", None, None, [])
    assert (f.added, f.deleted) == (1, 0)


def test_deleted_file(history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = history
    f = file_at(by_sha(mine(repo)[0])[s["delete"]], "docs/guide.md")
    assert (f.change_type, f.old_path, f.new_path) == ("deleted", "docs/guide.md", None)
    assert (f.before, f.after, f.deleted) == ("Read me.\n", None, 1)


# --- errors ---------------------------------------------------------------------------------


def test_errors(tmp_path: Path, history: tuple[GitRepo, dict[str, str]]) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(UserError, match=f"^repository path does not exist: {missing}$"):
        mine_commits(missing, MineConfig())
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UserError, match=f"^not a git repository: {plain}$"):
        mine_commits(plain, MineConfig())
    empty = GitRepo(tmp_path / "empty")
    with pytest.raises(UserError, match=f"^repository has no commits: {empty.path}$"):
        mine_commits(empty.path, MineConfig())
    repo, _ = history
    with pytest.raises(UserError, match=f"^unknown ref 'nope' in {repo.path}$"):
        mine_commits(repo.path, MineConfig(ref="nope"))
    with pytest.raises(UserError, match="does not name a commit"):
        mine_commits(repo.path, MineConfig(ref="HEAD^{tree}"))


# --- storage --------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path, history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, _ = history
    commits, _ = mine(repo, max_changed_lines=None)
    path = tmp_path / "commits.parquet"
    write_commits(path, commits)
    assert read_commits(path) == commits
    write_commits(path, [])
    assert read_commits(path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["commits.parquet"]  # no temp files left


def test_parquet_loads_with_datasets(
    tmp_path: Path, history: tuple[GitRepo, dict[str, str]]
) -> None:
    datasets = pytest.importorskip("datasets")
    repo, s = history
    commits, _ = mine(repo, max_changed_lines=None)
    path = tmp_path / "commits.parquet"
    write_commits(path, commits)
    ds = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert ds.num_rows == len(commits)
    assert ds["sha"] == [c.sha for c in commits]
    assert Commit.from_dict(ds[0]) == commits[0]


def test_read_commits_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="commits file not found"):
        read_commits(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        read_commits(bad)


def test_run_mine(tmp_path: Path, history: tuple[GitRepo, dict[str, str]]) -> None:
    repo, _ = history
    out = tmp_path / "run"
    stats = run_mine(repo.path, out, MineConfig())
    assert json.loads((out / "mine_stats.json").read_text()) == stats
    commits = read_commits(out / "commits.parquet")
    assert stats["kept"] == len(commits)
    assert stats["dropped"] == {"empty": 1, "merge": 1, "too_many_lines": 1}
    assert stats["files_kept"] == sum(len(c.files) for c in commits)
    assert stats["languages"]["python"] >= 4
    assert stats["files_without_text"]["binary"] == 2
    assert stats["renames"]["threshold"] == 50 and stats["renames"]["by"].startswith("libgit2")
