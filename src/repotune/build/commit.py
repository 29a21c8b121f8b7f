"""The `commit` task: commit message + the code before a change -> that change.

Three representations (`build.commit.representation`):

- `diff` (default): one example per hunk, Alpaca-shaped (instruction = message, input = code
  before, output = diff lines), what people build by hand from `git log -p`. A hunk keeps git's
  ' '/'-'/'+' prefixes so the completion is a diff a user can read and apply.
- `functions`: one example per changed function: the function before -> the function after.
- `tokens`: one example per hunk as cregit-style token streams (`kind|text` per line): the
  tokens before -> the token diff (`-`/`+` per token, a few unchanged tokens around).

`natural_language` wraps any of them in "There is an issue in the following code. It relates
to: <message>. Please fix this issue." -> "I corrected the issue by changing ...".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from repotune.build.changes import changed_functions
from repotune.code.functions import split_lines
from repotune.code.tokens import token_diff, token_stream
from repotune.config import BuildConfig
from repotune.records import Commit, FileChange, Hunk, is_changed_line

PROMPT_TEMPLATE = """### Instruction:
{message}

### File: {path}
### Code before:
{code}
### Diff:
"""
FUNCTION_TEMPLATE = """### Instruction:
{message}

### File: {path}
### Function before:
{code}### Function after:
"""
TOKENS_TEMPLATE = """### Instruction:
{message}

### File: {path}
### Tokens before:
{code}### Token changes:
"""
NATURAL_TEMPLATE = (
    "There is an issue in the following code. It relates to: {message}. Please fix this issue."
    "\n\n### File: {path}\n{code}"
)
NATURAL_ANSWER = {
    "diff": "I corrected the issue by changing the following lines:\n",
    "functions": "I corrected the issue by changing the function to:\n",
    "tokens": "I corrected the issue by changing the following tokens:\n",
}


def _subject_and_body(message: str) -> str:
    """The message without trailing trailers noise; kept whole otherwise (the body explains)."""
    lines = [ln.rstrip() for ln in message.strip().splitlines()]
    keep = [ln for ln in lines if not ln.lower().startswith(("signed-off-by:", "co-authored-by:"))]
    return "\n".join(keep).strip()


def _code_before(change: FileChange, hunk: Hunk, context: int) -> str:
    """The pre-image lines around the hunk (hunk span plus `context` lines each side)."""
    if not change.before or hunk.old_lines == 0 and change.change_type == "added":
        return "(new file)\n"
    lines = change.before.splitlines()
    first = max(hunk.old_start - 1 - context, 0)
    last = min(hunk.old_start - 1 + hunk.old_lines + context, len(lines))
    region = lines[first:last]
    return "\n".join(region) + "\n" if region else "(empty)\n"


def hunk_completion(hunk: Hunk, context: int | None = None) -> str:
    """The hunk's lines, the unchanged ones at its ends cut to `context` (None: as git gave)."""
    lines = hunk.lines
    if context is not None:
        changed = [i for i, ln in enumerate(lines) if is_changed_line(ln)]
        if changed:
            lines = lines[max(changed[0] - context, 0) : changed[-1] + context + 1]
    return "\n".join(lines) + "\n"


_EMPTY_BEFORE = ("(new file)", "(empty)")


def old_side(prompt: str, cfg: BuildConfig) -> list[str] | None:
    """The lines a `diff` answer to `prompt` must keep or remove, in order: its unchanged (' ')
    and removed ('-') lines are exactly the code before (infer/grammar.py `diff_regex`). None
    where the prompt does not pin the old side of the hunk: another representation, code
    before with extra context (`input_context`), or context cut from the hunk
    (`diff_context`)."""
    rep = cfg.commit
    if rep.representation != "diff" or rep.natural_language or rep.diff_context is not None:
        return None
    if cfg.input_context != 0:
        return None
    _, sep, rest = prompt.partition("\n### Code before:\n")
    code, sep2, tail = rest.rpartition("\n### Diff:\n")
    if not sep or not sep2 or tail or not code.endswith("\n"):
        return None
    lines = code[:-1].split("\n")
    if lines == [""] or len(lines) == 1 and lines[0] in _EMPTY_BEFORE:
        return []
    return lines


