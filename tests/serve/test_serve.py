"""The OpenAI-compatible server, called over 127.0.0.1 with the `openai` client.

The server runs in a thread of this process (uvicorn, port chosen by the OS) and is shut down
by the fixture; one test starts `repotune serve` itself and stops it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import openai
import pytest
import uvicorn

from repotune.serve.app import create_app
from repotune.serve.engine import load_engine

API_KEY = "test-key"


@pytest.fixture(scope="module")
def engine(tiny_model):
    return load_engine(model=tiny_model, dtype="float32", name="tiny")


def _start(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


@pytest.fixture(scope="module")
def client(engine):
    server, thread, port = _start(create_app(engine, api_key=API_KEY, default_max_tokens=24))
    yield openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=0, timeout=60
    )
    server.should_exit = True
    thread.join(timeout=10)


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"


def test_completion_and_its_stream_agree(client):
    kw = dict(model="tiny", prompt="def add(a, b):", max_tokens=12, temperature=0)
    full = client.completions.create(**kw)
    choice = full.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert full.usage.prompt_tokens > 0
    assert 0 < full.usage.completion_tokens <= 12
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens

    chunks = list(client.completions.create(**kw, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == choice.text
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason


def test_stop_sequence_cuts_the_text(client):
    kw = dict(model="tiny", prompt="class Stack:", max_tokens=16, temperature=0)
    text = client.completions.create(**kw).choices[0].text
    assert len(text) > 6
    stop = text[3:6]
    cut = client.completions.create(**kw, stop=[stop]).choices[0]
    assert cut.text == text[: text.index(stop)]
    assert cut.finish_reason == "stop"
    streamed = client.completions.create(**kw, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == cut.text


def test_several_prompts_and_samples(client):
    res = client.completions.create(
        model="tiny", prompt=["def f(x):", "int main"], max_tokens=4, n=2, temperature=0.9, seed=3
    )
    assert sorted(c.index for c in res.choices) == [0, 1, 2, 3]


def test_fill_in_the_middle_with_suffix(client):
    res = client.completions.create(
        model="tiny", prompt="def add(a, b):\n", suffix="\n    return c\n", max_tokens=6,
        temperature=0,
    )  # fmt: skip
    assert res.choices[0].finish_reason in ("stop", "length")


def test_chat_keeps_roles_and_streams(client):
    messages = [
        {"role": "system", "content": "You write Python."},
        {"role": "user", "content": "add two numbers"},
        {"role": "assistant", "content": "def add(a, b): return a + b"},
        {"role": "user", "content": [{"type": "text", "text": "now subtract"}]},
    ]
    full = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=10, temperature=0
    )
    msg = full.choices[0].message
    assert msg.role == "assistant" and isinstance(msg.content, str)
    stream = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=10, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == msg.content
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_bad_requests_get_openai_errors(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="x", max_tokens=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[])
    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="wrong").models.list()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command(tiny_model, tmp_path):
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "repotune.cli", "serve", "--model", tiny_model,
         "--dtype", "float32", "--port", str(port), "--name", "mine"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                assert client.models.list().data[0].id == "mine"
                break
            except openai.APIConnectionError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "repotune serve did not come up"
                time.sleep(0.3)
        res = client.chat.completions.create(
            model="mine", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert res.choices[0].message.role == "assistant"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "serving mine at http://127.0.0.1" in (tmp_path / "serve.log").read_text()


def test_serve_help_has_an_example():
    from typer.testing import CliRunner

    from repotune.cli import app

    res = CliRunner().invoke(app, ["serve", "--help"])
    assert res.exit_code == 0 and "Example: repotune serve" in res.output
