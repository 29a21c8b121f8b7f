"""Turning chat messages and editor fill-in-the-middle requests into one prompt string.

A model's own chat template is used when its tokenizer has one. Base code models (the embedded
Gemma 3 270M among them) have none, so a plain "User:/Assistant:" transcript stands in, with
"\\nUser:" as a stop string so the model does not write the user's next turn too.
Fill-in-the-middle prompts use the same sentinels as the `fim` task (models/fim.py).
"""

from __future__ import annotations

from typing import Any

TRANSCRIPT_STOP = "\nUser:"


def message_text(content: Any) -> str:
    """OpenAI content is a string or a list of parts; only text parts mean anything here."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        elif isinstance(part, str):
            parts.append(part)
    return "".join(parts)


def chat_prompt(tokenizer: Any, messages: list[dict]) -> tuple[str, list[str], bool]:
    """(prompt, stop strings, whether the prompt already holds the special tokens)."""
    msgs = [{"role": m["role"], "content": message_text(m.get("content"))} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return text, [], True
    lines = []
    for m in msgs:
        if m["role"] in ("system", "developer"):
            lines.append(m["content"].strip() + "\n")
        elif m["role"] == "assistant":
            lines.append(f"Assistant: {m['content'].strip()}")
        else:
            lines.append(f"User: {m['content'].strip()}")
    lines.append("Assistant:")
    return "\n".join(lines), [TRANSCRIPT_STOP], False


def fim_prompt(tokenizer: Any, prefix: str, suffix: str) -> str:
    """Prefix-suffix-middle prompt in the model's own FIM format (or the reserved tokens the
    fim task trained it on); ValueError when the model has neither."""
    from repotune.errors import UserError
    from repotune.models.fim import fim_tokens_for

    try:
        tokens = fim_tokens_for(tokenizer)
    except UserError as exc:
        raise ValueError(f"`suffix` (fill-in-the-middle) is not supported: {exc}") from None
    return tokens.psm(prefix, suffix)
