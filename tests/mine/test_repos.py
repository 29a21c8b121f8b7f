"""Several repositories in one run: mined each, cut at one date, copies across repositories
in one split only, counts and results per repository."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repotune.config import MineConfig
from repotune.errors import UserError
from repotune.fsutil import read_jsonl
from repotune.mine import read_commits
from repotune.mine.repos import drop_copies, load_repo_list, specs_from_paths
from tests.support.gitrepo import git

T0 = 1_700_000_000
# A vendored module: added to `api` early (a train commit) and copied, under another path, into
# `web` late (it would be a test commit there).
VENDORED = "def vendored_marker_fn(text):\n    parts = text.split(',')\n    return parts[::-1]\n"


def make_repo(
    path: Path,
    offset: int,
    n: int = 15,
    vendor: tuple[int, str] | None = None,
    extra: dict[int, list[tuple[str, str]]] | None = None,
):
    """n commits an hour apart, interleaved with the other repositories' by `offset`; after
    commit c, VENDORED written at vendor[1] when vendor[0] == c, then one commit per
    (path, text) of extra[c]."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    name = path.name
    funcs = [f"def {name}_f{i}(x):\n    return x + {i}\n" for i in range(6)]
    for c in range(n):
        t = T0 + 3600 * (3 * c + offset)
        k = c % len(funcs)
        funcs[k] = f"def {name}_f{k}(x):\n    total = x * {c + 2}\n    return total + {k}\n"
        (path / f"{name}.py").write_text("\n\n".join(funcs))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"Scale {name}_f{k} by {c + 2} before adding", time=t)
        adds = [(rel, text, f"Add {rel} from upstream") for rel, text in (extra or {}).get(c, [])]
        if vendor is not None and vendor[0] == c:
            adds.insert(0, (vendor[1], VENDORED, "Vendor the list helper"))
        for i, (rel, text, message) in enumerate(adds, 1):
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_text(text)
            git(path, "add", "-A")
            git(path, "commit", "-q", "-m", message, time=t + 60 * i)
    return path


def test_three_repositories_one_run(tmp_path, tiny_model):
    api = make_repo(tmp_path / "api", 0, vendor=(1, "vendor/listutil.py"))
    web = make_repo(tmp_path / "web", 1, vendor=(13, "third_party/listutil.py"))
    make_repo(tmp_path / "cli", 2)
    (tmp_path / "more.yaml").write_text("- path: cli\n  weight: 2\n  branch: main\n")
    out = tmp_path / "run"
    sets = [
        f"model.name={tiny_model}", "model.dtype=float32", "train.max_steps=4",
        "train.per_device_train_batch_size=2", "train.save_steps=2", "evaluate.generate_examples=2",
        "evaluate.max_new_tokens=8", "mine.repo_workers=2",
    ]  # fmt: skip
    args = [sys.executable, "-m", "repotune.cli", "run", str(api), str(web)]
    args += ["--repos", str(tmp_path / "more.yaml"), "--out", str(out)]
    args += [a for s in sets for a in ("--set", s)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]

    # mined each (resumable each, in its own folder), joined with the repository named
    stats = json.loads((out / "mine_stats.json").read_text())
    assert set(stats["repos"]) == {"api", "web", "cli"}
    for name in ("api", "web", "cli"):
        assert (out / "repos" / name / "commits.parquet").is_file()
    assert stats["repos"]["cli"]["weight"] == 2
    assert stats["repos"]["web"]["cross_repo_copies"] == 1  # the vendored copy
    assert stats["dropped"]["cross_repo_copy"] == 1
    commits = read_commits(out / "commits.parquet")
    assert {c.repo for c in commits} == {"api", "web", "cli"}
    assert len(commits) == stats["kept"] == sum(r["kept"] for r in stats["repos"].values())

    rows = {s: read_jsonl(out / "datasets" / "commit" / f"{s}.jsonl") for s in ("train", "test")}
    # per-repository counts, every repository on both sides of the cut
    per_repo = json.loads((out / "datasets" / "stats.json").read_text())["commit"]["repos"]
    assert set(per_repo) == {"api", "web", "cli"}
    for name, counts in per_repo.items():
        assert counts["test"] > 0 and counts["train"] > 0, name
        assert counts["test"] == sum(r["meta"]["repo"] == name for r in rows["test"])
    # weight 2: every train row of cli is there twice
    cli_train = [r["id"] for r in rows["train"] if r["meta"]["repo"] == "cli"]
    assert len(cli_train) == 2 * len(set(cli_train)) == per_repo["cli"]["train"]
    # one date cuts all three: no test commit older than any train commit of any repository
    assert max(r["meta"]["time"] for r in rows["train"]) < min(
        r["meta"]["time"] for r in rows["test"]
    )
    # the vendored file: trained on from api (where it came first), never tested from web
    val = read_jsonl(out / "datasets" / "commit" / "val.jsonl")
    marked = {
        (split, r["meta"]["repo"])
        for split, found in (*rows.items(), ("val", val))
        for r in found
        if "vendored_marker_fn" in r["completion"]
    }
    assert marked == {("train", "api")}

    report = (out / "report.md").read_text()
    assert "## Per repository" in report
    for name in ("api", "web", "cli"):
        assert f"| commit | {name} |" in report
    html = (out / "report.html").read_text()
    assert 'id="repositories"' in html and "<td>web</td>" in html


