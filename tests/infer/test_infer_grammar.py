"""Grammar-constrained greedy decoding (llguidance): a row follows its regex to the end, a row
without one is untouched, and a diff answer keeps the code before as its old side."""

from __future__ import annotations

import re

import pytest

from repotune.build.commit import PROMPT_TEMPLATE, old_side
from repotune.config import BuildConfig
from repotune.infer.generate import generate
from repotune.infer.grammar import diff_regex

CODE = "def add(a, b):\n    return a\n\nx = add(1, 2)\n"


@pytest.fixture(scope="module")
def lm(tiny_model):
    from repotune.models.load import load_model, load_tokenizer

    return load_model(tiny_model, dtype="float32"), load_tokenizer(tiny_model)


def test_a_diff_row_writes_its_old_side_and_a_free_row_is_untouched(lm):
    model, tok = lm
    prompts = ["def add(a, b):\n", "class Stack:\n"]
    free = generate(model, tok, prompts, max_new_tokens=16)
    forced = generate(model, tok, prompts, max_new_tokens=16, diffs=[["x = {1}"], None])
    # added lines if any, then the old line kept or removed (the token budget may cut it)
    assert re.match(r"(\+[^\n]*\n)*[ -]x = \{1\}(\r?\n|\r?$)", forced[0]), repr(forced[0])
    assert forced[1] == free[1]
    assert free[0] != forced[0]


def test_a_diff_answer_copies_the_code_before_as_its_old_side(lm):
    model, tok = lm
    cfg = BuildConfig(input_context=0)
    prompt = PROMPT_TEMPLATE.format(message="Return the sum", path="a.py", code=CODE)
    old = old_side(prompt, cfg)
    regex = diff_regex(old)
    (free,), (text,) = (
        generate(model, tok, [prompt], max_new_tokens=80, diffs=d) for d in (None, [old])
    )
    assert old == CODE.rstrip("\n").split("\n")
    lines = text.rstrip("\n").split("\n")
    assert all(ln[:1] in (" ", "-", "+") for ln in lines), text
    kept = [ln[1:] for ln in lines if ln[:1] in (" ", "-")]
    assert kept == old[: len(kept)], text
    if text.endswith("\n") and len(kept) == len(old):
        assert re.fullmatch(regex, text)
    assert free != text  # the tiny random model does not write diffs by itself


@pytest.mark.slow
def test_gemma_text_tokens_that_look_special_stay_text():
    """Gemma adds `<li>`, `</a>`... as non-special tokens; llguidance would read them as
    special ones, and the hunk a Gemma tokenizer writes for HTML could not match."""
    import llguidance

    from repotune.infer.grammar import ll_tokenizer
    from repotune.models.load import load_tokenizer
    from repotune.models.registry import EMBEDDED_DEFAULT, resolve_model

    tok = load_tokenizer(resolve_model(EMBEDDED_DEFAULT))
    code = '  <li><a href="/">Home</a></li>\n</ul>\n'
    prompt = PROMPT_TEMPLATE.format(message="Add a link", path="a.html", code=code)
    answer = '   <li><a href="/">Home</a></li>\n+  <li><a href="/x">X</a></li>\n </ul>\n'
    ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert "<li>" in tok.convert_ids_to_tokens(ids)
    regex = diff_regex(old_side(prompt, BuildConfig(input_context=0)))
    grammar = llguidance.LLMatcher.grammar_from_regex(regex)
    matcher = llguidance.LLMatcher(ll_tokenizer(tok), grammar, log_level=0)
    assert matcher.consume_tokens(ids), matcher.get_error()
    assert matcher.is_stopped()


@pytest.mark.parametrize(
    ("lines", "loops"),
    [
        ([" a", "+make", "+make"], True),
        ([" a", "+x", "+y", "+x", "+y"], True),  # a cycle of two
        ([" a", "+", "+", "+"], True),  # three blank added lines
        ([" a", "+", "+"], False),  # two are common between definitions
        ([" a", "+make", "+make2"], False),
        (["+make", " a", "+make"], False),  # another run
        ([" a", "-make", "+make"], False),  # not both added (the no-op edit is allowed)
    ],
)
def test_repeating_tail(lines, loops):
    from repotune.infer.grammar import repeating_tail

    assert repeating_tail(lines) is loops


def test_loop_stop_bans_a_new_added_line_only_after_a_loop_and_only_in_its_rows(lm):
    import torch

    from repotune.infer.grammar import AddedLoopStop

    _, tok = lm
    texts = [" a\n+make\n+make\n", " a\n+make\n+make\n", " a\n+make\n", " a\n+make\n+make"]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, ids))
    batch = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in ids])
    stop = AddedLoopStop(tok, [True, False, True, True], prompt_width=0)  # pads: not a line
    scores = stop(batch, torch.zeros(len(texts), len(tok)))
    plus = [i for i in range(len(tok)) if tok.decode([i]).startswith("+")]
    assert plus and torch.all(scores[0, plus] == float("-inf"))
    assert torch.isinf(scores[0]).sum() == len(plus)
    assert torch.all(scores[1:] == 0)  # a free row; no loop yet; mid-line
