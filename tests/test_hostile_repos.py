"""Hostile repositories through `repotune mine` and `repotune build`: every case gives a recorded
skip (a file's `skip_reason`, a commit's drop reason, a count in mine_stats.json or
datasets/stats.json) or one error line with exit code 2, never a traceback or a hang. Runs that
could hang (damaged objects) are child processes with a time limit.

Covered in test_mine.py on its small history and not repeated: a PNG (binary), a Latin-1 C file
(not_utf8), a symlink inside the repository, a bare gitlink (submodule), too_large with a tiny
max_file_bytes, a missing path, a folder that is no repository and one with no commits (also
through the CLI in test_cli.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from repotune.commits import read_commits
from repotune.fsutil import read_jsonl
from repotune.records import Commit
from tests.support.clirun import child, in_process
from tests.support.gitrepo import git, make_history

T0 = 1_700_000_000
HUGE = "x = 1\n" * 400_000  # 2.4 MB: over mine.max_file_bytes (1 MB) and build.tree's 200 kB
BIG = "".join(f"v{i} = {i}\n" for i in range(10_000))
NAMES = ["with space.py", "new\nline.py", "café_日本.py"]
LATIN_NAME = b"latin\xe9.py"  # not UTF-8: stored with U+FFFD in its place


def _commit(repo: Path, message: str | bytes, n: int) -> str:
    """Commit the index; a bytes message is stored as is (`git commit` would re-encode it)."""
    git(repo, "commit", "-q", "-m", "placeholder" if isinstance(message, bytes) else message,
        time=T0 + 100 * n)  # fmt: skip
    if isinstance(message, bytes):

        def run(*args: str, data: bytes | None = None) -> bytes:
            return subprocess.run(["git", "-C", str(repo), *args], input=data,
                                  capture_output=True, check=True).stdout  # fmt: skip

        head = run("cat-file", "commit", "HEAD").split(b"\n\n", 1)[0]
        sha = run("hash-object", "-t", "commit", "-w", "--stdin", data=head + b"\n\n" + message)
        run("update-ref", "HEAD", sha.decode().strip())
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One history with every hostile file in its own commit; shas by case name."""
    base = tmp_path_factory.mktemp("hostile")
    sub = base / "sub"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    (sub / "lib.c").write_text("int lib(void) { return 1; }\n")
    git(sub, "add", "-A")
    _commit(sub, "Start the library", 0)
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    shas: dict[str, str] = {}

    def add(case: str, message: str | bytes, files: dict[str, str | bytes]) -> None:
        for name, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            (repo / name).write_bytes(data)
        git(repo, "add", "-A")
        shas[case] = _commit(repo, message, len(shas) + 1)

    add("root", "Add the app module with a function", {"app.py": "def f(x):\n    return x\n"})
    add("huge", "Add a huge generated module", {"huge.py": HUGE})
    add("binary", "Add a binary file named like Python", {"blob.py": bytes(range(256)) * 10})
    add("invalid_utf8", "Add a module with invalid UTF-8", {"bad.py": b"x = '\xff\xfe caf\xe9'\n"})
    add("crlf", "Add modules with CRLF and mixed line endings", {
        "crlf.py": b"def g(x):\r\n    return x\r\n",
        "mixed.py": b"def h(x):\r\n    y = x\n    return y\r",
    })  # fmt: skip
    add("crlf_edit", "Change the modules with CRLF and mixed line endings", {
        "crlf.py": b"def g(x):\r\n    return x + 1\r\n",
        "mixed.py": b"def h(x):\r\n    y = x + 1\n    return y\r",
    })  # fmt: skip
    add("big_diff", "Add ten thousand lines in a single commit", {"big.py": BIG})
    (repo / os.fsdecode(LATIN_NAME)).write_bytes(b"def q():\n    return 2\n")
    add("names", "Add files with odd names", {n: "def k():\n    return 1\n" for n in NAMES})
    os.symlink("/etc/passwd", repo / "passwd.py")
    os.symlink("../../outside", repo / "up.py")
    add("symlinks", "Add symlinks pointing outside the repository", {})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "ext/lib")
    shas["submodule"] = _commit(repo, "Add the library as a submodule", len(shas) + 1)
    add("latin_message", "Caf\xe9 au lait: double f\n".encode("latin-1"),
        {"app.py": "def f(x):\n    return x * 2\n"})  # fmt: skip
    git(repo, "checkout", "-q", "--orphan", "orphan")
    git(repo, "rm", "-rq", "--cached", ".")
    (repo / "orphan.py").write_text("def o():\n    return 0\n")
    git(repo, "add", "orphan.py")
    shas["orphan"] = _commit(repo, "Start an unrelated history", len(shas) + 1)
    git(repo, "checkout", "-qf", "main")
    return repo, shas


