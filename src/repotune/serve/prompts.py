"""Turning chat messages and editor completion requests into one prompt string.

A model's own chat template is used when its tokenizer has one. Base code models (the embedded
Gemma 3 270M among them) have none, so a plain "User:/Assistant:" transcript stands in, with
"\\nUser:" as a stop string so the model does not write the user's next turn too.

A completion with a `suffix` gets the prompt the `complete` task trained and measured the model
on (`CompletionPrompts`), so an editor sees the quality the run's report promises; with
`serve --retrieval` every completion also gets the repository's BM25 snippets before it, as the
task's "+ retrieval" rows did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repotune.code.languages import is_code
from repotune.config import CompleteTaskConfig, TreeConfig
from repotune.errors import UserError
from repotune.infer.retrieval import Index, context_block, query_of, windows
from repotune.models.fim import FimTokens, completion_prompt, detect_fim
from repotune.rundir import mine_stats, read_config

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


@dataclass
class CompletionPrompts:
    """How /v1/completions turns a request into a prompt: with a `suffix`, the `complete`
    task's test prompt (`completion_prompt` with the model's own FIM sentinels, or
    left-to-right without them, trimmed to the run's `build.complete` limits); with `index`,
    that prompt after the BM25 snippets, as the task's `retrieval_prompt`."""

    tokens: FimTokens | None
    settings: CompleteTaskConfig
    count_tokens: Callable[[str], int] | None = None
    index: Index | None = None

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer: Any,
        settings: CompleteTaskConfig | None = None,
        index: Index | None = None,
    ) -> CompletionPrompts:
        settings = settings or CompleteTaskConfig()
        count = _token_counter(tokenizer) if settings.max_prompt_tokens is not None else None
        return cls(detect_fim(tokenizer), settings, count, index)

    def build(self, prompt: str, suffix: str | None) -> str:
        """The prompt for `prompt` (the text before the cursor) and `suffix` (after it). With
        neither a suffix nor an index, the client's prompt as it is: a plain completion."""
        if suffix is None and self.index is None:
            return prompt
        s = self.settings
        # No suffix: the left-to-right form, the test prompt of a model without FIM tokens.
        tokens = self.tokens if suffix is not None else None
        after = suffix or ""
        kw: dict[str, Any] = dict(
            max_prefix_chars=s.max_prefix_chars,
            max_suffix_chars=s.max_suffix_chars,
            max_prompt_tokens=s.max_prompt_tokens,
            count_tokens=self.count_tokens,
        )
        plain = completion_prompt(prompt, after, tokens, **kw)
        if self.index is None:
            return plain
        found = self.index.search(query_of(prompt, s.retrieval_lines), s.retrieval_snippets, plain)
        # An OpenAI request names no file, so the snippets are marked with the default `//`.
        context = context_block(found, None, s.retrieval_chars)
        return completion_prompt(prompt, after, tokens, **kw, context=context) if context else plain


def _token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Prompt length as the build counts it (build/context.py): no special tokens."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def completion_settings(
    run: Path | None = None,
    retrieval: bool = False,
    repo: str | Path | None = None,
    say: Callable[[str], None] = lambda msg: None,
) -> tuple[CompleteTaskConfig, Index | None]:
    """The served run's `build.complete` settings (defaults without a run) and, with
    `retrieval`, a BM25 index of the HEAD tree of `repo`, else of the run's repository
    (`build.tree.repo`, else the one `mine` read). Needs no model, so a bad config or a missing
    repository stops `serve` before the model loads."""
    settings, tree = CompleteTaskConfig(), TreeConfig()
    saved = read_config(Path(run)) if run is not None else None
    if saved is not None:
        settings, tree = saved.build.complete, saved.build.tree
    if repo is not None and not retrieval:
        raise UserError("--repo names the repository --retrieval indexes: add --retrieval")
    if not retrieval:
        return settings, None
    index = repository_index(
        _served_repo(run, repo or tree.repo), tree, settings.retrieval_lines, say
    )
    if settings.retrieval_snippets == 0:
        say("retrieval: build.complete.retrieval_snippets is 0, so no snippet is used")
    return settings, index


def _served_repo(run: Path | None, repo: str | Path | None) -> Path:
    if repo is None and run is not None:
        repo = mine_stats(Path(run)).get("repo")
    if not repo:
        raise UserError(
            "--retrieval indexes a repository: pass --repo PATH (or --run RUN of a mined run)"
        )
    path = Path(repo).expanduser()
    if not path.exists():
        raise UserError(f"repository {repo} not found: pass --repo PATH")
    return path


def repository_index(
    repo: Path, tree: TreeConfig, lines: int, say: Callable[[str], None] = lambda msg: None
) -> Index:
    """BM25 over windows of the code files of `repo`'s HEAD tree, filtered as the build
    filters the tree it reads (`build.tree`), cut as the `complete` task cuts them."""
    from repotune.code.tree import read_tree

    started = time.monotonic()
    snap = read_tree(
        repo,
        "HEAD",
        include=tree.include,
        exclude=tree.exclude,
        languages=tree.languages,
        max_file_bytes=tree.max_file_bytes,
    )
    files = [(f.path, f.text) for f in snap.files if is_code(f.language)]
    index = Index(windows(files, lines))
    say(
        f"retrieval: indexed {len(index.snippets)} snippets of {len(files)} code files of "
        f"{repo} at {snap.sha[:12]} in {time.monotonic() - started:.1f} s"
    )
    return index
