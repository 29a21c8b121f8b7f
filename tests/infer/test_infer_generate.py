"""Candidate generation on the tiny random model: greedy, seeded sampling, ranked beams, stop
sequences; the plain greedy call the held-out evaluation uses is unchanged."""

from __future__ import annotations

import pytest

from repotune.infer.generate import Decoding, generate, generate_candidates, truncate_at_stop

PROMPTS = ["def add(a, b):\n", "int main(int argc", "class Stack:\n"]


@pytest.fixture(scope="module")
def lm(tiny_model):
    from repotune.models.load import load_model, load_tokenizer

    return load_model(tiny_model, dtype="float32"), load_tokenizer(tiny_model)


def test_greedy_candidates_match_plain_generate(lm):
    model, tok = lm
    plain = generate(model, tok, PROMPTS, max_new_tokens=8, batch_size=2)
    cands = generate_candidates(model, tok, PROMPTS, Decoding(max_new_tokens=8), batch_size=2)
    assert [g[0].text for g in cands] == plain
    assert all(len(g) == 1 for g in cands)


def test_beam_search_returns_n_ranked_sequences(lm):
    model, tok = lm
    dec = Decoding(mode="beam", n=4, max_new_tokens=6)
    groups = generate_candidates(model, tok, PROMPTS[:2], dec, batch_size=2)
    assert [len(g) for g in groups] == [4, 4]
    for g in groups:
        scores = [c.score for c in g]
        assert all(s is not None for s in scores)
        assert scores == sorted(scores, reverse=True)
        assert len({c.text for c in g}) > 1


def test_sampling_is_seeded_and_independent_of_global_rng(lm):
    import torch

    model, tok = lm
    dec = Decoding(mode="sample", n=3, max_new_tokens=8, seed=7)
    a = generate_candidates(model, tok, PROMPTS, dec, batch_size=2)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    b = generate_candidates(model, tok, PROMPTS, dec, batch_size=2)
    assert torch.equal(state, torch.random.get_rng_state())  # caller's RNG untouched
    assert [[c.text for c in g] for g in a] == [[c.text for c in g] for g in b]
    other = generate_candidates(model, tok, PROMPTS, Decoding(**{**dec.__dict__, "seed": 8}))
    assert [[c.text for c in g] for g in a] != [[c.text for c in g] for g in other]
    assert len({c.text for c in a[0]}) > 1  # n different samples


def test_stop_sequences_cut_the_text(lm):
    model, tok = lm
    free = generate_candidates(model, tok, PROMPTS, Decoding(max_new_tokens=24))
    stops = []
    for g in free:  # a stop string that occurs in the unconstrained output
        text = g[0].text
        stops.append(text[len(text) // 2 : len(text) // 2 + 2] if len(text) > 4 else None)
    stop = tuple(s for s in stops if s and s.strip())
    assert stop
    cut = generate_candidates(model, tok, PROMPTS, Decoding(max_new_tokens=24, stop=stop))
    for full, short in zip(free, cut, strict=True):
        assert full[0].text.startswith(short[0].text)
        assert not any(s in short[0].text for s in stop)


def test_truncate_and_decoding_checks():
    assert truncate_at_stop("abc\ndef x\nclass", ("\nclass", "\ndef")) == "abc"
    assert truncate_at_stop("abc", ()) == "abc"
    with pytest.raises(ValueError):
        Decoding(mode="greedy", n=2)
    with pytest.raises(ValueError):
        Decoding(mode="beam", n=4, num_beams=2)


def test_cut_lines_keeps_text_up_to_the_nth_newline():
    from repotune.infer.generate import cut_lines

    assert cut_lines("a = 1\nb = 2\nc = 3\n", 1) == "a = 1\n"
    assert cut_lines("a = 1\nb = 2\nc = 3\n", 2) == "a = 1\nb = 2\n"
    assert cut_lines("a = 1\nb = 2\nc = 3\n", 3) == "a = 1\nb = 2\nc = 3\n"
    assert cut_lines("a = 1\nb", 3) == "a = 1\nb"  # fewer lines: all of it
    assert cut_lines("no newline", 1) == "no newline"
    assert cut_lines("\n\nx\n", 1) == "\n"  # an empty first line is a line
    assert cut_lines("\n\nx\n", 2) == "\n\n"
    assert cut_lines("", 2) == ""


def test_line_stop_counts_newlines_of_the_new_text_only(lm):
    import torch

    from repotune.infer.generate import LineStop

    _, tok = lm
    prompt = tok("x\ny\nz\n", add_special_tokens=False)["input_ids"]  # newlines before: ignored
    new = [tok(t, add_special_tokens=False)["input_ids"] for t in ("ab", "a\nb", "a\nb\nc")]
    width = max(len(n) for n in new)
    rows = [prompt + n + [tok.pad_token_id] * (width - len(n)) for n in new]
    ids = torch.tensor(rows)
    assert LineStop(tok, len(prompt), [1, 1, 1])(ids, None).tolist() == [False, True, True]
    assert LineStop(tok, len(prompt), [2, 2, 2])(ids, None).tolist() == [False, False, True]


def test_generate_stops_after_the_asked_lines(lm):
    from repotune.infer.generate import cut_lines

    model, tok = lm
    candidates = [*PROMPTS, "try:\n    value = int(text)\n", "import os\nimport sys\n\n"]
    free = generate(model, tok, candidates, max_new_tokens=64, batch_size=4)
    prompt = max(zip(candidates, free), key=lambda pf: pf[1].count("\n"))[0]
    full = free[candidates.index(prompt)]
    assert full.count("\n") >= 3, full  # else the test below could not fail
    texts = generate(
        model, tok, [prompt, prompt], max_new_tokens=64, batch_size=2, stop_lines=[1, 2]
    )
    assert texts[0].count("\n") <= 1 and texts[1].count("\n") <= 2
    assert texts[0].endswith("\n") and texts[1].endswith("\n")
    assert texts == [cut_lines(full, 1), cut_lines(full, 2)]  # greedy: the same text, cut
    # rows of one batch stop each at its own count (and a row without newlines runs on)
    mixed = generate(
        model, tok, [prompt, PROMPTS[0]], max_new_tokens=64, batch_size=2, stop_lines=[2, 1]
    )
    assert mixed[0] == cut_lines(full, 2)
    assert mixed[1].count("\n") <= 1
