"""Hostile configs and data: each ends in one line on stderr naming what is wrong (exit code 2,
no traceback), and a hostile teacher endpoint ends in a clear error or a recorded skip within
its time-outs. The CLI runs in this process (`repotune.cli.main`, as the console script does).

Covered elsewhere, not repeated here: load_config's own errors (test_config.py), a wrong type
through a `repotune run` subprocess (test_cli.py), broken instruct records at the function
level (test_instruct_task.py), 429/5xx/time-out retries (test_teacher.py).
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from repotune.build.explain import explain_examples
from repotune.build.teacher import AnswerCache, ask_all, make_teacher
from repotune.code.tree import Snapshot, SourceFile
from repotune.config import BuildConfig, ExplainTaskConfig
from repotune.errors import UserError
from tests.support.clirun import in_process
from tests.support.gitrepo import make_history
from tests.support.teacherserver import FakeTeacher

# --- configs --------------------------------------------------------------------------------

BAD_CONFIGS = [
    # wrong types
    ("train:\n  max_steps: ten\n", "train.max_steps"),
    ("build:\n  tasks: commit\n", "build.tasks"),
    ("mine:\n  include: 3\n", "mine.include"),
    ("model:\n  name: [a, b]\n", "model.name"),
    ("mine:\n  since: yesterday\n", "mine.since"),
    ("mine: 3\n", "mine"),
    # unknown keys: misspelled, and a key that must come from the environment
    ("trian:\n  max_steps: 3\n", "trian"),
    ("mine:\n  colour: blue\n", "mine.colour"),
    ("build:\n  explain:\n    api_key: sk-do-not-print-me\n", "build.explain.api_key"),
    # negative or zero sizes, and numbers that are no numbers
    ("mine:\n  max_file_bytes: -1\n", "mine.max_file_bytes"),
    ("mine:\n  max_changed_lines: 0\n", "mine.max_changed_lines"),
    ("build:\n  max_prompt_chars: -5\n", "build.max_prompt_chars"),
    ("build:\n  fim:\n    max_prefix_chars: -1\n", "build.fim.max_prefix_chars"),
    ("train:\n  per_device_train_batch_size: -2\n", "train.per_device_train_batch_size"),
    # an old name (before TRL's) is checked as the new one; both at once is ambiguous
    ("train:\n  batch_size: -2\n", "train.per_device_train_batch_size"),
    ("train:\n  grad_accum: 2\n  gradient_accumulation_steps: 4\n", "train"),
    ("train:\n  max_length: -16\n", "train.max_length"),
    ("eval_exec:\n  memory_mb: -64\n", "eval_exec.memory_mb"),
    ("build:\n  split: [-0.5, 1.0, 0.5]\n", "build.split"),
    ("build:\n  split: [0, 0, 0]\n", "build.split"),
    ("build:\n  mixture: {commit: -1}\n", "build.mixture"),
    ("build:\n  mixture: {commit: .nan}\n", "build.mixture"),
    ("build:\n  fim:\n    cut_weights: {line: .inf}\n", "build.fim.cut_weights"),
    ("eval_exec:\n  k: [0]\n", "eval_exec.k.0"),
    ("train:\n  seed: -1\n", "train.seed"),
    ("train:\n  target_modules: []\n", "train.target_modules"),
    ("train:\n  lr_scheduler_type: bogus\n", "train.lr_scheduler_type"),
]


@pytest.mark.parametrize(("text", "field"), BAD_CONFIGS, ids=[f for _, f in BAD_CONFIGS])
def test_bad_config_is_one_line_naming_the_field(monkeypatch, capsys, tmp_path, text, field):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    args = ("build", "--out", str(tmp_path), "-c", str(cfg))
    line = in_process(monkeypatch, capsys, *args).one_line_error()
    assert f"'{field}'" in line and "sk-do-not-print-me" not in line


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("build.tasks=[commit", "--set build.tasks: the value is not valid YAML"),
        ("train.optim=bogus", "'train.optim'"),
        ("mine.ref.x=1", "'mine.ref'"),
    ],
    ids=["not-yaml", "unknown-optimizer", "not-a-section"],
)
def test_bad_override_is_one_line(monkeypatch, capsys, tmp_path, override, message):
    args = ("build", "--out", str(tmp_path), "--set", override)
    line = in_process(monkeypatch, capsys, *args).one_line_error()
    assert message in line


def test_config_that_is_not_text(monkeypatch, capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"mine:\n  ref: \xff\xfe\n")
    args = ("build", "--out", str(tmp_path), "-c", str(cfg))
    assert "not UTF-8 text" in in_process(monkeypatch, capsys, *args).one_line_error()


# --- data files -----------------------------------------------------------------------------


def _jsonl_broken_at(path, line: int, total: int, bad: bytes) -> None:
    rows = [json.dumps({"instruction": "say", "output": f"{i}"}).encode() for i in range(total)]
    rows[line - 1] = bad
    path.write_bytes(b"\n".join(rows) + b"\n")


def test_instruct_file_broken_on_line_5000(monkeypatch, capsys, tmp_path):
    data = tmp_path / "data.jsonl"
    _jsonl_broken_at(data, 5000, 6000, b'{"instruction": "add", "output": "x" ')
    sets = ["build.tasks=[instruct]", f"build.instruct.sources=[{data}]",
            "build.instruct.chat_template=false"]  # fmt: skip
    args = ("build", "--out", str(tmp_path / "run"), *(x for s in sets for x in ("--set", s)))
    assert f"{data}:5000: invalid JSON" in in_process(monkeypatch, capsys, *args).one_line_error()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"prompt": "a", "completion": ', ":5000: invalid JSON"),
        (b'{"prompt": "caf\xe9"}', ":5000: not UTF-8 text"),
        (b"[1, 2]", ":5000: expected a JSON object, got list"),
    ],
    ids=["invalid-json", "not-utf8", "not-an-object"],
)
def test_dataset_split_broken_on_line_5000(monkeypatch, capsys, tmp_path, bad, message):
    """`train` reads datasets/<task>/*.jsonl through fsutil.read_jsonl, before any model."""
    split = tmp_path / "datasets" / "commit" / "train.jsonl"
    split.parent.mkdir(parents=True)
    _jsonl_broken_at(split, 5000, 5001, bad)
    args = ("train", "--out", str(tmp_path), "--set", "model.name=/nonexistent/model")
    assert f"{split}{message}" in in_process(monkeypatch, capsys, *args).one_line_error()


@pytest.mark.parametrize(
    "args",
    [
        ("build", "--set", "build.tasks=[fim]", "--set", "model.name=/nonexistent/model"),
        ("serve", "--model", "/nonexistent/model"),
    ],
    ids=["build", "serve"],
)
def test_model_path_that_does_not_exist(monkeypatch, capsys, tmp_path, args):
    args = (*args, "--out", str(tmp_path)) if args[0] == "build" else args
    ran = in_process(monkeypatch, capsys, *args)
    assert ran.code == 2 and ran.lines[-1].startswith("error: model not found: /nonexistent/model")
    assert len(ran.lines) <= 2  # serve says "loading the model..." first


# --- a hostile teacher ----------------------------------------------------------------------


@pytest.fixture
def teacher_env(monkeypatch):
    def point_to(url: str) -> None:
        monkeypatch.setenv("REPOTUNE_TEACHER_BASE_URL", url)
        monkeypatch.delenv("REPOTUNE_TEACHER_API_KEY", raising=False)

    return point_to


def _cfg(tmp_path, **kw) -> ExplainTaskConfig:
    base = {"teacher_model": "t", "backoff_seconds": 0.01, "cache_dir": str(tmp_path),
            "timeout_seconds": 0.5, "max_retries": 1, "concurrency": 1}  # fmt: skip
    return ExplainTaskConfig(**{**base, **kw})


def _ask(cfg, n: int = 1) -> list[str | None]:
    teacher = make_teacher(cfg)
    msgs = [[{"role": "user", "content": f"explain {i}"}] for i in range(n)]
    return ask_all(teacher, msgs, AnswerCache(cfg.cache_dir), cfg, lambda _: None)


GARBAGE = [
    b"<html><body>502 Bad Gateway</body></html>",
    b'{"choices": []}',
    b'{"choices": [{"message": {"content": null}}]}',
    b'{"choices": [{"message": {"content": "   "}}]}',
    b"\x00\xff" * 100,
]


def test_garbage_answers_are_recorded_skips(tmp_path, teacher_env):
    code = "def area(w, h):\n    x = w * h\n    return x\n"
    snap = Snapshot("ab" * 20, 1, [SourceFile(f"m{i}.py", "python", code + f"# {i}\n")
                                   for i in range(len(GARBAGE))])  # fmt: skip
    cfg = BuildConfig(explain=_cfg(tmp_path))
    dropped: Counter[str] = Counter()
    with FakeTeacher([("garbage", g) for g in GARBAGE]) as server:
        teacher_env(server.url)
        rows = explain_examples(snap, cfg, dropped, lambda _: None)
    assert rows == [] and dropped["teacher_gave_no_answer"] == len(GARBAGE)
    assert len(server.requests) == len(GARBAGE)  # garbage is not retried, nor cached
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(
    ("script", "last"),
    [
        ([("sleep", 30)] * 2, "no answer within 0.5 s"),  # accepts, never answers
        ([("trickle", 0.05)] * 2, "no answer within 0.5 s"),  # a byte every 50 ms, for ~4 s
        ([503, ("sleep", 30)], "no answer within 0.5 s"),
        ([("cut", 0)] * 2, "connection failed"),  # the answer stops half-way
        ([429, 500], "HTTP 500"),
    ],
    ids=["never-answers", "trickle", "503-then-never-answers", "cut", "429-then-500"],
)
def test_a_teacher_that_hangs_or_fails_ends_in_a_clear_error(tmp_path, teacher_env, script, last):
    with FakeTeacher(script) as server:
        teacher_env(server.url)
        start = time.monotonic()
        with pytest.raises(UserError, match=f"failed 2 times \\(last: {last}.*run the build again"):
            _ask(_cfg(tmp_path))
        assert time.monotonic() - start < 3.0  # two tries of 0.5 s each, and a back-off
        assert len(server.requests) == 2


def test_a_teacher_that_recovers_after_a_cut_and_a_trickle(tmp_path, teacher_env):
    with FakeTeacher([("cut", 0), ("trickle", 0.05)]) as server:
        teacher_env(server.url)
        (answer,) = _ask(_cfg(tmp_path, max_retries=2))
    assert answer.startswith("Explanation 3 ")


def test_a_teacher_url_that_is_not_a_url(tmp_path, teacher_env):
    teacher_env("localhost:8000/v1")
    with pytest.raises(UserError, match="REPOTUNE_TEACHER_BASE_URL is not an http"):
        _ask(_cfg(tmp_path))


def test_build_against_a_hanging_teacher_stops_with_one_error(monkeypatch, capsys, tmp_path):
    repo = make_history(tmp_path / "repo", n_commits=2)
    with FakeTeacher([("sleep", 30)] * 20) as server:
        monkeypatch.setenv("REPOTUNE_TEACHER_BASE_URL", server.url)
        start = time.monotonic()
        ran = in_process(
            monkeypatch, capsys, "build", "--out", str(tmp_path / "run"),
            "--set", "build.tasks=[explain]", "--set", f"build.tree.repo={repo}",
            "--set", "build.explain.teacher_model=t", "--set", "build.explain.timeout_seconds=0.5",
            "--set", "build.explain.max_retries=1", "--set", "build.explain.backoff_seconds=0",
            "--set", f"build.explain.cache_dir={tmp_path / 'cache'}",
        )  # fmt: skip
    assert time.monotonic() - start < 15
    assert ran.code == 2 and ran.lines[-1].startswith("error: teacher at 127.0.0.1:"), ran.err
    assert "failed 2 times (last: no answer within 0.5 s)" in ran.lines[-1]
