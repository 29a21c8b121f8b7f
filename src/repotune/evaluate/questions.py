"""User question sets: a YAML list of prompts (with optional Python tests) that every model
answers, shown side by side, so a team can ask the questions it actually cares about.

    - id: parse-empty
      prompt: |
        def parse(text: str) -> list[str]:
            \"\"\"Split on commas; an empty text gives [].\"\"\"
      tests: |
        assert parse("") == []
        assert parse("a,b") == ["a", "b"]
"""

from __future__ import annotations

from pathlib import Path

import yaml

from repotune.errors import UserError
from repotune.sandbox import Limits, Sandbox


def load_questions(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"question set not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise UserError(f"{path}: not valid YAML") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a list of questions")
    out = []
    for i, q in enumerate(data, 1):
        if not isinstance(q, dict) or not isinstance(q.get("prompt"), str):
            raise UserError(f"{path}: question {i} needs a 'prompt' (text)")
        out.append(
            {
                "id": str(q.get("id", f"q{i}")),
                "prompt": q["prompt"],
                "tests": q.get("tests"),
                "language": q.get("language", "python"),
            }
        )
    return out


def run_tests(question: dict, answer: str, sandbox: Sandbox, timeout: float = 10.0) -> bool | None:
    """None when the question has no tests (or they are not Python: only Python runs here)."""
    if not question.get("tests") or question["language"] != "python":
        return None
    import sys

    folder = sandbox.scratch("question")
    try:
        text = question["prompt"] + answer + "\n\n" + question["tests"] + "\n"
        (folder / "answer.py").write_text(text, encoding="utf-8")
        sandbox.hand_over(folder)
        res = sandbox.run([sys.executable, "-I", "answer.py"], folder, Limits(wall_seconds=timeout))
        return res.ok
    finally:
        sandbox.remove(folder)


def side_by_side(questions: list[dict], answers: dict[str, list[dict]]) -> str:
    """Markdown: each question, then each model's answer and whether its tests passed."""
    out = ["# Questions", ""]
    for i, q in enumerate(questions):
        out += [f"## {q['id']}", "", "```" + (q["language"] or ""), q["prompt"].rstrip(), "```", ""]
        for model, rows in answers.items():
            row = rows[i]
            verdict = {True: "tests pass", False: "tests fail", None: "no tests"}[row["passed"]]
            out += [f"**{model}** ({verdict})", "", "```" + (q["language"] or "")]
            out += [row["answer"].rstrip(), "```", ""]
    return "\n".join(out)
