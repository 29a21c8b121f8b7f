"""Shared fixtures: a tiny random model, and no network access from transformers or the hub."""

from __future__ import annotations

import os

import pytest

# Set at import, not in a fixture: huggingface_hub reads these once, when it is first imported,
# and a test module importing transformers at collection time would come before any fixture.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# REPOTUNE_CACHE is deliberately left alone: the embedded-default smoke test uses the real cache
# so it builds once per machine; tests that need an isolated cache monkeypatch it themselves.


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Folder of a tiny random Gemma 3 causal LM with a BPE tokenizer (built once per session)."""
    from repotune.models.tiny import make_tiny_model

    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def warm_cli(tmp_path_factory: pytest.TempPathFactory):
    """The real CLI in forked children of one interpreter that imported torch once, with
    kill -9 at chosen file-system changes (see support/faultcli.py)."""
    from tests.support.faultcli import WarmCLI

    server = WarmCLI(tmp_path_factory.mktemp("cli"))
    yield server
    server.close()


@pytest.fixture()
def prompts(engine, monkeypatch) -> list[str]:
    """Every prompt the module's `engine` fixture is asked to complete, in order."""
    seen: list[str] = []
    stream = engine.stream

    def spy(prompt, *args, **kwargs):
        seen.append(prompt)
        return stream(prompt, *args, **kwargs)

    monkeypatch.setattr(engine, "stream", spy)
    return seen
