"""The user's checkout is read-only to us. After a full `repotune run` started from inside it,
and after validating candidates that try to damage it, every byte under the repository (work
tree, .git/index, refs, packed-refs, HEAD, config, objects, logs) and every file mode is as it
was, and the CLI did not even try to change anything there (an audit hook logs every open for
writing, rename and removal under it). A run on a read-only repository works too.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from tests.support.faultcli import NO_READ_ONLY
from tests.support.gitrepo import git, make_history

RUN_SETS = [
    "model.dtype=float32", "train.max_steps=2", "train.per_device_train_batch_size=2",
    "train.max_length=48",
    "train.save_steps=1", "train.progress=false", "evaluate.max_examples=2",
    "evaluate.generate_examples=1", "evaluate.max_new_tokens=4",
]  # fmt: skip


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A user's repository mid-work: a tag, packed refs, a staged file, an unsaved edit, an
    untracked file, an ignored build folder and a symlink that points out of it."""
    repo = make_history(tmp_path / "repo", n_commits=16)
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "Ignore the build folder", time=1_700_100_000)
    git(repo, "tag", "v1")
    git(repo, "pack-refs", "--all")
    (repo / "staged.py").write_text("def staged():\n    return 1\n")
    git(repo, "add", "staged.py")
    with (repo / "calc.py").open("a") as fh:
        fh.write("\n# an unsaved thought\n")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.o").write_bytes(b"\x7fELF\0")
    (repo / "outside").symlink_to(tmp_path)
    return repo


def snapshot(repo: Path) -> dict[str, tuple]:
    """Every path under `repo`, .git included: type, mode, and content hash or link target."""
    found: dict[str, tuple] = {".": ("dir", stat.S_IMODE(repo.lstat().st_mode))}
    for root, dirs, files in os.walk(repo):
        for name in dirs + files:
            path = Path(root, name)
            st = path.lstat()
            rel = path.relative_to(repo).as_posix()
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return found


def _run(warm_cli, repo: Path, out: Path, tiny_model: str, **kw):
    """`repotune run` from inside the checkout, then a FIM build (it reads the current tree)."""
    sets = [x for s in [f"model.name={tiny_model}", *RUN_SETS] for x in ("--set", s)]
    res = warm_cli.run("run", repo, "--out", out, *sets, root=repo, cwd=repo, **kw)
    if res.rc == NO_READ_ONLY:
        pytest.skip(f"no read-only mount here: {res.output.strip().splitlines()[-1]}")
    assert res.rc == 0, res.output[-3000:]
    assert res.events == [], res.events  # not one write, rename or removal was attempted
    fim = warm_cli.run(
        "build", "--out", out, *sets, "--set", "build.tasks=[fim]", root=repo, cwd=repo, **kw
    )
    assert fim.rc == 0, fim.output[-3000:]
    assert fim.events == [], fim.events
    assert (out / "report.md").is_file() and (out / "datasets" / "fim" / "train.jsonl").is_file()


def test_full_run_leaves_the_checkout_byte_identical(warm_cli, checkout, tiny_model, tmp_path):
    before = snapshot(checkout)
    _run(warm_cli, checkout, tmp_path / "run", tiny_model)
    assert snapshot(checkout) == before


def test_a_read_only_checkout_is_enough(warm_cli, checkout, tiny_model, tmp_path):
    """Root ignores file modes, so as root the repository is bound read-only in a mount
    namespace of the command's own; other users get chmod -R a-w."""
    before = snapshot(checkout)
    if os.geteuid() == 0:
        _run(warm_cli, checkout, tmp_path / "run", tiny_model, readonly=checkout)
    else:
        modes = {p: p.lstat().st_mode for p in [checkout, *checkout.rglob("*")]}
        for path in modes:
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(modes[path]) & ~0o222)
        try:
            _run(warm_cli, checkout, tmp_path / "run", tiny_model)
        finally:
            for path, mode in modes.items():
                if not path.is_symlink():
                    path.chmod(stat.S_IMODE(mode))
    assert snapshot(checkout) == before


# A candidate for the span of f0 (lines 2-3 of calc.py) that tries to damage the checkout it
# came from by every route, reports each try, and then returns what f0 should.
HOSTILE = """\
    import os, shutil, subprocess
    repo = {repo!r}
    print("hostile candidate ran", flush=True)

    def attempt(name, fn):
        try:
            fn()
            print("SUCCEEDED", name, flush=True)
        except Exception as exc:
            print("denied", name, type(exc).__name__, flush=True)

    def git(*args):
        cmd = ["git", "-C", repo, "-c", "user.name=x", "-c", "user.email=x@x", *args]
        res = subprocess.run(cmd, capture_output=True)
        if res.returncode:
            raise OSError(res.stderr.decode()[-200:])

    def write(rel, text, mode="w"):
        with open(os.path.join(repo, rel), mode) as fh:
            fh.write(text)

    attempt("overwrite a file", lambda: write("calc.py", "pwned"))
    attempt("create a file", lambda: write("pwned.txt", "pwned"))
    attempt("delete a file", lambda: os.remove(os.path.join(repo, "staged.py")))
    attempt("chmod", lambda: os.chmod(os.path.join(repo, "calc.py"), 0o777))
    attempt("HEAD", lambda: write(".git/HEAD", "ref: refs/heads/pwned\\n"))
    attempt("config", lambda: write(".git/config", "[pwned]\\n", "a"))
    attempt("packed-refs", lambda: write(".git/packed-refs", ""))
    attempt("index", lambda: os.remove(os.path.join(repo, ".git", "index")))
    attempt("refs", lambda: shutil.rmtree(os.path.join(repo, ".git", "refs")))
    attempt("git add", lambda: git("add", "-A"))
    attempt("git commit", lambda: git("commit", "--allow-empty", "-m", "pwned"))
    attempt("git tag", lambda: git("tag", "-f", "v1", "HEAD~1"))
    attempt("git update-ref", lambda: git("update-ref", "refs/heads/main", "HEAD~1"))
    attempt("git gc", lambda: git("gc", "--prune=now"))
    attempt("through the symlink", lambda: write("outside/repo/calc.py", "pwned"))
    return x
"""


def test_hostile_candidates_leave_the_checkout_byte_identical(warm_cli, checkout, tmp_path):
    test = "python -c 'import calc; calc.f0(1)'"
    bug = {"repo": str(checkout), "file": "calc.py", "span": [2, 3], "test_command": test}
    bugs = tmp_path / "bugs.jsonl"
    bugs.write_text(
        json.dumps({"id": "work-tree", **bug}) + "\n"  # the files as they are
        + json.dumps({"id": "at-head", "commit": "HEAD", **bug}) + "\n"  # from git objects
    )  # fmt: skip
    text = HOSTILE.format(repo=str(checkout))
    patches = tmp_path / "patches.jsonl"
    patches.write_text(
        "".join(json.dumps({"id": i, "text": text}) + "\n" for i in ("work-tree", "at-head"))
    )
    before = snapshot(checkout)
    res = warm_cli.run(
        "validate", "--bugs", bugs, "--patches", patches, "--no-cache", root=checkout, cwd=checkout
    )
    assert res.rc == 0, res.output[-3000:]
    assert res.events == [], res.events
    outcomes = [
        json.loads(x) for x in (tmp_path / "patches.outcomes.jsonl").read_text().splitlines()
    ]
    for row in outcomes:
        assert row["outcome"] == "test_pass", row["log"]
        assert "hostile candidate ran" in row["log"] and "denied" in row["log"], row["log"]
        assert "SUCCEEDED" not in row["log"], row["log"]
    assert snapshot(checkout) == before
