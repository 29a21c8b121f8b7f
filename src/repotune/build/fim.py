"""The `fim` task: files at HEAD cut into prefix / middle / suffix on syntax boundaries.

Middles are whole lines: a function body, a block, or one line, picked by `cut_weights`, so
the model learns to fill the holes an editor leaves. A share `fim_rate` of the rows is written
in FIM form (PSM or SPM, `spm_rate`) with the target model's own sentinels (models/fim.py);
the rest stays left-to-right (prompt = prefix), as StarCoder mixed them. Prefix and suffix are
trimmed at line boundaries to the characters nearest the hole.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator

from repotune.code.functions import blank_line_blocks, outline
from repotune.code.tree import Snapshot, SourceFile
from repotune.config import BuildConfig
from repotune.models.fim import FimTokens, keep_head, keep_tail

_HAS_WORD = re.compile(r"\w")


def cut_candidates(file: SourceFile, lines: list[str], max_chars: int) -> dict[str, list]:
    """(first, last) line ranges per cut kind whose text fits in `max_chars`."""
    info = outline(file.text, file.language)
    bodies = [f.body for f in info.functions if f.body is not None]
    blocks = (
        info.blocks if info.parsed else [(s.start, s.end) for s in blank_line_blocks(file.text)]
    )
    singles = [(i, i) for i, line in enumerate(lines) if _HAS_WORD.search(line)]

    def fits(span: tuple[int, int]) -> bool:
        return sum(len(x) for x in lines[span[0] : span[1] + 1]) <= max_chars

    cuts = {"function_body": bodies, "block": blocks, "line": singles}
    return {k: sorted({s for s in v if fits(s)}) for k, v in cuts.items()}


def _lines_with_ends(text: str) -> list[str]:
    """Lines keeping their "\n", numbered as tree-sitter and git number them."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def fim_examples(
    snapshot: Snapshot,
    cfg: BuildConfig,
    tokens: FimTokens,
    dropped: Counter[str],
    count_tokens: Callable[[str], int] | None = None,
) -> Iterator[dict]:
    """Up to `examples_per_file` rows per file, seeded by path so rebuilds are identical.
    With `count_tokens`, prefix and suffix shrink until the prompt fits `max_prompt_tokens`:
    training cuts long prompts from the left, which would drop the FIM sentinels."""
    fc = cfg.fim
    for file in snapshot.files:
        rng = random.Random(f"{cfg.seed}\0{file.path}")
        lines = _lines_with_ends(file.text)
        if any(s in file.text for s in tokens.sentinels):
            dropped["file_contains_fim_tokens"] += 1
            continue
        cuts = cut_candidates(file, lines, fc.max_middle_chars)
        kinds = [k for k, w in fc.cut_weights.items() if w > 0 and cuts.get(k)]
        if not kinds:
            dropped["file_without_cut"] += 1
            continue
        weights = [fc.cut_weights[k] for k in kinds]
        seen: set[tuple[int, int]] = set()
        for _ in range(fc.examples_per_file * 3):  # a few redraws when a cut repeats
            if len(seen) >= fc.examples_per_file:
                break
            kind = rng.choices(kinds, weights)[0]
            first, last = rng.choice(cuts[kind])
            if (first, last) in seen:
                continue
            seen.add((first, last))
            middle = "".join(lines[first : last + 1])
            mode = "l2r"
            if rng.random() < fc.fim_rate:
                mode = "spm" if rng.random() < fc.spm_rate else "psm"
            budget = (fc.max_prefix_chars, fc.max_suffix_chars)
            while True:
                prefix = keep_tail("".join(lines[:first]), budget[0])
                suffix = keep_head("".join(lines[last + 1 :]), budget[1])
                prompt = prefix
                if mode != "l2r":
                    prompt = (tokens.spm if mode == "spm" else tokens.psm)(prefix, suffix)
                if (
                    count_tokens is None
                    or fc.max_prompt_tokens is None
                    or count_tokens(prompt) <= fc.max_prompt_tokens
                    or not (prefix or suffix)
                ):
                    break
                budget = (len(prefix) * 3 // 4, len(suffix) * 3 // 4)
            yield {
                "id": f"{snapshot.sha[:12]}:{file.path}:{first + 1}-{last + 1}",
                "task": "fim",
                "prompt": prompt,
                "completion": middle,
                "meta": {
                    "sha": snapshot.sha,
                    "path": file.path,
                    "time": snapshot.time,
                    "language": file.language,
                    "cut": kind,
                    "lines": [first, last],
                    "fim": mode,
                    "fim_tokens": tokens.family,
                },
            }
