"""Regular-expression constrained greedy decoding with llguidance, per row of a batch.

A generated diff hunk has a grammar the prompt fixes: its unchanged and removed lines are the
code before, in order, and only its added lines are free (`diff_regex`; build/commit.py
`old_side` reads the old side off a prompt). Decoding inside that grammar makes every answer
a diff that applies, so exact match and change similarity measure the edit, not slips in
copying context. llguidance is the engine vLLM uses for structured outputs ("guidance"
backend): the same regex serves there.
"""

from __future__ import annotations

import json
import re
from copy import copy
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor

from repotune.models.vocab import tokenizer_key, vocab_texts

_LL_TOKENIZERS: dict[tuple[str, int], Any] = {}
_ADDED_LINES = r"(\+[^\n]*\n)*"


def diff_regex(old: list[str]) -> str:
    """The diffs of the lines `old`: each old line in order, kept (' ') or removed ('-'), with
    added ('+') lines anywhere between. `\r?`: a CRLF file's hunk lines keep their CR where
    the code before, split on line ends, does not."""
    return _ADDED_LINES + "".join(rf"[ -]{re.escape(ln)}\r?\n{_ADDED_LINES}" for ln in old)


def ll_tokenizer(tokenizer: Any) -> Any:
    """llguidance's view of a fast HF tokenizer; cached, it takes seconds for a 262k vocabulary.

    llguidance reads every added token as a special one, and Gemma adds text tokens such as
    `<li>` and `</a>` (5% of requests' hunks use one): those that are also ordinary vocabulary
    entries are handed over as text, so the grammar accepts what the tokenizer writes."""
    import llguidance

    key = tokenizer_key(tokenizer)
    if key not in _LL_TOKENIZERS:
        backend = copy(tokenizer.backend_tokenizer)
        backend.no_padding()
        backend.no_truncation()
        spec = json.loads(backend.to_str())
        vocab = spec.get("model", {}).get("vocab")
        if isinstance(vocab, dict):
            spec["added_tokens"] = [
                t for t in spec.get("added_tokens", []) if t["special"] or t["content"] not in vocab
            ]
        _LL_TOKENIZERS[key] = llguidance.LLTokenizer(
            json.dumps(spec), eos_token=tokenizer.eos_token_id
        )
    return _LL_TOKENIZERS[key]


class RegexConstraint(LogitsProcessor):
    """Tokens that cannot extend row i's generated text towards a full match of `regexes[i]`
    get -inf (None: row i is free). Once a match is complete and nothing may follow, only EOS
    is left. Greedy or sampled decoding only: beams reorder rows under the matchers."""

    def __init__(
        self,
        tokenizer: Any,
        regexes: list[str | None],
        prompt_width: int,
        prefixes: list[list[int]] | None = None,
    ) -> None:
        """`prefixes`: tokens of each row's answer already written, inside the prompt ids."""
        import llguidance

        self.prompt_width = prompt_width
        self._matchers: list[Any] = []
        for row, regex in enumerate(regexes):
            if regex is None:
                self._matchers.append(None)
                continue
            grammar = llguidance.LLMatcher.grammar_from_regex(regex)
            matcher = llguidance.LLMatcher(ll_tokenizer(tokenizer), grammar, log_level=0)
            if prefixes and prefixes[row]:
                matcher.consume_tokens(prefixes[row])
            if matcher.is_error():
                raise ValueError(f"bad decoding grammar: {matcher.get_error()}")
            self._matchers.append(matcher)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        started = input_ids.shape[1] > self.prompt_width
        for row, matcher in enumerate(self._matchers):
            if matcher is None:
                continue
            if started and not matcher.is_stopped():
                matcher.consume_token(int(input_ids[row, -1]))
            if matcher.is_error() or matcher.is_stopped() and not matcher.is_accepting():
                continue  # cannot happen under the mask; leave the row free rather than stuck
            bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
            allowed = np.unpackbits(bits, bitorder="little").astype(bool)
            vocab = scores.shape[1]
            keep = torch.zeros(vocab, dtype=torch.bool)
            n = min(vocab, allowed.shape[0])
            keep[:n] = torch.from_numpy(allowed[:n])
            scores[row, ~keep.to(scores.device)] = float("-inf")
        return scores


def repeating_tail(lines: list[str]) -> bool:
    """The run of added lines at the end of `lines` has started to loop: its last p lines
    (p <= 3, not all blank) repeat the p before them, or its last three are blank. 7 of
    9,531 mined hunks (click and requests) hold such a run."""
    run: list[str] = []
    for line in reversed(lines):
        if not line.startswith("+"):
            break
        run.insert(0, line.rstrip())
    for p in (1, 2, 3):
        tail = run[-p:]
        if len(run) >= 2 * p and tail == run[-2 * p : -p] and any(ln[1:] for ln in tail):
            return True
    return len(run) >= 3 and not any(ln[1:] for ln in run[-3:])


class AddedLoopStop(LogitsProcessor):
    """No new `+` line once the added lines loop (`repeating_tail`), in the rows of `rows`.

    A short fine-tune that does not know the edit often writes one added line over and over
    until the token limit; a grammar cannot forbid that (it needs a back-reference), so this
    ends the run and the grammar then leads on to the rest of the hunk."""

    def __init__(
        self,
        tokenizer: Any,
        rows: list[bool],
        prompt_width: int,
        prefixes: list[list[int]] | None = None,
    ) -> None:
        self.rows = rows
        self.prompt_width = prompt_width
        self.prefixes = prefixes or [[] for _ in rows]
        self._texts = vocab_texts(tokenizer)
        self._plus = torch.tensor([t.startswith("+") for t in self._texts], dtype=torch.bool)

    def text(self, tokens: list[int]) -> str:
        return "".join(self._texts[t] if 0 <= t < len(self._texts) else "" for t in tokens)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_width :].tolist()
        n = min(scores.shape[1], self._plus.shape[0])
        for row, tokens in enumerate(generated):
            if not self.rows[row]:
                continue
            text = self.text(self.prefixes[row] + tokens)
            if text.endswith("\n") and repeating_tail(text[:-1].split("\n")):
                scores[row, :n][self._plus[:n].to(scores.device)] = float("-inf")
        return scores
