"""User question sets: every model answers, answers with tests are run, side by side."""

from __future__ import annotations

import json

import pytest

from repotune.config import RunConfig
from repotune.errors import UserError
from repotune.evaluate.exec_run import run_questions
from repotune.evaluate.questions import load_questions
from tests.support.fakeopenai import FakeOpenAI

QUESTIONS = """
- id: double
  prompt: |
    def double(x):
  tests: |
    assert double(4) == 8
- id: explain
  prompt: "# What does a for loop do?\\n"
"""


def test_side_by_side_answers_with_tests(tmp_path, monkeypatch):
    qfile = tmp_path / "questions.yaml"
    qfile.write_text(QUESTIONS)

    def reply(kind, body):
        return ["    return x * 2\n" if "double" in body["prompt"] else "# It repeats.\n"]

    with FakeOpenAI(reply) as server:
        monkeypatch.setenv("REPOTUNE_OPENAI_BASE_URL", server.url)
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(var, raising=False)
        page = run_questions(
            tmp_path / "run", qfile, ["openai-completions:a"], RunConfig(), say=lambda s: None
        )
        text = page.read_text()
        run_questions(  # a second model, run later, sits beside the first in the summary
            tmp_path / "run", qfile, ["openai-completions:b"], RunConfig(), say=lambda s: None
        )
    assert "## double" in text and "**openai-completions:a** (tests pass)" in text
    assert "(no tests)" in text
    models = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())["questions"][
        "models"
    ]
    entry = {"passed": 1, "with_tests": 1, "n_questions": 2, "file": str(qfile)}
    assert models == {"openai-completions:a": entry, "openai-completions:b": entry}


def test_question_file_errors(tmp_path):
    bad = tmp_path / "q.yaml"
    bad.write_text("- id: x\n")
    with pytest.raises(UserError, match="needs a 'prompt'"):
        load_questions(bad)
    bad.write_text("prompt: x\n")
    with pytest.raises(UserError, match="a list"):
        load_questions(bad)
