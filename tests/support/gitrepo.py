"""Small git repositories built on the fly with the git CLI, with deterministic times."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(repo: Path, *args: str, time: int = 1_700_000_000) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_AUTHOR_DATE": f"{time} +0000",
        "GIT_COMMITTER_DATE": f"{time} +0000",
    }
    out = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    )
    return out.stdout


def make_history(repo: Path, n_commits: int = 12) -> Path:
    """A Python module edited by n small commits, each with its own message."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    funcs = [f"def f{i}(x):\n    return x + {i}\n" for i in range(8)]
    for c in range(n_commits):
        k = c % len(funcs)
        funcs[k] = f"def f{k}(x):\n    total = x * {c + 2}\n    return total + {k}\n"
        (repo / "calc.py").write_text("\n\n".join(funcs))
        git(repo, "add", "-A")
        git(
            repo,
            "commit",
            "-q",
            "-m",
            f"Scale the input of f{k} by {c + 2} before adding",
            time=1_700_000_000 + 3600 * c,
        )
    return repo
