"""User mistakes end in one line on stderr and a non-zero exit, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gitrepo import git


def _repotune(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "repotune.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _one_line_error(res):
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_not_a_git_repository(tmp_path):
    res = _repotune("run", str(tmp_path), "--out", str(tmp_path / "run"))
    assert "not a git repository" in _one_line_error(res)


def test_repository_without_commits(tmp_path):
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    res = _repotune("mine", str(repo), "--out", str(tmp_path / "run"))
    assert "no commits" in _one_line_error(res)


def test_config_with_a_wrong_field(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  learning_rate: fast\n")
    res = _repotune("run", str(tmp_path), "-c", str(cfg), "--out", str(tmp_path / "run"))
    assert "train.learning_rate" in _one_line_error(res)


def test_missing_stage_input(tmp_path):
    res = _repotune("build", "--out", str(tmp_path / "run"))
    assert "repotune mine" in _one_line_error(res)


def test_help_has_an_example():
    res = _repotune("train", "--help")
    assert res.returncode == 0
    assert "Example: repotune train" in res.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["mine", "--nosuch"], "No such option: --nosuch"),
        (["train", "--out"], "Option '--out' requires an argument"),
        (["report", "A"], "unexpected extra argument"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args, says):
    """Whichever click typer brings (0.29 vendors its own): the usage hint, one error line,
    exit code 2, no traceback. The installed console script, as a user runs it."""
    exe = Path(sys.executable).with_name("repotune")
    res = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0], res.stderr
