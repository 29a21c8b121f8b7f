"""The explain task's teacher, against a real HTTP server on loopback (support/teacherserver.py)."""

from collections import Counter

import pytest
from pydantic import ValidationError

from repotune.build.explain import explain_examples, select_units
from repotune.build.teacher import AnswerCache, ask_all, make_teacher
from repotune.code.tree import Snapshot, SourceFile
from repotune.config import BuildConfig, ExplainTaskConfig
from repotune.errors import UserError
from tests.support.teacherserver import FakeTeacher

CODE = "def area(w, h):\n    if w < 0:\n        raise ValueError(w)\n    return w * h\n"


def _cfg(tmp_path, **kw):
    base = {"teacher_model": "teach-1", "backoff_seconds": 0.01, "cache_dir": str(tmp_path)}
    return ExplainTaskConfig(**{**base, **kw})


@pytest.fixture
def env(monkeypatch):
    def point_to(server):
        monkeypatch.setenv("REPOTUNE_TEACHER_BASE_URL", server.url)
        monkeypatch.setenv("REPOTUNE_TEACHER_API_KEY", "sk-test")

    return point_to


def _ask(cfg, prompts, said=None):
    teacher = make_teacher(cfg)
    msgs = [[{"role": "user", "content": p}] for p in prompts]
    sink = said if said is not None else []
    out = ask_all(teacher, msgs, AnswerCache(cfg.cache_dir), cfg, sink.append)
    return out, teacher


def test_retries_429_then_succeeds_and_cache_avoids_a_second_request(tmp_path, env):
    with FakeTeacher([429]) as server:
        env(server)
        said = []
        (answer,), teacher = _ask(_cfg(tmp_path), ["explain x"], said)
        assert answer.startswith("Explanation 2 ")
        assert len(server.requests) == 2 and teacher.requests_sent == 2
        assert server.headers[0]["Authorization"] == "Bearer sk-test"
        assert server.requests[0]["model"] == "teach-1"
        assert "1 requests to teach-1 at 127.0.0.1" in said[0] and "tokens" in said[0]
        (again,), _ = _ask(_cfg(tmp_path), ["explain x"], said)
        assert again == answer and len(server.requests) == 2  # from the cache
        assert "1 answers cached; 0 requests" in said[1]


def test_timeouts_and_server_errors_are_retried(tmp_path, env):
    with FakeTeacher([("sleep", 0.6), 503, 200]) as server:
        env(server)
        (answer,), _ = _ask(_cfg(tmp_path, timeout_seconds=0.3), ["explain y"])
        assert answer is not None and len(server.requests) == 3


def test_gives_up_after_retries_and_resumes_from_the_cache(tmp_path, env):
    cfg = _cfg(tmp_path, max_retries=1, concurrency=1)
    with FakeTeacher([200, 500, 500]) as server:
        env(server)
        with pytest.raises(UserError, match="failed 2 times .*HTTP 500.* run the build again"):
            _ask(cfg, ["first", "second"])
        assert len(server.requests) == 3
        answers, _ = _ask(cfg, ["first", "second"])  # the server has recovered
        assert all(answers) and len(server.requests) == 4  # only the missing answer


def test_refused_key_and_rejected_request(tmp_path, env):
    with FakeTeacher([401]) as server:
        env(server)
        with pytest.raises(UserError, match="HTTP 401.*REPOTUNE_TEACHER_API_KEY"):
            _ask(_cfg(tmp_path), ["x"])
        assert len(server.requests) == 1
    with FakeTeacher([400]) as server:
        env(server)
        (answer,), _ = _ask(_cfg(tmp_path), ["too long"])
        assert answer is None and len(server.requests) == 1


def test_endpoint_only_from_the_environment(monkeypatch):
    monkeypatch.delenv("REPOTUNE_TEACHER_BASE_URL", raising=False)
    with pytest.raises(UserError, match="set REPOTUNE_TEACHER_BASE_URL"):
        make_teacher(ExplainTaskConfig(teacher_model="m"))
    with pytest.raises(ValidationError):
        BuildConfig.model_validate({"explain": {"base_url": "http://example.invalid/v1"}})


def test_explain_rows_from_code_units(tmp_path, env):
    snap = Snapshot(
        "cd" * 20,
        99,
        [
            SourceFile("geo.py", "python", CODE + "\n\ndef one():\n    return 1\n"),
            SourceFile("notes.bb", "bitbake", 'A = "1"\nB = "2"\nC = "3"\n'),
        ],
    )
    cfg = BuildConfig(explain=_cfg(tmp_path, min_lines=3))
    dropped = Counter()
    assert [u["name"] for u in select_units(snap, cfg, dropped)] == ["area", "block"]
    with FakeTeacher() as server:
        env(server)
        rows = explain_examples(snap, cfg, dropped, lambda _: None)
    assert len(rows) == 2 and len(server.requests) == 2
    row = rows[0]
    assert row["prompt"].startswith("### Instruction:\nExplain this code.\n\n### File: geo.py\n")
    assert CODE in row["prompt"] and row["prompt"].endswith("### Explanation:\n")
    assert row["completion"].startswith("Explanation ") and row["completion"].endswith(".\n")
    assert row["meta"]["teacher"] == "teach-1" and row["meta"]["lines"] == [0, 3]
    users = [r["messages"][-1]["content"] for r in server.requests]  # any order: 4 threads
    assert any("File: geo.py\n```python\n" + CODE + "```" in u for u in users)
    cfg.explain.max_units = 1
    assert len(select_units(snap, cfg, dropped)) == 1 and dropped["over_max_units"] == 1


def test_local_teacher(tmp_path, tiny_model):
    cfg = _cfg(tmp_path, teacher="local", teacher_model=tiny_model, max_tokens=4)
    teacher = make_teacher(cfg)
    answers = ask_all(
        teacher, [[{"role": "user", "content": CODE}]], AnswerCache(tmp_path), cfg, print
    )
    assert teacher.requests_sent == 1 and len(answers) == 1
    assert teacher.model == f"local:{tiny_model}"
