from transformers import AutoTokenizer

from repotune.models.encode import encode_example, encode_prompt


def test_completion_survives_truncation_and_ends_with_eos(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = "def long():\n" + "    x = 1\n" * 200
    completion = "-    x = 1\n+    x = 2\n"
    enc = encode_example(tok, prompt, completion, max_length=64)
    ids, mask = enc["input_ids"], enc["completion_mask"]
    assert len(ids) == len(mask) == 64
    c_ids = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert [i for i, m in zip(ids, mask) if m] == c_ids
    assert ids[-1] == tok.eos_token_id
    # the prompt kept is the end of the prompt (left truncation)
    kept = [i for i, m in zip(ids, mask) if not m]
    p_ids = tok(prompt, add_special_tokens=True)["input_ids"]
    tail = kept[1:] if kept[0] == tok.bos_token_id else kept
    assert p_ids[-len(tail) :] == tail


def test_short_example_is_prompt_then_completion(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = encode_example(tok, "a = 1\n", "b = 2\n", max_length=256)
    p_ids = tok("a = 1\n", add_special_tokens=True)["input_ids"]
    assert enc["input_ids"][: len(p_ids)] == p_ids
    assert sum(enc["completion_mask"]) == len(enc["input_ids"]) - len(p_ids)
    assert encode_prompt(tok, "a = 1\n", 256) == p_ids
    assert len(encode_prompt(tok, "x = 1\n" * 100, 20)) == 20