def old_side_span(prompt: str, cfg: BuildConfig) -> list[int] | None:
    """Where `old_side` sits in `prompt`, as [start, end) character offsets ([0, 0]: an empty
    old side), for the row's meta: evaluation pins a diff answer's old side from it without
    knowing this prompt format or the build config (evaluate/run.py)."""
    old = old_side(prompt, cfg)
    if old is None:
        return None
    if not old:
        return [0, 0]
    end = prompt.rindex("\n### Diff:\n") - 1  # the code before ends with its own newline
    return [end - len("\n".join(old)), end]


def commit_examples(
    commit: Commit, cfg: BuildConfig, dropped: Counter[str] | None = None
) -> Iterator[dict]:
    """Yield example dicts (Example fields) for `commit` in the configured representation,
    skipping those over the character caps (counted in `dropped`, as files without text)."""
    dropped = Counter() if dropped is None else dropped
    message = _subject_and_body(commit.message)
    if not message:
        return
    rep = cfg.commit.representation
    units = {"diff": _diff_units, "functions": _function_units, "tokens": _token_units}[rep]
    for change in commit.files:
        if change.skip_reason:
            dropped[f"file_{change.skip_reason}"] += 1
        if change.skip_reason or not change.hunks:
            continue
        for key, code, completion in units(change, cfg):
            if cfg.commit.natural_language:
                subject = message.rstrip(" .\n")
                prompt = NATURAL_TEMPLATE.format(message=subject, path=change.path, code=code)
                completion = NATURAL_ANSWER[rep] + completion
            else:
                template = {
                    "diff": PROMPT_TEMPLATE,
                    "functions": FUNCTION_TEMPLATE,
                    "tokens": TOKENS_TEMPLATE,
                }[rep]
                prompt = template.format(message=message, path=change.path, code=code)
            if len(prompt) > cfg.max_prompt_chars or len(completion) > cfg.max_completion_chars:
                dropped["over_max_chars"] += 1
                continue
            meta = {
                "sha": commit.sha,
                "path": change.path,
                "time": commit.committer_time,
                "language": change.language,
            }
            if (span := old_side_span(prompt, cfg)) is not None:
                meta["old_side"] = span
            yield {
                "id": f"{commit.sha[:12]}:{change.path}:{key}",
                "task": "commit",
                "prompt": prompt,
                "completion": completion,
                "meta": {**meta, **({"hunk": key} if isinstance(key, int) else {"unit": key})},
            }


def _changed_hunks(change: FileChange) -> Iterator[tuple[int, Hunk]]:
    for i, hunk in enumerate(change.hunks):
        if any(is_changed_line(ln) for ln in hunk.lines):
            yield i, hunk


def _diff_units(change: FileChange, cfg: BuildConfig) -> Iterator[tuple[int | str, str, str]]:
    for i, hunk in _changed_hunks(change):
        completion = hunk_completion(hunk, cfg.commit.diff_context)
        yield i, _code_before(change, hunk, cfg.input_context), completion


def _function_units(change: FileChange, cfg: BuildConfig) -> Iterator[tuple[int | str, str, str]]:
    found = changed_functions(change)
    if found is None:
        return
    before, after = split_lines(change.before or ""), split_lines(change.after or "")
    for pair in found.pairs:
        old = "\n".join(before[pair.old.start : pair.old.end + 1]) + "\n"
        new = "\n".join(after[pair.new.start : pair.new.end + 1]) + "\n"
        yield f"{pair.old.name or 'fn'}@{pair.old.start + 1}", old, new


def _token_units(change: FileChange, cfg: BuildConfig) -> Iterator[tuple[int | str, str, str]]:
    """The hunk's region of both versions (plus context lines), as token streams."""
    if change.before is None or change.after is None:
        return
    ctx = cfg.input_context
    for i, hunk in _changed_hunks(change):
        old = _region(hunk.old_start, hunk.old_lines, ctx)
        new = _region(hunk.new_start, hunk.new_lines, ctx)
        before = token_stream(change.before, change.language, old)
        after = token_stream(change.after, change.language, new)
        changes = token_diff(before, after, cfg.commit.token_context)
        if changes:
            yield i, "\n".join(before) + "\n", "\n".join(changes) + "\n"


def _region(start: int, count: int, context: int) -> tuple[int, int]:
    first = (start - 1 if count > 0 else start) - context
    return max(first, 0), start - 1 + count - 1 + context if count > 0 else start - 1 + context
