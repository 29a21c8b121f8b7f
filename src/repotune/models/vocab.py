"""A tokenizer's vocabulary as plain text, for code that reasons about lines token by token
(the loss weight on changed lines, the end of runaway added lines in decoding)."""

from __future__ import annotations

from typing import Any


def piece_text(piece: str | None) -> str:
    """A vocabulary piece as the text it stands for, as far as line starts need: SentencePiece
    and byte-level BPE mark a space and a newline with their own characters."""
    if piece is None:
        return ""
    if piece == "<0x0A>":
        return "\n"
    return piece.replace("▁", " ").replace("Ġ", " ").replace("Ċ", "\n")


_TEXTS: dict[tuple[str, int], list[str]] = {}


def tokenizer_key(tokenizer: Any) -> tuple[str, int]:
    """What per-tokenizer caches are keyed on: where it came from and its size."""
    return str(getattr(tokenizer, "name_or_path", "")), len(tokenizer)


def vocab_texts(tokenizer: Any) -> list[str]:
    """`piece_text` of every token id, indexed by id; special tokens read as their names.
    Cached per tokenizer: a 262k vocabulary takes a noticeable part of a second."""
    key = tokenizer_key(tokenizer)
    if key not in _TEXTS:
        ids = list(range(len(tokenizer)))
        _TEXTS[key] = [piece_text(p) for p in tokenizer.convert_ids_to_tokens(ids)]
    return _TEXTS[key]


_NEWLINES: dict[tuple[str, int], frozenset[int]] = {}


def newline_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokens whose text holds a newline (where a line can end); cached per
    tokenizer like `vocab_texts`, since a generate call per batch asks for it."""
    key = tokenizer_key(tokenizer)
    if key not in _NEWLINES:
        _NEWLINES[key] = frozenset(i for i, t in enumerate(vocab_texts(tokenizer)) if "\n" in t)
    return _NEWLINES[key]
