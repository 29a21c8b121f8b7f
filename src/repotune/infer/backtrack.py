"""Greedy diff decoding that takes back a line breaking a diff rule, at its least sure token.

Three rules hold in nearly every hunk git writes, and a short fine-tune breaks them all the
time (docs/results.md): an added line is not a copy of a line its block removes (that pair
would be an unchanged line), a non-blank added line does not repeat the added line before it,
and a non-blank added line is not the old line that comes next (that line would be unchanged).
Of 9,531 mined hunks, 25, 3 and 8 break them. A grammar cannot say the first two (they need
a back-reference), and forbidding a line's last token only makes the model append junk.

So the greedy answer is written first; where a complete line breaks a rule, decoding goes
back to the token of that line where the model's choice was closest, takes the best choice
that leaves the broken line, and goes on greedily. That is the one-step repair a beam search
would find, at the cost of regenerating the rest of the row, and only for rows that need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from repotune.infer.grammar import AddedLoopStop, RegexConstraint, diff_regex
from repotune.models.encode import left_pad
from repotune.models.vocab import vocab_texts

ALTERNATIVES = 8  # candidates kept per step for a fork


def broken_line(text: str, old: list[str] | None = None) -> tuple[int, int] | None:
    """(start, end) characters of the first complete added line of `text` that copies a line
    its block removes, repeats the added line before it, or (non-blank) is the next line of
    `old`, the hunk's old side; end includes the newline."""
    lines = text.split("\n")[:-1]  # complete lines only
    start = 0
    kept = 0  # old lines written so far
    for k, line in enumerate(lines):
        end = start + len(line) + 1
        if line[:1] in (" ", "-"):
            kept += 1
        elif line.startswith("+"):
            j = k - 1
            while j >= 0 and lines[j].startswith("+"):
                j -= 1
            removed = set()
            while j >= 0 and lines[j].startswith("-"):
                removed.add(lines[j][1:])
                j -= 1
            blank = not line[1:].strip()
            repeat = k > 0 and lines[k - 1] == line and not blank
            upcoming = old is not None and kept < len(old) and old[kept] == line[1:] and not blank
            if line[1:] in removed or repeat or upcoming:
                return start, end
        start = end
    return None


class _Choices(LogitsProcessor):
    """Keeps each step's best choices after the other processors, for a later fork."""

    def __init__(self) -> None:
        self.steps: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        values, ids = scores.float().topk(min(ALTERNATIVES, scores.shape[1]), dim=-1)
        self.steps.append((values.cpu(), ids.cpu()))
        return scores


@dataclass
class _Row:
    prompt: list[int]
    old: list[str] | None
    budget: int
    tokens: list[int] = field(default_factory=list)
    # per token of `tokens`: the step's best choices, (values, ids); None where forced
    choices: list[tuple[list[float], list[int]] | None] = field(default_factory=list)
    forks: int = 0

    @property
    def regex(self) -> str | None:
        return None if self.old is None else diff_regex(self.old)


class DiffDecoder:
    """Greedy decoding of diff answers: each row in the grammar of its old side (None: free),
    loops of added lines ended, and up to `forks` broken lines taken back per row."""

    def __init__(self, model: Any, tokenizer: Any, forks: int = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.forks = forks
        self._texts = vocab_texts(tokenizer)
        self._stops = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}

    def _run(self, rows: list[_Row]) -> None:
        """Extend every row greedily from its tokens to EOS or its budget."""
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else self.tokenizer.eos_token_id
        device = next(self.model.parameters()).device
        input_ids, attention = left_pad([r.prompt + r.tokens for r in rows], pad)
        width = input_ids.shape[1]
        prefixes = [r.tokens for r in rows]
        regexes = [r.regex for r in rows]
        choices = _Choices()
        processors = LogitsProcessorList()
        if any(r is not None for r in regexes):
            processors.append(RegexConstraint(self.tokenizer, regexes, width, prefixes))
            constrained = [r is not None for r in regexes]
            processors.append(AddedLoopStop(self.tokenizer, constrained, width, prefixes))
        processors.append(choices)
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max(r.budget - len(r.tokens) for r in rows),
            do_sample=False,
            num_beams=1,
            pad_token_id=pad,
            eos_token_id=self.tokenizer.eos_token_id,
            logits_processor=processors,
        )
        for i, row in enumerate(rows):
            for step, token in enumerate(out[i, width:].tolist()):
                if len(row.tokens) >= row.budget:
                    break
                values, ids = choices.steps[step]
                row.tokens.append(token)
                row.choices.append((values[i].tolist(), ids[i].tolist()))
                if token in self._stops:
                    break

    def _fork(self, row: _Row) -> bool:
        """Take back the first broken line of `row`; False when there is none, or no choice
        that leaves it."""
        ends, text = [], ""
        for token in row.tokens:
            text += "" if token in self._stops else self._texts[token]
            ends.append(len(text))
        span = broken_line(text, row.old)
        if span is None:
            return False
        start, end = span
        best: tuple[float, int, int] | None = None
        for p, token_end in enumerate(ends):
            token_start = ends[p - 1] if p else 0
            if token_end <= start or token_start >= end or row.choices[p] is None:
                continue
            rest = text[token_start:end]  # what this token and those after it wrote
            values, ids = row.choices[p]
            for value, alt in zip(values[1:], ids[1:], strict=True):
                alt_text = self._texts[alt] if alt not in self._stops else ""
                if value == float("-inf"):
                    break
                if alt_text and (rest.startswith(alt_text) or alt_text.startswith(rest)):
                    continue  # the same line, cut into other tokens
                gap = values[0] - value
                if best is None or gap < best[0]:
                    best = (gap, p, alt)
                break
        if best is None:
            return False
        _, p, alt = best
        row.tokens = [*row.tokens[:p], alt]
        row.choices = [*row.choices[:p], None]
        row.forks += 1
        return True

    def decode(
        self, prompts: list[list[int]], olds: list[list[str] | None], max_new_tokens: int
    ) -> list[list[int]]:
        """Answer token ids per prompt (EOS and padding dropped)."""
        rows = [_Row(p, o, max_new_tokens) for p, o in zip(prompts, olds, strict=True)]
        pending = rows
        while pending:
            self._run(pending)
            pending = [
                r
                for r in pending
                if r.old is not None
                and r.forks < self.forks
                and self._fork(r)
                and r.tokens[-1] not in self._stops
            ]
        return [[t for t in r.tokens if t not in self._stops] for r in rows]
