"""Diff-rule backtracking: which lines break a rule, and that decoding takes a broken line back
at the token where the model was least sure."""

from __future__ import annotations

import pytest
from transformers import LogitsProcessor

from repotune.build.commit import PROMPT_TEMPLATE, old_side
from repotune.config import BuildConfig
from repotune.infer.backtrack import broken_line
from repotune.infer.generate import generate


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (" a\n-x = 1\n+x = 1\n b\n", "+x = 1\n"),  # a no-op edit
        ("-x\n-y\n+z\n+x\n", "+x\n"),  # copies a removed line of its block, not the nearest
        (" a\n+y = 2\n+y = 2\n", "+y = 2\n"),  # repeats the added line before it
        (" a\n-x = 1\n+x = 2\n b\n", None),
        ("-x\n b\n+x\n", None),  # an unchanged line ends the block: a moved line is fine
        (" a\n+\n+\n", None),  # blank added lines may repeat
        ("-x = 1\n+x = 1", None),  # not complete yet
    ],
)
def test_broken_line(text, line):
    span = broken_line(text)
    assert (text[span[0] : span[1]] if span else None) == line


@pytest.fixture(scope="module")
def lm(tiny_model):
    from repotune.models.load import load_model, load_tokenizer

    return load_model(tiny_model, dtype="float32"), load_tokenizer(tiny_model)


class _Wants(LogitsProcessor):
    """A model that wants to write `target` after `### Diff:`, then stop, by a wide margin,
    except at the last `1`, where it wants `1` only a little more than `2`."""

    def __init__(self, tok, target: str) -> None:
        self.tok, self.target = tok, target

    def _first(self, text: str) -> int:
        return self.tok(text, add_special_tokens=False)["input_ids"][0]

    def __call__(self, input_ids, scores):
        for row, ids in enumerate(input_ids.tolist()):
            written = self.tok.decode(ids).split("### Diff:\n", 1)[1]
            if written == self.target:
                scores[row, self.tok.eos_token_id] += 50.0
            if not self.target.startswith(written) or written == self.target:
                continue
            rest = self.target[len(written) :]
            if written.startswith(self.target.split("+")[0] + "+") and "1" in rest:
                scores[row, self._first(rest)] += 3.0
                scores[row, self._first(rest.replace("1", "2", 1))] += 2.5
            else:
                scores[row, self._first(rest)] += 50.0
        return scores


@pytest.mark.parametrize("forks", [0, 3])
def test_a_no_op_line_is_taken_back_where_the_model_was_least_sure(lm, monkeypatch, forks):
    model, tok = lm
    prompt = PROMPT_TEMPLATE.format(message="Bump x", path="a.py", code="x = 1\ny = 0\n")
    target = "-x = 1\n+x = 1\n y = 0\n"
    real = model.generate

    def wanting(**kwargs):
        kwargs["logits_processor"].insert(0, _Wants(tok, target))
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", wanting)
    old = old_side(prompt, BuildConfig(input_context=0))
    (text,) = generate(model, tok, [prompt], max_new_tokens=24, diffs=[old], diff_forks=forks)
    if forks == 0:
        assert text == target
    else:
        assert text.startswith("-x = 1\n+x = 2"), text
        assert "+x = 1\n" not in text


def test_an_added_line_that_is_the_next_old_line_is_broken():
    old = ["a", "b", "c"]
    text = " a\n-b\n+B\n+c\n c\n"
    assert text[slice(*broken_line(text, old))] == "+c\n"  # c was to be kept, not added
    assert broken_line(" a\n+c\n-b\n c\n", old) is None  # c is not next: b is
    assert broken_line(" a\n+\n b\n", ["a", "", "b"]) is None  # blank lines are left alone
