"""`/v1/completions` builds the prompts the `complete` task trained and measured the model on,
and `serve --retrieval` puts the repository's snippets before them.

The server runs in a thread of this process with the tiny model; the engine is spied on, so
each test compares the exact prompt string the model receives with the task's own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import yaml

from repotune.build.complete import add_retrieval, complete_examples
from repotune.code.languages import is_code
from repotune.code.tree import read_tree
from repotune.config import BuildConfig, load_config
from repotune.models.fim import completion_prompt, detect_fim
from repotune.records import Commit, FileChange, Hunk
from repotune.serve.app import create_app
from repotune.serve.engine import load_engine
from repotune.serve.prompts import CompletionPrompts, completion_settings
from tests.serve.test_serve import _start
from tests.support.clirun import in_process
from tests.support.gitrepo import git


@pytest.fixture(scope="module")
def engine(tiny_model):
    return load_engine(model=tiny_model, dtype="float32", name="tiny")


@contextmanager
def _serving(app) -> Iterator[openai.OpenAI]:
    server, thread, port = _start(app)
    try:
        yield openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _count(tokenizer):
    """Token counts as the build counts them (build/context.py)."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _commit() -> Commit:
    """A long Python file whose middle lines the commit added: prefix and suffix both need
    trimming, so the task's prompt is not a plain PSM of the two."""
    funcs = [f"def step_{i}(value):\n    return value * {i} + offset_{i}\n" for i in range(120)]
    lines = "\n".join(funcs).split("\n")
    first = 180  # 1-based
    added = [f"+{line}" for line in lines[first - 1 : first + 5]]
    hunk = Hunk(first, 0, first, len(added), f"@@ -{first},0 +{first},6 @@", added)
    change = FileChange(None, "steps.py", "added", "python", None, "\n".join(lines), 6, 0, [hunk])
    return Commit("a" * 40, [], 1_700_000_000, 1_700_000_000, "Ada", "Add steps", [change])


def _run_dir(tmp_path: Path, complete: dict | None) -> Path | None:
    if complete is None:
        return None
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"build": {"complete": complete}}))
    return run


@pytest.mark.parametrize(
    "complete", [None, {"max_prefix_chars": 900, "max_suffix_chars": 120, "max_prompt_tokens": 64}]
)
def test_suffix_request_gets_the_complete_task_prompt(engine, prompts, tmp_path, complete):
    run = _run_dir(tmp_path, complete)
    build = load_config(run / "config.yaml").build if run else BuildConfig()
    tok = engine.tokenizer
    tokens = detect_fim(tok)
    assert tokens is not None  # the tiny model has StarCoder's sentinels: the PSM form
    rows = list(complete_examples(_commit(), build, Counter(), tokens, tokens, _count(tok)))
    assert rows
    settings, index = completion_settings(run)
    assert settings == build.complete and index is None
    app = create_app(engine, completion=CompletionPrompts.for_tokenizer(tok, settings))
    with _serving(app) as client:
        for row in rows:
            client.completions.create(
                model="tiny", prompt=row["_prefix"], suffix=row["_suffix"], max_tokens=1,
                temperature=0,
            )  # fmt: skip
    assert prompts == [row["prompt"] for row in rows]
    # what serve sent before: the whole prefix and suffix, never what the task measured
    assert all(row["prompt"] != tokens.psm(row["_prefix"], row["_suffix"]) for row in rows)


def test_left_to_right_model_gets_the_trimmed_prefix(engine):
    """A model without FIM tokens (the embedded Gemma) was measured on the text before the
    hole alone; a suffix request gets that, not reserved-token sentinels."""
    build, count = BuildConfig(), _count(engine.tokenizer)
    rows = list(complete_examples(_commit(), build, Counter(), None, None, count))
    completion = CompletionPrompts(None, build.complete, count)
    for row in rows:
        served = completion.build(row["_prefix"], row["_suffix"])
        assert served == row["prompt"]
        assert row["_prefix"].endswith(served) and "step_119" not in served


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "scaling.py").write_text(
        "def scale_total(values, factor):\n    total = sum(values)\n    return total * factor\n"
    )
    (repo / "NOTES.md").write_text("scale_total scales the total of values by a factor.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Add scale_total")
    return repo


def test_retrieval_puts_repository_snippets_before_the_prompt(engine, prompts, tmp_path):
    repo = _repo(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "mine_stats.json").write_text(json.dumps({"repo": str(repo)}))
    said: list[str] = []
    settings, index = completion_settings(run, retrieval=True, say=said.append)
    assert index is not None and [s.path for s in index.snippets] == ["scaling.py"]  # code only
    assert len(said) == 1 and "indexed 1 snippets of 1 code files" in said[0]

    tok = engine.tokenizer
    app = create_app(engine, completion=CompletionPrompts.for_tokenizer(tok, settings, index))
    prefix = "def report(values):\n    return scale_total(values, "
    suffix = ")\n"
    with _serving(app) as client:
        res = client.completions.create(
            model="tiny", prompt=prefix, max_tokens=1, temperature=0, echo=True
        )
        client.completions.create(
            model="tiny", prompt=prefix, suffix=suffix, max_tokens=1, temperature=0
        )
    assert res.choices[0].text.startswith(prefix)  # echo gives the client's text back
    plain, fim = prompts
    assert plain.startswith("// scaling.py:1\ndef scale_total(values, factor):\n")
    assert plain.endswith("// ---\n" + prefix)

    # the suffix request's prompt is the `complete` task's retrieval prompt (no language known)
    tokens, count = detect_fim(tok), _count(tok)
    kw = dict(
        max_prefix_chars=settings.max_prefix_chars,
        max_suffix_chars=settings.max_suffix_chars,
        max_prompt_tokens=settings.max_prompt_tokens,
        count_tokens=count,
    )
    row = {"_prefix": prefix, "_suffix": suffix, "meta": {"language": None},
           "prompt": completion_prompt(prefix, suffix, tokens, **kw)}  # fmt: skip
    files = [(f.path, f.text) for f in read_tree(repo).files if is_code(f.language)]
    add_retrieval([row], files, settings, tokens, count)
    assert fim == row["meta"]["retrieval_prompt"]
    assert row["meta"]["retrieved"] == ["scaling.py:1"]


def test_serve_command_indexes_the_repository(tiny_model, tmp_path, monkeypatch, capsys):
    repo = _repo(tmp_path)
    served: dict = {}
    monkeypatch.setattr("repotune.serve.run_server", lambda engine, **kw: served.update(kw))
    ran = in_process(monkeypatch, capsys, "serve", "--model", tiny_model, "--dtype", "float32",
                     "--retrieval", "--repo", str(repo))  # fmt: skip
    assert ran.code == 0, ran.err
    assert [s.path for s in served["completion"].index.snippets] == ["scaling.py"]
    assert "retrieval: indexed 1 snippets" in ran.err

    bad = in_process(monkeypatch, capsys, "serve", "--model", tiny_model, "--repo", str(repo))
    assert "add --retrieval" in bad.one_line_error()
    none = in_process(monkeypatch, capsys, "serve", "--model", tiny_model, "--retrieval")
    assert "--repo PATH" in none.one_line_error()