@pytest.fixture(scope="module")
def mined(hostile, tmp_path_factory) -> tuple[Path, dict[str, Commit], dict]:
    """`repotune mine` of the whole hostile history (no line cap: the 10 000 lines get in)."""
    repo, _ = hostile
    run = tmp_path_factory.mktemp("run")
    ran = child("mine", str(repo), "--out", str(run), "--set", "mine.max_changed_lines=null")
    assert ran.code == 0, ran.err
    commits = {c.sha: c for c in read_commits(run / "commits.parquet")}
    return run, commits, json.loads((run / "mine_stats.json").read_text())


def _file(commit: Commit, path: str):
    return next(f for f in commit.files if f.path == path)


SKIPPED = [
    ("huge", "huge.py", "too_large", (400_000, 0)),
    ("binary", "blob.py", "binary", (0, 0)),
    ("invalid_utf8", "bad.py", "not_utf8", (1, 0)),
    ("symlinks", "passwd.py", "symlink", (1, 0)),
    ("symlinks", "up.py", "symlink", (1, 0)),
    ("submodule", "ext/lib", "submodule", (1, 0)),
]


@pytest.mark.parametrize(
    ("case", "path", "reason", "counts"),
    SKIPPED,
    ids=["huge", "binary", "invalid_utf8", "symlink-absolute", "symlink-relative", "submodule"],
)
def test_files_without_text_are_recorded_skips(hostile, mined, case, path, reason, counts):
    _, shas = hostile
    f = _file(mined[1][shas[case]], path)
    assert (f.skip_reason, f.before, f.after, f.hunks) == (reason, None, None, [])
    assert (f.added, f.deleted) == counts  # as `git log --numstat` counts them


def test_skips_are_counted_in_mine_stats(mined):
    _, _, stats = mined
    assert stats["files_without_text"] == {
        "binary": 1, "not_utf8": 1, "submodule": 1, "symlink": 2, "too_large": 1,
    }  # fmt: skip
    assert stats["dropped"] == {}  # the orphan branch is not reachable from HEAD


def test_line_endings_are_kept_byte_for_byte(hostile, mined):
    repo, shas = hostile
    commit = mined[1][shas["crlf_edit"]]
    for path in ("crlf.py", "mixed.py"):
        f = _file(commit, path)
        assert f.skip_reason is None
        assert f.after.encode() == (repo / path).read_bytes()
        assert (f.added, f.deleted) == (1, 1)
    assert _file(commit, "crlf.py").hunks[0].lines == [
        " def g(x):\r",
        "-    return x\r",
        "+    return x + 1\r",
    ]


def test_ten_thousand_line_commit(hostile, mined):
    _, shas = hostile
    f = _file(mined[1][shas["big_diff"]], "big.py")
    assert f.skip_reason is None and f.after == BIG and f.added == 10_000


def test_odd_file_names(hostile, mined):
    _, shas = hostile
    commit = mined[1][shas["names"]]
    assert sorted(f.path for f in commit.files) == sorted([*NAMES, "latin\ufffd.py"])
    assert all(f.skip_reason is None and f.after for f in commit.files)


def test_message_that_is_not_utf8(hostile, mined):
    _, shas = hostile
    assert mined[1][shas["latin_message"]].message == "Caf\ufffd au lait: double f\n"


def test_nothing_outside_the_repository_is_read(mined):
    run, commits, _ = mined
    texts = repr(list(commits.values()))
    assert "/etc/passwd" not in texts and "../../outside" not in texts  # symlink targets
    assert "root:" not in texts  # what the link points at


def test_build_on_the_hostile_history(mined):
    run = mined[0]
    # fim reads the tree at HEAD (not before the val/test commits): the submodule is in it.
    # Caps in characters and named FIM tokens: no tokenizer needed.
    sets = ["build.tasks=[commit,repair,fim]", "build.tree.ref=HEAD",
            "build.fim.tokens=starcoder", "build.repair.max_input_tokens=null",
            "build.repair.max_output_tokens=null"]  # fmt: skip
    ran = child("build", "--out", str(run), *(x for s in sets for x in ("--set", s)))
    assert ran.code == 0, ran.err
    stats = json.loads((run / "datasets" / "stats.json").read_text())
    assert stats["commit"]["dropped"] == {
        "file_binary": 1, "file_not_utf8": 1, "file_submodule": 1, "file_symlink": 2,
        "file_too_large": 1, "over_max_chars": 1,  # the 10 000-line diff
    }  # fmt: skip
    assert sum(stats["commit"]["examples"].values()) > 0
    # symlinks and the submodule skipped and counted, like the binaries
    assert stats["fim"]["dropped"] == {
        "binary": 1, "not_utf8": 1, "submodule": 1, "symlink": 2, "too_large": 1,
    }  # fmt: skip
    for path in (run / "datasets").rglob("*.jsonl"):
        for row in read_jsonl(path):
            assert "root:" not in row["prompt"] + row["completion"]
            assert row["meta"]["path"] not in ("huge.py", "blob.py", "passwd.py", "up.py")