def test_copy_across_repositories_kept_once_change_within_one_kept():
    def row(repo, sha, t, path, text):
        lines = ["+" + line for line in text.splitlines()]
        hunk = {"old_start": 0, "old_lines": 0, "new_start": 1, "new_lines": len(lines),
                "header": "", "lines": lines}  # fmt: skip
        f = {"old_path": None, "new_path": path, "change_type": "added", "language": "python",
             "before": None, "after": text, "added": len(lines), "deleted": 0, "hunks": [hunk],
             "skip_reason": None, "encoding": None}  # fmt: skip
        return {"sha": sha, "committer_time": t, "repo": repo, "files": [f]}

    rows = [
        row("b", "2", 20, "third_party/x.py", VENDORED),  # the copy, later
        row("a", "1", 10, "vendor/x.py", VENDORED),
        row("a", "3", 30, "lib/x.py", VENDORED),  # the same repository again: not a copy
        row("b", "4", 40, "b.py", "import os\n"),  # one line, in another file: not a copy
        row("a", "5", 50, "a.py", "import os\nimport sys\n"),
    ]
    kept, copies = drop_copies(rows)
    assert [r["sha"] for r in kept] == ["5", "4", "3", "1"]  # newest first
    assert copies == {"b": 1}


def test_repository_list(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "x" / "a").mkdir(parents=True)
    listing = tmp_path / "repos.yaml"
    listing.write_text("- a\n- path: x/a\n  weight: 0.5\n  branch: dev\n")
    specs = load_repo_list(listing)
    assert [(s.name, s.weight, s.branch) for s in specs] == [("a", 1.0, None), ("a-2", 0.5, "dev")]
    assert specs[0].path == str((tmp_path / "a").resolve())
    for text, words in [
        ("path: a\n", "expected a YAML list"),
        ("- path: a\n  weight: -1\n", "weight"),
        ("- path: a\n  colour: red\n", "colour"),
        ("- [a\n", "not YAML"),
    ]:
        listing.write_text(text)
        with pytest.raises(UserError, match=words):
            load_repo_list(listing)
    with pytest.raises(UserError, match="twice"):
        specs_from_paths([tmp_path / "a", tmp_path / "a"])


def test_repo_workers_does_not_change_what_is_mined():
    from repotune.mine.shards import config_key

    assert config_key(MineConfig(repo_workers=1)) == config_key(MineConfig(repo_workers=4))


def test_cli_mistakes_are_one_line(tmp_path):
    exe = Path(sys.executable).with_name("repotune")
    for args, says in [
        (["run", str(tmp_path / "a"), str(tmp_path / "b")], "repository path does not exist"),
        (["run", "--repos", str(tmp_path / "none.yaml")], "cannot read repository list"),
        (["refresh", str(tmp_path / "norun")], "run folder not found"),
        (["refresh", str(tmp_path)], "no evaluation yet"),
    ]:
        res = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith("error: ") and says in res.stderr
