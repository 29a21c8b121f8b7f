"""Backends behind one call: an OpenAI-compatible endpoint (a fake server on 127.0.0.1), vLLM
(a stand-in module: vLLM is an optional extra, not installed here) and the spec parsing."""

from __future__ import annotations

import sys
import types

import pytest

from repotune.errors import UserError
from repotune.infer.backends import TransformersBackend, open_backend
from repotune.infer.generate import Decoding
from repotune.infer.openai_backend import OpenAIBackend, code_from_reply
from tests.support.fakeopenai import FakeOpenAI


@pytest.fixture()
def no_openai_env(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "REPOTUNE_OPENAI_BASE_URL",
                 "REPOTUNE_OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "http_proxy", "https_proxy", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_chat_endpoint(monkeypatch, no_openai_env):
    replies = ["Here:\n```python\nreturn a + b\n```\nDone.", "return a - b"]
    with FakeOpenAI(lambda kind, body: replies[: body["n"]]) as server:
        monkeypatch.setenv("REPOTUNE_OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("REPOTUNE_OPENAI_API_KEY", "k-123")
        backend = open_backend("openai:some-model")
        assert isinstance(backend, OpenAIBackend) and backend.api == "chat"
        dec = Decoding(mode="sample", n=2, seed=3, stop=("x", "y", "z", "w", " a"))
        (group,) = backend.complete(["def f(a, b):"], dec, instruction="Fix it.")
        backend.close()
    # the fenced code of the first reply, the whole second one; the 5th stop is applied here
    assert [c.text for c in group] == ["return", "return"]
    kind, body = server.requests[0]
    assert kind == "chat" and body["model"] == "some-model"
    assert body["n"] == 2 and body["seed"] == 3 and body["stop"] == ["x", "y", "z", "w"]
    assert body["messages"][0] == {"role": "system", "content": "Fix it."}
    assert body["messages"][1]["content"] == "def f(a, b):"
    assert server.auth[0] == "Bearer k-123"


def test_completions_endpoint_greedy(monkeypatch, no_openai_env):
    with FakeOpenAI(lambda kind, body: ["    return a + b\ndef other():"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)  # the client's standard variable
        backend = open_backend("openai-completions:local")
        (group,) = backend.complete(["def f(a, b):\n"], Decoding(stop=("\ndef",)))
    assert group[0].text == "    return a + b"
    kind, body = server.requests[0]
    assert kind == "completions" and body["prompt"] == "def f(a, b):\n"
    assert body["temperature"] == 0.0
    assert server.auth[0] == "Bearer not-needed"  # a local server without a key


def test_endpoint_comes_from_the_environment_only(no_openai_env):
    with pytest.raises(UserError, match="REPOTUNE_OPENAI_BASE_URL"):
        open_backend("openai:x").complete(["p"], Decoding())


def test_code_from_reply():
    assert code_from_reply("```c\nint x;\n```") == "int x;\n"
    assert code_from_reply("no fence") == "no fence"
    assert code_from_reply("```\nunterminated") == "unterminated"


def test_local_specs_pick_transformers_without_vllm(tiny_model):
    backend = open_backend(tiny_model, kind="auto")
    assert isinstance(backend, TransformersBackend)
    with pytest.raises(UserError, match="unknown backend"):
        open_backend(tiny_model, kind="tensorrt")


def _fake_vllm(monkeypatch):
    calls: dict = {}

    class Tok:
        def __call__(self, text):
            return {"input_ids": list(range(len(text.split())))}

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(f"t{i}" for i in ids)

    class LLM:
        def __init__(self, **kw):
            calls["init"] = kw

        def get_tokenizer(self):
            return Tok()

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            calls["generate"] = (prompts, params, lora_request)
            out = types.SimpleNamespace(text="x = 1\nSTOP y", cumulative_logprob=-1.5)
            return [types.SimpleNamespace(outputs=[out] * params.n) for _ in prompts]

        def beam_search(self, prompts, params, lora_request=None):
            calls["beam"] = (prompts, params, lora_request)
            seqs = [types.SimpleNamespace(tokens=[0, 1, 7, 8], cum_logprob=-i) for i in range(3)]
            return [types.SimpleNamespace(sequences=seqs) for _ in prompts]

    def params(**kw):
        return types.SimpleNamespace(**kw)

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, params
    sp = types.ModuleType("vllm.sampling_params")
    sp.BeamSearchParams = params
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, i, path: ("lora", name, path)
    for name, mod in [
        ("vllm", vllm),
        ("vllm.sampling_params", sp),
        ("vllm.lora", types.ModuleType("vllm.lora")),
        ("vllm.lora.request", lora),
    ]:  # noqa: E501
        monkeypatch.setitem(sys.modules, name, mod)
    return calls


def test_vllm_backend_plumbing(monkeypatch, tiny_model, tmp_path):
    calls = _fake_vllm(monkeypatch)
    backend = open_backend(tiny_model, adapter=str(tmp_path), kind="vllm", name="tuned")
    groups = backend.complete(["a b"], Decoding(mode="sample", n=2, stop=("STOP",)))
    assert [c.text for c in groups[0]] == ["x = 1\n", "x = 1\n"]
    assert groups[0][0].score == -1.5
    assert calls["init"]["enable_lora"] is True
    assert calls["generate"][2] == ("lora", "tuned", str(tmp_path))
    assert calls["generate"][1].n == 2 and calls["generate"][1].stop == ["STOP"]
    beams = backend.complete(["a b"], Decoding(mode="beam", n=2, num_beams=3))
    assert [c.text for c in beams[0]] == ["t7 t8", "t7 t8"]  # prompt tokens removed
    assert calls["beam"][1].beam_width == 3
