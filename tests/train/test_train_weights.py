"""`train.change_weight`: which tokens weigh more, and that the training loss is weighted."""

from __future__ import annotations

import json

import pytest
import torch

from repotune.models.vocab import piece_text
from repotune.train.weights import ChangeLineWeights
from tests.train.test_train import _train, small, write_rows

DIFF = " def add(a, b):\n-    return a\n+    return a + b\n \n+x = 2\n )\n"


def _tokenizer(tiny_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _weighted_lines(tokenizer, prompt: str, completion: str, weight: float) -> list[str]:
    """The completion's text cut where the weight changes, each piece tagged with it."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    labels = torch.tensor([[-100] * len(p) + c])
    w = ChangeLineWeights(tokenizer, weight)(ids, labels)[0].tolist()
    assert w[: len(p)] == [1.0] * len(p)
    runs: list[list] = []
    for token, x in zip(c, w[len(p) :], strict=True):
        text = tokenizer.decode([token])
        if runs and runs[-1][0] == x:
            runs[-1][1] += text
        else:
            runs.append([x, text])
    return [f"{x:g}:{text}" for x, text in runs]


def test_changed_lines_weigh_more(tiny_model):
    tok = _tokenizer(tiny_model)
    runs = _weighted_lines(tok, "### Diff:\n", DIFF, 3.0)
    text = "".join(r.split(":", 1)[1] for r in runs)
    assert text == DIFF
    changed = "".join(r.split(":", 1)[1] for r in runs if r.startswith("3:"))
    # Every character of the -/+ lines and no character of the others (a token that holds
    # the newline ending an unchanged line and the '+' opening the next goes with its start).
    assert "-    return a\n" in changed and "+    return a + b\n" in changed and "+x = 2" in changed
    assert "def add" not in changed and ")" not in changed


def test_a_completion_starting_with_a_change_is_weighted_from_its_first_token(tiny_model):
    tok = _tokenizer(tiny_model)
    runs = _weighted_lines(tok, "x\n", "-x = 1\n+x = 2\n", 2.0)
    assert runs[0].startswith("2:-")


@pytest.mark.parametrize(
    ("piece", "text"), [("Ġfoo", " foo"), ("Ċ", "\n"), ("▁def", " def"), ("<0x0A>", "\n")]
)
def test_piece_text_reads_both_tokenizer_families(piece, text):
    assert piece_text(piece) == text


def test_weighted_training_loss_is_the_weighted_sum(tmp_path, tiny_model):
    """One step on the same rows and seed, so the same per-token losses: every completion line
    of `write_rows` is changed, so weight 3 triples all of the loss but the EOS token's."""
    losses = {}
    for weight in (1.0, 3.0):
        run = tmp_path / f"w{weight:g}"
        write_rows(run)
        _train(run, tiny_model, small(max_steps=1, change_weight=weight))
        history = json.loads((run / "train" / "log_history.json").read_text())
        losses[weight] = next(h["loss"] for h in history if "loss" in h)
    assert 2.5 * losses[1.0] < losses[3.0] < 3 * losses[1.0]
