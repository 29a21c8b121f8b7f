"""Fill-in-the-middle token sets per model family, and which one a tokenizer speaks.

A model only infills well in the exact format it was pre-trained on, so the FIM task writes
each family's own sentinels (see ../shared/DESIGN.md, "Formats as the anchors define them"):

    PSM: <prefix-tok> prefix <suffix-tok> suffix <middle-tok>   -> middle
    SPM: <prefix-tok> <suffix-tok> suffix <middle-tok> prefix   -> middle   (StarCoder's SPM)

A model without FIM tokens but with reserved, never-used tokens (Gemma's `<unusedN>`, Llama 3's
`<|reserved_special_token_N|>`) gets its sentinels mapped onto those: they are single tokens
already, so every stage tokenizes the same text the same way with the base tokenizer, nothing
is resized. Training makes their embedding rows trainable where PEFT and TRL allow it (untied
embeddings, train/sft.py); with tied embeddings (Gemma) LoRA alone learns to read them. A
model with neither has no FIM: the build says so and stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repotune.errors import UserError


@dataclass(frozen=True)
class FimTokens:
    """One family's sentinels. `eot` ends a middle where the family has its own token for it
    (Code Llama `<EOT>`, CodeGemma `<|file_separator|>`); training ends middles with EOS."""

    family: str
    prefix: str
    suffix: str
    middle: str
    pad: str | None = None
    eot: str | None = None
    # Code Llama's reference prompt puts a space after <PRE> and before <MID> (sentencepiece).
    spaced: bool = False
    # Sentinels are reserved tokens standing in for FIM tokens the model never learned.
    reserved: bool = False

    @property
    def sentinels(self) -> tuple[str, ...]:
        return (self.prefix, self.suffix, self.middle)

    def psm(self, prefix: str, suffix: str) -> str:
        """Prefix-suffix-middle prompt: the completion is the middle."""
        if self.spaced:
            return f"{self.prefix} {prefix} {self.suffix}{suffix} {self.middle}"
        return f"{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"

    def spm(self, prefix: str, suffix: str) -> str:
        """Suffix-prefix-middle prompt (StarCoder's variant): the completion is the middle."""
        if self.spaced:
            return f"{self.prefix} {self.suffix}{suffix} {self.middle} {prefix}"
        return f"{self.prefix}{self.suffix}{suffix}{self.middle}{prefix}"


FAMILIES: dict[str, FimTokens] = {
    "starcoder": FimTokens(
        "starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>"
    ),
    "santacoder": FimTokens(
        "santacoder", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", "<fim-pad>"
    ),
    "codellama": FimTokens("codellama", "<PRE>", "<SUF>", "<MID>", eot="<EOT>", spaced=True),
    "deepseek": FimTokens("deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    "qwen": FimTokens("qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>"),
    "codegemma": FimTokens(
        "codegemma", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", eot="<|file_separator|>"
    ),
}  # fmt: skip
# Families told apart by a token only one of them has (Qwen and CodeGemma share the sentinels).
_MARKERS = {"qwen": ("<|file_sep|>", "<|repo_name|>"), "codegemma": ("<|file_separator|>",)}
_DETECT_ORDER = ("starcoder", "santacoder", "codellama", "deepseek", "qwen", "codegemma")
_RESERVED_PATTERNS = ("<unused{}>", "<|reserved_special_token_{}|>")


def vocabulary(tokenizer: Any) -> set[str]:
    """Every token string the tokenizer knows as one token (base vocab and added tokens)."""
    vocab = set(tokenizer.get_vocab())
    vocab.update(str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values())
    return vocab


def detect_fim(tokenizer: Any) -> FimTokens | None:
    """The family whose sentinels are all single tokens of `tokenizer`, or None."""
    vocab = vocabulary(tokenizer)
    for name in _DETECT_ORDER:
        fam = FAMILIES[name]
        if not all(t in vocab for t in fam.sentinels):
            continue
        markers = _MARKERS.get(name)
        others = [m for n, ms in _MARKERS.items() if n != name for m in ms]
        if markers and not any(m in vocab for m in markers) and any(m in vocab for m in others):
            continue  # the shared sentinels belong to the other family
        return fam
    return None


def reserved_fim(tokenizer: Any) -> FimTokens | None:
    """FIM sentinels mapped onto four reserved tokens, for a model without FIM tokens."""
    vocab = vocabulary(tokenizer)
    for pattern in _RESERVED_PATTERNS:
        names = [pattern.format(i) for i in range(4)]
        if all(n in vocab for n in names):
            return FimTokens("reserved", *names[:3], pad=names[3], reserved=True)
    return None


def fim_tokens_for(tokenizer: Any | None, choice: str = "auto", model: str = "") -> FimTokens:
    """The token set to write: `choice` if named, else the tokenizer's own, else reserved
    tokens; a UserError that names the model when it has neither."""
    if choice != "auto":
        return FAMILIES[choice]
    if tokenizer is None:
        raise UserError("fim: build.fim.tokens is 'auto' but no tokenizer could be loaded")
    found = detect_fim(tokenizer) or reserved_fim(tokenizer)
    if found is None:
        raise UserError(
            f"FIM is unavailable for {model or 'this model'}: its tokenizer has no FIM tokens "
            f"({', '.join(FAMILIES)}) and no reserved tokens to stand in for them; use a model "
            "with FIM tokens or drop 'fim' from build.tasks"
        )
    return found


def trainable_fim_ids(tokenizer: Any, rows: list[dict], model: Any) -> list[int]:
    """Ids of reserved tokens the rows use as FIM sentinels, whose never-trained embedding
    rows training should update; empty when the model has real FIM tokens, and for models
    with tied input/output embeddings (Gemma): PEFT then wraps the tied LM head too, which
    TRL's fused LM-head loss cannot read, so LoRA alone learns the sentinels there."""
    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    if getattr(config, "tie_word_embeddings", False):
        return []
    fam = reserved_fim(tokenizer)
    if fam is None or detect_fim(tokenizer) is not None:
        return []
    used = [t for t in fam.sentinels if any(t in r["prompt"] for r in rows)]
    return sorted(tokenizer.convert_tokens_to_ids(used))


def keep_tail(text: str, limit: int) -> str:
    """The end of `text`, at most `limit` characters, starting at a line start."""
    if len(text) <= limit:
        return text
    cut = text.find("\n", len(text) - limit - 1)
    return text[cut + 1 :] if cut >= 0 else ""


def keep_head(text: str, limit: int) -> str:
    """The start of `text`, at most `limit` characters, ending after a newline."""
    if len(text) <= limit:
        return text
    return text[: text.rfind("\n", 0, limit) + 1]


def _tail_chars(text: str, limit: int) -> str:
    """The end of `text`, at most `limit` characters, from a line start where one is in
    reach (the hole's own line is always kept whole up to the hole)."""
    if len(text) <= limit:
        return text
    kept = keep_tail(text, limit)
    line_start = text.rfind("\n") + 1
    return kept if len(kept) >= len(text) - line_start else text[len(text) - limit :]


def completion_prompt(
    prefix: str,
    suffix: str,
    tokens: FimTokens | None,
    *,
    max_prefix_chars: int,
    max_suffix_chars: int,
    max_prompt_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    context: str = "",
) -> str:
    """The prompt of a code completion at a hole: the text before it (left-to-right, `tokens`
    None) or PSM with `tokens`' sentinels, each side trimmed to the text nearest the hole until
    the prompt fits `max_prompt_tokens`. `context` (retrieved snippets) goes before the
    prefix and is not trimmed. The `complete` task and `serve`'s `suffix` requests both build
    their prompts here, so the editor gets what was measured."""
    budget = (max_prefix_chars, max_suffix_chars if tokens is not None else 0)
    while True:
        before = _tail_chars(prefix, budget[0])
        after = keep_head(suffix, budget[1]) if tokens is not None else ""
        prompt = before if tokens is None else tokens.psm(before, after)
        if (
            count_tokens is None
            or max_prompt_tokens is None
            or count_tokens(prompt) <= max_prompt_tokens
            or not (before or after)
        ):
            break
        budget = (len(before) * 3 // 4, len(after) * 3 // 4)
    if not context:
        return prompt
    if tokens is None:
        return context + prompt
    return tokens.psm(context + before, after)
