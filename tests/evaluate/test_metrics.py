import math

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from repotune.evaluate.metrics import (
    completion_nll,
    edit_similarity,
    exact_match,
    loss_summary,
)
from repotune.models.encode import encode_example


def test_exact_match_ignores_trailing_space_only():
    assert exact_match("-a\n+b  \n\n", "-a\n+b\n")
    assert not exact_match("-a\n+c\n", "-a\n+b\n")


def test_edit_similarity_bounds():
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("", "abcd") == 0.0
    assert 0.0 < edit_similarity("abcd", "abce") < 1.0


def test_completion_nll_matches_a_full_forward_pass(tiny_model):
    """Left padding + logits only for the tail must give each row's own completion loss."""
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    rows = [
        {"prompt": "def add(a, b):\n", "completion": "    return a + b\n"},
        {"prompt": "x = 1\n" * 12, "completion": "y = 2\n"},
        {"prompt": "class A:\n    pass\n", "completion": "-old\n+new line here\n"},
    ]
    got = completion_nll(model, tok, rows, max_length=128, batch_size=3)
    for row, (nll, n) in zip(rows, got):
        enc = encode_example(tok, row["prompt"], row["completion"], 128)
        ids = torch.tensor([enc["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        target = ids[0, 1:]
        mask = torch.tensor(enc["completion_mask"][1:], dtype=torch.bool)
        want = F.cross_entropy(logits[mask], target[mask], reduction="sum").item()
        assert n == int(mask.sum())
        assert math.isclose(nll, want, rel_tol=1e-4, abs_tol=1e-4)
    s = loss_summary(got)
    assert math.isclose(s["perplexity"], math.exp(s["loss"]))


def test_change_similarity_scores_the_changed_lines_not_the_copied_ones():
    from repotune.evaluate.metrics import change_similarity

    reference = " a = 1\n b = 2\n-c = 3\n+c = 4\n d = 5\n"
    copy = " a = 1\n b = 2\n c = 3\n d = 5\n"  # the unchanged lines, no edit
    assert edit_similarity(copy, reference) > 0.7
    assert change_similarity(copy, reference) == 0.0
    assert change_similarity(reference, reference) == 1.0
    near = " a = 1\n-c = 3\n+c = 40\n"  # the right edit, a digit off, less context
    assert 0.8 < change_similarity(near, reference) < 1.0


def test_blank_unchanged_lines_are_not_changed_lines():
    """A blank unchanged line is ' ' in a diff, '' once trailing spaces are cut: still unchanged."""
    from repotune.evaluate.metrics import change_similarity, changed_lines

    reference = " a = 1\n \n-c = 3\n+c = 4\n \n d = 5\n"
    copy = " a = 1\n \n c = 3\n \n d = 5\n"
    assert changed_lines(reference) == "-c = 3\n+c = 4"
    assert changed_lines(copy) == ""
    assert change_similarity(copy, reference) == 0.0
    assert changed_lines("def f():\n\n    return 1\n") == ""  # not a diff: no change score
