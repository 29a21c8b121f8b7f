"""`repotune chat`: turns read from stdin, the history kept across them and fed to the model."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from repotune.chat import ChatSession, run_chat
from repotune.serve.engine import Sampling, load_engine


@pytest.fixture(scope="module")
def engine(tiny_model):
    return load_engine(model=tiny_model, dtype="float32")


def _chat(session: ChatSession, text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    turns = run_chat(session, io.StringIO(text), out, err)
    return turns, out.getvalue(), err.getvalue()


def test_history_is_kept_across_turns(engine, prompts):
    session = ChatSession(engine, system="Be brief.", sampling=Sampling(max_tokens=6))
    turns, out, _ = _chat(session, "first question\nsecond \\\nquestion, two lines\n/history\n")
    assert turns == 2
    roles = [m["role"] for m in session.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert session.messages[3]["content"] == "second \nquestion, two lines"
    first_reply = session.messages[2]["content"]
    # the second turn's prompt holds the whole first exchange
    assert "Be brief." in prompts[1] and "User: first question" in prompts[1]
    assert f"Assistant: {first_reply}".rstrip() in prompts[1]
    assert "[user] first question" in out and "[system] Be brief." in out


def test_reset_and_exit(engine, prompts):
    session = ChatSession(engine, sampling=Sampling(max_tokens=4))
    turns, _, err = _chat(session, "one\n/reset\ntwo\n/exit\nnever asked\n")
    assert turns == 2 and "history cleared" in err
    assert "one" not in prompts[1]
    assert [m["content"] for m in session.messages if m["role"] == "user"] == ["two"]


def test_oldest_turns_go_when_the_context_is_full(engine, monkeypatch):
    session = ChatSession(engine, system="sys", sampling=Sampling(max_tokens=8))
    monkeypatch.setattr(engine, "context", 60)
    turns, _, _ = _chat(session, "".join(f"question number {i} about code\n" for i in range(8)))
    assert turns == 8
    assert session.messages[0] == {"role": "system", "content": "sys"}
    users = [m["content"] for m in session.messages if m["role"] == "user"]
    assert users[-1] == "question number 7 about code" and len(users) < 8


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory) -> str:
    """An untrained LoRA adapter for the tiny model: enough to load base + adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("adapter")
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    peft.save_pretrained(str(out))
    return str(out)


def test_chat_command_reads_stdin(tiny_model, adapter):
    res = subprocess.run(
        [sys.executable, "-m", "repotune.cli", "chat", "--model", tiny_model,
         "--adapter", adapter, "--merge", "--dtype", "float32", "--max-new-tokens", "5"],
        input="hello\nand again\n/history\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "loaded" in res.stderr and "Traceback" not in res.stderr
    assert "[user] hello\n" in res.stdout and "[user] and again\n" in res.stdout


def test_chat_help_has_an_example():
    from typer.testing import CliRunner

    from repotune.cli import app

    res = CliRunner().invoke(app, ["chat", "--help"])
    assert res.exit_code == 0 and "Example: repotune chat" in res.output
