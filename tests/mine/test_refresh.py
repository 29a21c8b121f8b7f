"""`repotune refresh`: 5 new commits on a 200-commit repository are the only ones mined, the
adapter's training goes on from its last step, and the first run's summary is kept."""

import json
import shutil

import pytest

from repotune.config import load_config
from repotune.errors import UserError
from repotune.fsutil import read_jsonl
from repotune.mine import read_commits
from repotune.mine.history import CommitMiner
from repotune.pipeline import refresh_run, run_all
from tests.support.gitrepo import git, make_history

SETS = [
    "model.dtype=float32", "mine.workers=1", "train.max_steps=6",
    "train.per_device_train_batch_size=2",
    "train.save_steps=3", "train.learning_rate=5e-3", "evaluate.generate_examples=1",
    "evaluate.max_new_tokens=8", "refresh.steps=3", "train.logging_steps=1",
]  # fmt: skip


def _add_commits(repo, n, start):
    for c in range(start, start + n):
        (repo / "notes.py").write_text(f"def note(x):\n    return x * {c} - {c % 7}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"Rescale the note by {c}", time=1_700_000_000 + 3600 * c)


def test_refresh_mines_only_new_commits_and_continues_training(tmp_path, tiny_model, monkeypatch):
    repo = make_history(tmp_path / "repo", n_commits=200)
    out = tmp_path / "run"
    cfg = load_config(None, [*SETS, f"model.name={tiny_model}"])
    run_all(repo, out, cfg, say=lambda m: None)
    first = json.loads((out / "eval" / "summary.json").read_text())
    before = len(read_commits(out / "commits.parquet"))
    trained_before = {r["id"] for r in read_jsonl(out / "datasets/commit/train.jsonl")}

    _add_commits(repo, 5, start=200)
    diffed = []
    mine = CommitMiner.mine

    def spy(self, commit):
        diffed.append(str(commit.id))
        return mine(self, commit)

    monkeypatch.setattr(CommitMiner, "mine", spy)
    refresh_run(out, cfg, say=lambda m: None)

    # only the 5 new commits were walked and diffed by libgit2
    assert len(diffed) == 5
    assert set(diffed) == set(git(repo, "rev-list", "HEAD~5..HEAD").split())
    stats = json.loads((out / "mine_stats.json").read_text())
    assert stats["refreshes"][-1]["considered"] == 5 and stats["refreshes"][-1]["kept"] == 5
    commits = read_commits(out / "commits.parquet")
    assert len(commits) == before + 5 == stats["kept"]
    assert {c.sha for c in commits[:5]} == set(diffed)  # newest first, old rows kept

    # the split moved forward: the newest commits are the test set
    test = read_jsonl(out / "datasets/commit/test.jsonl")
    newest = max(c.committer_time for c in commits)
    assert max(r["meta"]["time"] for r in test) == newest

    # training went on from the last checkpoint of the first run, on new + replayed rows
    train = json.loads((out / "train" / "summary.json").read_text())
    assert train["resumed_from"].endswith("checkpoint-6")
    assert train["steps"] == 6 + 3
    history = json.loads((out / "train" / "log_history.json").read_text())
    assert {h["step"] for h in history if "loss" in h} >= {7, 8, 9}
    assert train["train_examples"] > 0
    rows_now = {r["id"] for r in read_jsonl(out / "datasets/commit/train.jsonl")}
    assert rows_now - trained_before  # rows it had not trained on

    # each summary is kept: the first run's unchanged, the refresh's beside it
    kept = json.loads((out / "eval/history/000.json").read_text())
    assert kept["summary"] == first and kept["new_commits"] is None
    second = json.loads((out / "eval/history/001.json").read_text())
    assert second["new_commits"] == 5 and second["train"]["from_step"] == 6
    assert second["summary"] == json.loads((out / "eval" / "summary.json").read_text())
    assert "## Refreshes" in (out / "report.md").read_text()
    assert 'id="fig-refreshes"' in (out / "report.html").read_text()  # the gain plot

    # nothing new: nothing mined, trained or recorded
    diffed.clear()
    refresh_run(out, cfg, say=lambda m: None)
    assert diffed == [] and not (out / "eval/history/002.json").exists()


def test_refresh_needs_a_finished_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError, match="no evaluation"):
        refresh_run(tmp_path / "run", load_config(None, []))


def test_refresh_of_several_repositories_drops_copies_of_old_rows(tmp_path):
    """The mine half of a refresh over two repositories: new rows get their repository, a
    file already vendored into the other repository is not added again."""
    from repotune.config import MineConfig
    from repotune.mine.refresh import refresh_commits
    from repotune.mine.repos import mine_repos, specs_from_paths
    from tests.mine.test_repos import VENDORED, make_repo

    a = make_repo(tmp_path / "a", 0, n=6, vendor=(1, "vendor/listutil.py"))
    b = make_repo(tmp_path / "b", 1, n=6)
    out = tmp_path / "run"
    cfg = MineConfig(workers=1, repo_workers=1)
    mine_repos(specs_from_paths([a, b]), out, cfg, say=lambda m: None)
    (b / "third_party").mkdir()
    (b / "third_party" / "listutil.py").write_text(VENDORED)
    git(b, "add", "-A")
    git(b, "commit", "-q", "-m", "Vendor the list helper", time=1_700_000_000 + 3600 * 40)
    with (a / "a.py").open("a") as fh:
        fh.write("\n\ndef a_new(x):\n    return x - 1\n")
    git(a, "add", "-A")
    git(a, "commit", "-q", "-m", "Add a_new to a", time=1_700_000_000 + 3600 * 41)
    found = refresh_commits(out, cfg, 1, say=lambda m: None)
    assert found["considered"] == 2 and found["kept"] == 1 and found["cross_repo_copies"] == 1
    newest = read_commits(out / "commits.parquet")[0]
    assert newest.repo == "a" and newest.message.startswith("Add a_new")
    assert not (out / "refresh").exists() or not any((out / "refresh").iterdir())
    shutil.rmtree(out)
