"""Ollama Modelfile for an exported GGUF: the prompt template and stop tokens the model needs.

Without a TEMPLATE, Ollama guesses one from a list of known chat templates, and without stop
tokens a model runs on past its answer. So the Modelfile carries both, derived from the
model's own tokenizer:

- A chat template (Jinja) is translated to Ollama's Go-template form by rendering it with
  placeholder messages and cutting the text at the placeholders: the pieces before and after
  a user turn, an assistant turn and the system text. They are put back in Go-template syntax
  in the shape of Ollama's own templates (`.System`, `range .Messages`, the generation prompt
  after the last user turn). A template that does not split this way (it rewrites content, or
  a turn depends on more than its role) is not guessed at: the plain completion template is
  written instead and the caller is told.
- A tokenizer without one (base code models, the embedded default) gets `{{ .Prompt }}`: the
  prompt goes in as it is, as repotune evaluated the model.
- Where the tokenizer has fill-in-the-middle tokens, a request with a `suffix` gets the PSM
  prompt `serve` and the `complete` task build (`{{ if .Suffix }}`), so editor autocomplete
  through Ollama sees the format the model knows.

Stops: the EOS token, every EOS id of generation_config.json, the special tokens that close an
assistant turn, the usual end-of-turn tokens where the tokenizer has them, and a FIM family's
end-of-middle token. Parameters: temperature 0 (greedy, as
every measured number was made) and num_ctx, the model's context capped at NUM_CTX_CAP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repotune.fsutil import atomic_write_text

NAME = "Modelfile"
# End-of-turn tokens of the common chat families: a stop wherever the tokenizer has one as a
# special token, chat template or not (a base model may still emit it, and it never belongs in
# code).
END_OF_TURN = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|EOT|>", "<EOT>")
# Ollama allocates the KV cache for all of num_ctx: the full 32k-128k of current models would
# cost gigabytes on a laptop for contexts an editor never sends.
NUM_CTX_CAP = 8192
# Placeholder message texts: plain words, so templates that trim or escape leave them whole;
# mixed case, so one that changes case is caught.
_SYSTEM, _USER1, _ASSISTANT1, _USER2 = "SysQxz", "UserQxzOne", "AssistantQxzOne", "UserQxzTwo"
# A conversation the pieces must render exactly as the template does before they are used.
_CHECK = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Is this right?\n    x = 1"},
    {"role": "assistant", "content": "Yes: `x = 1`."},
    {"role": "user", "content": "And def f(): pass"},
]


class Untranslatable(ValueError):
    """The chat template does not split into per-role pieces; the message says where."""


@dataclass(frozen=True)
class ChatPieces:
    """A chat template cut at its messages. A rendered conversation is
    `preamble` (or `system_prefix + SYSTEM + system_suffix`), then per user turn
    `user_prefix + CONTENT + user_suffix`, per assistant turn `assistant_prefix + CONTENT +
    assistant_suffix` (no suffix on a final assistant turn, which the model continues), and
    `generation` after a final user turn. `system_merge` set: the system text goes inside the
    first user turn, before its content, followed by `system_merge` (Gemma's templates)."""

    preamble: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation: str
    system_prefix: str | None = None
    system_suffix: str | None = None
    system_merge: str | None = None

    def render(self, messages: list[dict]) -> str:
        """What Ollama's Go template below renders for `messages` (system messages joined as
        Ollama collates them); tests compare it with the Jinja template's own rendering."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] in ("user", "assistant")]
        out = [self.preamble]
        if system and self.system_prefix is not None:
            out = [self.system_prefix, system, self.system_suffix or ""]
        pending = system if self.system_merge is not None else ""
        for i, m in enumerate(turns):
            last = i == len(turns) - 1
            if m["role"] == "user":
                out.append(self.user_prefix)
                if pending:
                    out += [pending, self.system_merge or ""]
                    pending = ""
                out += [m["content"], self.user_suffix, self.generation if last else ""]
            else:
                out += [self.assistant_prefix, m["content"]]
                out.append("" if last else self.assistant_suffix)
        return "".join(out)

    def go_template(self) -> str:
        """The same as an Ollama (Go text/template) TEMPLATE. Written without `{{-`, which
        would also trim whitespace that belongs to a piece."""
        head = self.preamble
        if self.system_prefix is not None:
            head = (
                f"{{{{ if .System }}}}{self.system_prefix}{{{{ .System }}}}{self.system_suffix}"
                f"{{{{ else }}}}{self.preamble}{{{{ end }}}}"
            )
        merged = ""
        if self.system_merge is not None:
            head += "{{ $system := .System }}"
            merged = (
                f"{{{{ if $system }}}}{{{{ $system }}}}{self.system_merge}"
                '{{ $system = "" }}{{ end }}'
            )
        return (
            f"{head}{{{{ range $i, $_ := .Messages }}}}"
            "{{ $last := eq (len (slice $.Messages $i)) 1 }}"
            f'{{{{ if eq .Role "user" }}}}{self.user_prefix}{merged}{{{{ .Content }}}}'
            f"{self.user_suffix}{{{{ if $last }}}}{self.generation}{{{{ end }}}}"
            f'{{{{ else if eq .Role "assistant" }}}}{self.assistant_prefix}{{{{ .Content }}}}'
            f"{{{{ if not $last }}}}{self.assistant_suffix}{{{{ end }}}}"
            "{{ end }}{{ end }}"
        )


def chat_pieces(tokenizer: Any) -> ChatPieces | None:
    """The tokenizer's chat template cut into pieces; None without a template. A leading BOS
    is left out where the tokenizer adds it itself (llama.cpp then adds it too)."""
    if not getattr(tokenizer, "chat_template", None):
        return None

    def render(messages: list[tuple[str, str]], generation: bool) -> str:
        msgs = [{"role": r, "content": c} for r, c in messages]
        try:
            return tokenizer.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=generation
            )
        except Exception as err:  # a template's raise_exception() or a Jinja error
            raise Untranslatable(f"the template refused {[r for r, _ in messages]}: {err}") from err

    one = render([("user", _USER1)], False)
    with_gen = render([("user", _USER1)], True)
    if not with_gen.startswith(one) or one.count(_USER1) != 1:
        raise Untranslatable("the generation prompt is not added after the last turn")
    generation = with_gen[len(one) :]
    head, user_suffix = one.split(_USER1)
    answered = render([("user", _USER1), ("assistant", _ASSISTANT1)], False)
    start = head + _USER1 + user_suffix
    if not answered.startswith(start) or answered.count(_ASSISTANT1) != 1:
        raise Untranslatable("an assistant turn changes the user turn before it")
    assistant_prefix, assistant_suffix = answered[len(start) :].split(_ASSISTANT1)
    two = render([("user", _USER1), ("assistant", _ASSISTANT1), ("user", _USER2)], True)
    start = answered
    if not two.startswith(start) or not two.endswith(_USER2 + user_suffix + generation):
        raise Untranslatable("a second user turn is not rendered like the first")
    user_prefix = two[len(start) : -len(_USER2 + user_suffix + generation)]
    if not head.endswith(user_prefix):
        raise Untranslatable("the first user turn starts unlike the later ones")
    preamble = head[: len(head) - len(user_prefix)]
    bos = getattr(tokenizer, "bos_token", None)
    if bos and preamble.startswith(bos) and _adds_bos(tokenizer):
        preamble = preamble[len(bos) :]
    pieces = ChatPieces(
        preamble, user_prefix, user_suffix, assistant_prefix, assistant_suffix, generation
    )
    pieces = _with_system(pieces, tokenizer, render, bos)
    texts = [v for v in pieces.__dict__.values() if v]
    if any(mark in v for v in texts for mark in ("{{", "}}", '"""')):
        raise Untranslatable(
            'a piece holds "{{", "}}" or """, which Go or the Modelfile would read'
        )
    has_system = pieces.system_prefix is not None or pieces.system_merge is not None
    check = _CHECK if has_system else _CHECK[1:]
    expected = render([(m["role"], m["content"]) for m in check], True)
    if bos and expected.startswith(bos) and _adds_bos(tokenizer):
        expected = expected[len(bos) :]
    if pieces.render(check) != expected:
        raise Untranslatable("a sample conversation renders differently from the pieces")
    return pieces


def _with_system(pieces: ChatPieces, tokenizer: Any, render, bos: str | None) -> ChatPieces:
    """Where the template puts a system message: its own turn, inside the first user turn,
    or nowhere (refused or dropped: Ollama's system text is then not shown to the model)."""
    try:
        text = render([("system", _SYSTEM), ("user", _USER1)], True)
    except Untranslatable:
        return pieces
    if _SYSTEM not in text:
        return pieces
    if bos and text.startswith(bos) and _adds_bos(tokenizer):
        text = text[len(bos) :]
    p = pieces
    tail = p.user_prefix + _USER1 + p.user_suffix + p.generation
    if text.endswith(tail) and text[: -len(tail)].count(_SYSTEM) == 1:
        before, after = text[: -len(tail)].split(_SYSTEM)
        return ChatPieces(**{**p.__dict__, "system_prefix": before, "system_suffix": after})
    lead, end = p.preamble + p.user_prefix + _SYSTEM, _USER1 + p.user_suffix + p.generation
    if text.startswith(lead) and text.endswith(end) and len(text) >= len(lead) + len(end):
        merge = text[len(lead) : len(text) - len(end)]
        return ChatPieces(**{**p.__dict__, "system_merge": merge})
    raise Untranslatable("the system message is neither its own turn nor in the first one")


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def fim_template(tokens) -> str:
    """PSM with Ollama's `.Prompt` (before the cursor) and `.Suffix` (after it)."""
    return (
        tokens.psm("\x00P", "\x00S")
        .replace("\x00P", "{{ .Prompt }}")
        .replace("\x00S", "{{ .Suffix }}")
    )


def stop_tokens(tokenizer: Any, model_dir: Path, pieces: ChatPieces | None, fim) -> list[str]:
    """EOS, generation_config's EOS ids, the special tokens closing an assistant turn, the
    END_OF_TURN tokens the tokenizer has, and the FIM family's end-of-middle token, in that
    order, each once."""
    found = [tokenizer.eos_token]
    gen = Path(model_dir) / "generation_config.json"
    if gen.is_file():
        ids = json.loads(gen.read_text()).get("eos_token_id")
        ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
        found += tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    special = set(tokenizer.all_special_tokens) | _added_special(tokenizer)
    if pieces is not None:
        closing = pieces.assistant_suffix
        found += sorted((t for t in special if t and t in closing), key=closing.index)
    found += [t for t in END_OF_TURN if t in special]
    if fim is not None and fim.eot:
        found.append(fim.eot)
    # A stop Ollama's parser cannot quote is left out rather than written wrong.
    return [t for t in dict.fromkeys(found) if t and not any(c in t for c in '"\\\n')]


def _added_special(tokenizer: Any) -> set[str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return {t.content for t in decoder.values() if getattr(t, "special", False)}


def modelfile_text(gguf_name: str, template: str, stops: list[str], num_ctx: int) -> str:
    if '"""' in template:  # chat_pieces refuses such pieces; FIM sentinels have none
        raise ValueError('a TEMPLATE cannot hold """')
    lines = [
        "# Written by `repotune export`; use: ollama create NAME -f Modelfile",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
        *(f'PARAMETER stop "{s}"' for s in stops),
        "PARAMETER temperature 0",
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"


def write_modelfile(gguf: Path, model_dir: Path) -> dict:
    """Write NAME next to `gguf` for the HF folder `model_dir` it was exported from; returns
    {path, template: chat|completion, fim, stops, num_ctx, note}."""
    from transformers import AutoTokenizer

    from repotune.models.fim import detect_fim

    gguf, model_dir = Path(gguf), Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    note = None
    try:
        pieces = chat_pieces(tokenizer)
    except Untranslatable as err:
        pieces, note = None, f"chat template not translated ({err}); wrote a completion template"
    fim = detect_fim(tokenizer)
    body = pieces.go_template() if pieces is not None else "{{ .Prompt }}"
    if fim is not None:
        body = f"{{{{ if .Suffix }}}}{fim_template(fim)}{{{{ else }}}}{body}{{{{ end }}}}"
    config = json.loads((model_dir / "config.json").read_text())
    config = config.get("text_config", config)
    num_ctx = min(int(config.get("max_position_embeddings") or NUM_CTX_CAP), NUM_CTX_CAP)
    stops = stop_tokens(tokenizer, model_dir, pieces, fim)
    path = gguf.parent / NAME
    atomic_write_text(path, modelfile_text(gguf.name, body, stops, num_ctx))
    return {
        "path": str(path),
        "template": "chat" if pieces is not None else "completion",
        "fim": fim.family if fim is not None else None,
        "stops": stops,
        "num_ctx": num_ctx,
        "note": note,
    }