def test_orphan_branches(hostile, tmp_path, monkeypatch, capsys):
    repo, shas = hostile
    ran = in_process(monkeypatch, capsys, "mine", str(repo), "--out", str(tmp_path / "o"),
                     "--set", "mine.ref=orphan")  # fmt: skip
    assert ran.code == 0
    assert [c.sha for c in read_commits(tmp_path / "o" / "commits.parquet")] == [shas["orphan"]]
    fresh = make_history(tmp_path / "fresh", n_commits=2)
    git(fresh, "checkout", "-q", "--orphan", "next")  # HEAD: a branch without commits yet
    line = in_process(monkeypatch, capsys, "mine", str(fresh), "--out", str(tmp_path / "f"))
    assert "branch without commits yet: set mine.ref" in line.one_line_error()


@pytest.mark.parametrize("n", [1, 2])
def test_histories_of_one_and_two_commits(tmp_path, monkeypatch, capsys, n):
    """(0 commits: test_cli.py and test_mine.py.) All in train; val and test empty, counted."""
    repo = make_history(tmp_path / "repo", n_commits=n)
    out = str(tmp_path / "run")
    ran = in_process(monkeypatch, capsys, "mine", str(repo), "--out", out,
                     "--set", "mine.max_changed_lines=null")  # fmt: skip
    assert ran.code == 0 and f"mined {n} commits" in ran.err
    assert in_process(monkeypatch, capsys, "build", "--out", out).code == 0
    stats = json.loads((tmp_path / "run" / "datasets" / "stats.json").read_text())
    assert stats["commit"]["commits"] == {"train": n, "val": 0, "test": 0}


# --- damaged object stores ------------------------------------------------------------------


def _damaged(base: Path, kind: str, rev: str) -> tuple[Path, str]:
    """A history whose object `rev` is deleted, truncated or replaced by garbage."""
    repo = make_history(base / kind, n_commits=6)
    sha = git(repo, "rev-parse", rev).strip()
    obj = repo / ".git" / "objects" / sha[:2] / sha[2:]
    obj.chmod(0o644)
    if kind.startswith("deleted"):
        obj.unlink()
    elif kind.startswith("truncated"):
        obj.write_bytes(obj.read_bytes()[: obj.stat().st_size // 2])
    else:
        obj.write_bytes(b"not zlib at all")
    return repo, sha


DAMAGED = [
    # (kind, object, exit code, what the run says or records)
    ("deleted blob", "HEAD~3:calc.py", 0, "missing_object"),
    ("deleted tree", "HEAD~2^{tree}", 0, "missing_object"),
    ("deleted commit", "HEAD~2", 2, "damaged history (object not found"),
    ("truncated blob", "HEAD:calc.py", 2, "damaged object {sha} (truncated); see `git fsck`"),
    ("truncated commit", "HEAD~2", 2, "damaged object {sha} (truncated)"),
    ("garbage blob", "HEAD:calc.py", 2, "damaged object {sha} (not a zlib stream)"),
]


@pytest.mark.parametrize(("kind", "rev", "code", "says"), DAMAGED, ids=[d[0] for d in DAMAGED])
def test_damaged_objects(tmp_path, kind, rev, code, says):
    """libgit2 loops forever on a truncated loose object (libgit2 issue 7342): the run must
    stop with an error before reading one."""
    repo, sha = _damaged(tmp_path, kind, rev)
    out = tmp_path / "run"
    ran = child("mine", str(repo), "--out", str(out), "--set", "mine.max_changed_lines=null",
                timeout=60)  # fmt: skip
    if code == 2:
        assert says.format(sha=sha) in ran.one_line_error()
        return
    assert ran.code == 0, ran.err
    stats = json.loads((out / "mine_stats.json").read_text())
    recorded = {**stats["dropped"], **stats["files_without_text"]}
    assert recorded.get(says, 0) >= 1, stats


@pytest.mark.parametrize("kind", ["deleted blob", "truncated blob"])
def test_damaged_object_in_the_tree_fim_reads(tmp_path, kind):
    repo, sha = _damaged(tmp_path, kind, "HEAD:calc.py")
    out = tmp_path / "run"
    ran = child("build", "--out", str(out), "--set", "build.tasks=[fim]",
                "--set", f"build.tree.repo={repo}", "--set", "build.fim.tokens=starcoder",
                timeout=60)  # fmt: skip
    if kind == "truncated blob":
        assert f"damaged object {sha} (truncated)" in ran.lines[-1] and ran.code == 2, ran.err
        return
    assert ran.code == 0, ran.err
    stats = json.loads((out / "datasets" / "stats.json").read_text())
    assert stats["fim"]["dropped"] == {"missing_object": 1}
