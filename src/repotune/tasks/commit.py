"""The `commit` task: commit message + the code before a change -> the diff of that change.

One example per hunk, Alpaca-shaped (instruction = message, input = code before, output =
diff lines), which is what people build by hand from `git log -p`. A hunk keeps git's
' '/'-'/'+' prefixes so the completion is a diff a user can read and apply.
"""

from __future__ import annotations

from collections.abc import Iterator

from repotune.config import BuildConfig
from repotune.records import Commit, FileChange, Hunk

PROMPT_TEMPLATE = """### Instruction:
{message}

### File: {path}
### Code before:
{code}
### Diff:
"""


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


def hunk_completion(hunk: Hunk) -> str:
    return "\n".join(hunk.lines) + "\n"


def commit_examples(commit: Commit, cfg: BuildConfig) -> Iterator[dict]:
    """Yield example dicts (Example fields) for every text hunk of `commit` that fits the caps."""
    message = _subject_and_body(commit.message)
    if not message:
        return
    for change in commit.files:
        if change.skip_reason or not change.hunks:
            continue
        for i, hunk in enumerate(change.hunks):
            if not any(ln[:1] in "+-" for ln in hunk.lines):
                continue
            prompt = PROMPT_TEMPLATE.format(
                message=message,
                path=change.path,
                code=_code_before(change, hunk, cfg.input_context),
            )
            completion = hunk_completion(hunk)
            if len(prompt) > cfg.max_prompt_chars or len(completion) > cfg.max_completion_chars:
                continue
            yield {
                "id": f"{commit.sha[:12]}:{change.path}:{i}",
                "task": "commit",
                "prompt": prompt,
                "completion": completion,
                "meta": {
                    "sha": commit.sha,
                    "path": change.path,
                    "time": commit.committer_time,
                    "language": change.language,
                    "hunk": i,
                },
            }
