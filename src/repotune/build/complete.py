"""The `complete` task: code completion measured the way repository tuning is measured.

From each commit's changed code files, in the file as the commit left it (Giagnorio,
Martin-Lopez, Bavota, TOSEM 2025):

- a *line* target is the last 3-50 code tokens of an added line;
- a *block* target is 2-3 consecutive added lines, whole.

The prompt is the text before the target, trimmed to the tokens nearest the hole; in the
model's own FIM form (PSM) the text after it is the suffix. Test rows are in the base model's
form (FIM where its tokenizer has sentinels, else left-to-right), so base and tuned answer the
same prompts; `fim_rate` puts a share of train rows in FIM form. The prompt is built by
`models.fim.completion_prompt`, the same function `serve` uses for a `suffix` request.

Test rows also carry `retrieval_prompt`: the same prompt after the BM25 snippets of the
repository as it stood before the first held-out commit (infer/retrieval.py), the rival
every result is compared with.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from repotune.code.languages import is_code
from repotune.config import BuildConfig, CompleteTaskConfig
from repotune.infer.retrieval import Index, context_block, query_of, windows
from repotune.models.fim import FimTokens, completion_prompt
from repotune.records import Commit, FileChange, squash_spaces

# Code tokens as the paper counts them: identifiers/numbers, and single punctuation marks.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def added_lines(change: FileChange, lines: list[str]) -> list[int]:
    """0-based indices in the new text of the lines the change added (checked against it)."""
    out = []
    for hunk in change.hunks:
        number = hunk.new_start
        for line in hunk.lines:
            tag = line[:1]
            if tag == "+":
                i = number - 1
                if 0 <= i < len(lines) and lines[i] == line[1:].rstrip("\r\n"):
                    out.append(i)
                number += 1
            elif tag == " ":
                number += 1
    return sorted(set(out))


@dataclass(frozen=True)
class Hole:
    """A target in one file: `first`/`last` lines (0-based), `col` where it starts on `first`."""

    kind: str  # "line" | "block"
    first: int
    last: int
    col: int


def holes(
    lines: list[str], added: list[int], cc: CompleteTaskConfig, rng: random.Random
) -> list[Hole]:
    """Up to `targets_per_file` targets, a `block_rate` share of them blocks where a run of
    added lines allows one; each line is used once."""
    tokens = {i: list(_TOKEN.finditer(lines[i])) for i in added}
    line_ok = [i for i in added if len(tokens[i]) >= cc.min_tokens]
    added_set = set(added)
    block_ok = [
        i for i in added
        if i + 1 in added_set and lines[i].strip() and lines[i + 1].strip()
    ]  # fmt: skip
    if cc.block_rate == 0:
        block_ok = []  # no blocks, not even where no added line is long enough for a target
    used: set[int] = set()
    out: list[Hole] = []
    for _ in range(cc.targets_per_file * 3):
        if len(out) >= cc.targets_per_file:
            break
        if block_ok and (rng.random() < cc.block_rate or not line_ok):
            first = rng.choice(block_ok)
            run = 1
            while first + run in added_set and run < cc.max_block_lines:
                run += 1
            last = first + rng.randint(2, run) - 1
            while not lines[last].strip():
                last -= 1
            if used & set(range(first, last + 1)):
                continue
            out.append(Hole("block", first, last, 0))
        elif line_ok:
            i = rng.choice(line_ok)
            if i in used:
                continue
            toks = tokens[i]
            k = rng.randint(cc.min_tokens, min(cc.max_tokens, len(toks)))
            out.append(Hole("line", i, i, toks[-k].start()))
        else:
            break
        used.update(range(out[-1].first, out[-1].last + 1))
    return out


def complete_examples(
    commit: Commit,
    cfg: BuildConfig,
    dropped: Counter[str],
    train_tokens: FimTokens | None,
    test_tokens: FimTokens | None,
    count_tokens: Callable[[str], int] | None = None,
) -> Iterator[dict]:
    """The targets of one commit. A row is written in the test form (`test_tokens`: FIM or
    left-to-right); `meta.train_prompt` holds the FIM form a train row gets instead."""
    cc = cfg.complete
    for change in commit.files:
        if change.after is None or change.change_type == "deleted":
            continue
        if not is_code(change.language):
            dropped["not_code"] += 1
            continue
        lines = change.after.split("\n")
        added = added_lines(change, lines)
        if not added:
            dropped["no_added_line"] += 1
            continue
        rng = random.Random(f"{cfg.seed}\0{commit.sha}\0{change.path}")
        for hole in holes(lines, added, cc, rng):
            head = "\n".join(lines[: hole.first])
            head = head + "\n" if hole.first else ""
            prefix = head + lines[hole.first][: hole.col]
            target = "\n".join(lines[hole.first : hole.last + 1])[hole.col :] + "\n"
            suffix = "\n".join(lines[hole.last + 1 :])
            if not squash_spaces(target):
                continue
            kw = dict(
                max_prefix_chars=cc.max_prefix_chars,
                max_suffix_chars=cc.max_suffix_chars,
                max_prompt_tokens=cc.max_prompt_tokens,
                count_tokens=count_tokens,
            )
            prompt = completion_prompt(prefix, suffix, test_tokens, **kw)
            fim = test_tokens is not None
            if train_tokens is not None and not fim and rng.random() < cc.fim_rate:
                train_prompt = completion_prompt(prefix, suffix, train_tokens, **kw)
            else:
                train_prompt = None
            meta = {
                "sha": commit.sha,
                "path": change.path,
                "time": commit.committer_time,
                "language": change.language,
                "kind": hole.kind,
                "lines": [hole.first + 1, hole.last + 1],
                "fim": "psm" if fim else "l2r",
            }
            if train_prompt is not None:
                meta["train_prompt"] = train_prompt
            if cc.loss == "all":
                meta["loss"] = "all"
            yield {
                "id": f"{commit.sha[:12]}:{change.path}:{hole.first + 1}:{hole.kind}",
                "task": "complete",
                "prompt": prompt,
                "completion": target,
                "meta": meta,
                "_prefix": prefix,
                "_suffix": suffix,
            }


def finish_splits(
    splits: dict[str, list[dict]], dropped: Counter[str], cc: CompleteTaskConfig
) -> None:
    """Train rows whose target is also a val/test target are dropped (the paper removes
    duplicates of test items from training); train rows take their FIM form."""
    held = {squash_spaces(r["completion"]) for name in ("val", "test") for r in splits[name]}
    kept = []
    for row in splits["train"]:
        if squash_spaces(row["completion"]) in held:
            dropped["train_target_also_held_out"] += 1
            continue
        train_prompt = row["meta"].pop("train_prompt", None)
        if train_prompt is not None:
            row["prompt"] = train_prompt
            row["meta"]["fim"] = "psm"
        kept.append(row)
    splits["train"] = kept
    for name in ("val", "test"):
        for row in splits[name]:
            row["meta"].pop("train_prompt", None)


def add_retrieval(
    rows: list[dict],
    files: list[tuple[str, str]],
    cc: CompleteTaskConfig,
    test_tokens: FimTokens | None,
    count_tokens: Callable[[str], int] | None = None,
) -> int:
    """Give each row `meta.retrieval_prompt`: its prompt after the best BM25 snippets of
    `files` (the code before the cutoff). Returns the number of indexed snippets."""
    index = Index(windows(files, cc.retrieval_lines))
    for row in rows:
        found = index.search(query_of(row["_prefix"], cc.retrieval_lines), cc.retrieval_snippets,
                             row["prompt"])  # fmt: skip
        context = context_block(found, row["meta"]["language"], cc.retrieval_chars)
        row["meta"]["retrieval_prompt"] = completion_prompt(
            row["_prefix"],
            row["_suffix"],
            test_tokens,
            max_prefix_chars=cc.max_prefix_chars,
            max_suffix_chars=cc.max_suffix_chars,
            max_prompt_tokens=cc.max_prompt_tokens,
            count_tokens=count_tokens,
            context=context,
        )
        row["meta"]["retrieved"] = [f"{s.path}:{s.start}" for s in found]
    return len(index.snippets)


def strip_private(splits: dict[str, list[dict]]) -> None:
    for rows in splits.values():
        for row in rows:
            row.pop("_prefix", None)
            row.pop("_suffix", None)
