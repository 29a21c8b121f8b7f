"""Ollama Modelfiles: a chat template cut into pieces renders every conversation as the Jinja
template does, and the Go template built from the pieces renders it the same (checked with Go's
own text/template where `go` is installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from repotune.train.modelfile import chat_pieces, stop_tokens

# Gemma 3's template: the system text goes inside the first user turn.
GEMMA3 = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
# ChatML with a default system turn when none is given (Qwen 2.5's shape, tools left out).
CHATML = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message.role != 'system' %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}"
    "{%- endif %}"
)
# Llama 3's shape: a BOS the template writes, headers, <|eot_id|> closing every turn.
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + "
    "message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
# Content rewritten (upper-cased): no piece of text stands for a message.
REWRITES = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] | upper }}\n{% endfor %}"

TURN_TOKENS = ["<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>",
               "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]  # fmt: skip
CONVERSATIONS = [
    [("user", "def add(a, b):")],
    [("system", "You review Python."), ("user", "Is this right?\n  x = 1")],
    [("user", "Hi"), ("assistant", "Hello."), ("user", "Write fib")],
    [("system", "Be brief."), ("user", "a"), ("assistant", "b"), ("user", "c")],
]


@pytest.fixture()
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.add_tokens(TURN_TOKENS, special_tokens=True)
    return tok


def _messages(conversation):
    return [{"role": r, "content": c} for r, c in conversation]


@pytest.mark.parametrize(
    "template,closing,system",
    [(GEMMA3, "<end_of_turn>", "merged"), (CHATML, "<|im_end|>", "turn"),
     (LLAMA3, "<|eot_id|>", "turn")],
    ids=["gemma3", "chatml", "llama3"],
)  # fmt: skip
def test_pieces_render_like_the_jinja_template(tokenizer, tmp_path, template, closing, system):
    tokenizer.chat_template = template
    pieces = chat_pieces(tokenizer)
    assert pieces is not None
    assert (pieces.system_merge is not None) == (system == "merged")
    assert (pieces.system_prefix is not None) == (system == "turn")
    for conversation in CONVERSATIONS:
        msgs = _messages(conversation)
        expected = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert pieces.render(msgs) == expected.removeprefix("<bos>")
    # llama.cpp adds the BOS itself (the tokenizer adds one), so the template leaves it out
    assert "<bos>" not in pieces.go_template()
    stops = stop_tokens(tokenizer, tmp_path, pieces, None)
    # the turn's own closing token first, then every other end-of-turn token the vocabulary has
    assert stops[:2] == ["<eos>", closing]
    assert set(stops[2:]) == {"<end_of_turn>", "<|im_end|>", "<|eot_id|>"} - {closing}


def test_a_template_that_rewrites_content_is_not_translated(tokenizer, tmp_path):
    from repotune.train.modelfile import Untranslatable

    tokenizer.chat_template = REWRITES
    with pytest.raises(Untranslatable):
        chat_pieces(tokenizer)
    # export then writes the completion template and says why
    from repotune.train.modelfile import write_modelfile

    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text('{"max_position_embeddings": 2048}')
    info = write_modelfile(tmp_path / "m.gguf", tmp_path / "model")
    assert info["template"] == "completion" and "not translated" in info["note"]
    assert 'TEMPLATE """{{ if .Suffix }}' in (tmp_path / "Modelfile").read_text()


def test_no_template_means_no_pieces(tokenizer):
    assert chat_pieces(tokenizer) is None  # the tiny model's tokenizer has none


_GO_RENDER = """package main

import (
\t"encoding/json"
\t"os"
\t"text/template"
)

type Message struct{ Role, Content string }

func main() {
\tvar in struct {
\t\tTemplate string
\t\tSystem   string
\t\tMessages []Message
\t}
\tjson.NewDecoder(os.Stdin).Decode(&in)
\tt := template.Must(template.New("t").Parse(in.Template))
\tdata := map[string]any{"System": in.System, "Messages": in.Messages}
\tif err := t.Execute(os.Stdout, data); err != nil {
\t\tpanic(err)
\t}
}
"""


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    """A program that renders a Go text/template as Ollama calls it, built once."""
    if shutil.which("go") is None:
        pytest.skip("needs Go (apt-get install golang-go)")
    folder = tmp_path_factory.mktemp("go")
    (folder / "render.go").write_text(_GO_RENDER)
    env = {**os.environ, "GO111MODULE": "off"}
    subprocess.run(["go", "build", "-o", "render", "render.go"], cwd=folder, env=env, check=True)
    return folder / "render"


@pytest.mark.parametrize("template", [GEMMA3, CHATML, LLAMA3], ids=["gemma3", "chatml", "llama3"])
def test_go_text_template_renders_like_the_jinja_template(tokenizer, go_render, template):
    """Ollama passes .System (system messages joined) and .Messages (all of them)."""
    tokenizer.chat_template = template
    pieces = chat_pieces(tokenizer)
    for conversation in CONVERSATIONS:
        msgs = _messages(conversation)
        system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
        turns = [{"Role": m["role"], "Content": m["content"]} for m in msgs]
        payload = {"Template": pieces.go_template(), "System": system, "Messages": turns}
        out = subprocess.run(
            [str(go_render)], input=json.dumps(payload), capture_output=True, text=True, check=True
        ).stdout
        expected = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert out == expected.removeprefix("<bos>")
