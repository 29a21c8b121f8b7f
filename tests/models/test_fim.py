"""FIM token sets per model family: exact layouts and detection from a tokenizer."""

import pytest

from repotune.errors import UserError
from repotune.models.fim import (
    FAMILIES,
    detect_fim,
    fim_tokens_for,
    reserved_fim,
    trainable_fim_ids,
)

PREFIX, SUFFIX = "def f(x):\n", "    return y\n"

EXPECTED = {
    "starcoder": (
        "<fim_prefix>def f(x):\n<fim_suffix>    return y\n<fim_middle>",
        "<fim_prefix><fim_suffix>    return y\n<fim_middle>def f(x):\n",
    ),
    "santacoder": (
        "<fim-prefix>def f(x):\n<fim-suffix>    return y\n<fim-middle>",
        "<fim-prefix><fim-suffix>    return y\n<fim-middle>def f(x):\n",
    ),
    "codellama": (
        "<PRE> def f(x):\n <SUF>    return y\n <MID>",
        "<PRE> <SUF>    return y\n <MID> def f(x):\n",
    ),
    "deepseek": (
        "<｜fim▁begin｜>def f(x):\n<｜fim▁hole｜>    return y\n<｜fim▁end｜>",
        "<｜fim▁begin｜><｜fim▁hole｜>    return y\n<｜fim▁end｜>def f(x):\n",
    ),
    "qwen": (
        "<|fim_prefix|>def f(x):\n<|fim_suffix|>    return y\n<|fim_middle|>",
        "<|fim_prefix|><|fim_suffix|>    return y\n<|fim_middle|>def f(x):\n",
    ),
    "codegemma": (
        "<|fim_prefix|>def f(x):\n<|fim_suffix|>    return y\n<|fim_middle|>",
        "<|fim_prefix|><|fim_suffix|>    return y\n<|fim_middle|>def f(x):\n",
    ),
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_psm_and_spm_layouts(family):
    psm, spm = EXPECTED[family]
    tokens = FAMILIES[family]
    assert tokens.psm(PREFIX, SUFFIX) == psm
    assert tokens.spm(PREFIX, SUFFIX) == spm


class FakeTokenizer:
    """Just the vocabulary calls detection makes."""

    def __init__(self, tokens):
        self.vocab = {t: i for i, t in enumerate(["a", "b", *tokens])}

    def get_vocab(self):
        return dict(self.vocab)

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab[t] for t in tokens]


@pytest.mark.parametrize(
    ("extra", "family"),
    [
        (["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"], "starcoder"),
        (["<fim-prefix>", "<fim-middle>", "<fim-suffix>"], "santacoder"),
        (["<PRE>", "<SUF>", "<MID>", "<EOT>"], "codellama"),
        (["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"], "deepseek"),
        (["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>"], "qwen"),
        (["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"], "codegemma"),
    ],
)
def test_detect_family_from_vocabulary(extra, family):
    assert detect_fim(FakeTokenizer(extra)).family == family


def test_tiny_model_tokenizer_is_starcoder(tiny_model):
    from transformers import AutoTokenizer

    assert detect_fim(AutoTokenizer.from_pretrained(tiny_model)).family == "starcoder"


def test_reserved_tokens_stand_in_or_fim_is_unavailable():
    gemma_like = FakeTokenizer([f"<unused{i}>" for i in range(10)])
    assert detect_fim(gemma_like) is None
    tokens = fim_tokens_for(gemma_like)
    assert tokens.reserved and tokens.sentinels == ("<unused0>", "<unused1>", "<unused2>")
    llama3 = FakeTokenizer([f"<|reserved_special_token_{i}|>" for i in range(4)])
    assert reserved_fim(llama3).prefix == "<|reserved_special_token_0|>"
    with pytest.raises(UserError, match="FIM is unavailable for plain-model"):
        fim_tokens_for(FakeTokenizer([]), model="plain-model")
    assert fim_tokens_for(None, "deepseek").family == "deepseek"  # named: no tokenizer needed


def test_trainable_ids_only_for_reserved_sentinels_with_untied_embeddings():
    class Config:
        tie_word_embeddings = False

    class Model:
        config = Config()

    gemma_like = FakeTokenizer([f"<unused{i}>" for i in range(4)])
    rows = [{"prompt": "<unused0>a<unused1>b<unused2>"}]
    assert trainable_fim_ids(gemma_like, rows, Model()) == [2, 3, 4]
    assert trainable_fim_ids(gemma_like, [{"prompt": "plain"}], Model()) == []
    Config.tie_word_embeddings = True  # TRL's fused LM head cannot read a wrapped tied head
    assert trainable_fim_ids(gemma_like, rows, Model()) == []
    starcoder = FakeTokenizer(["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<unused0>"])
    Config.tie_word_embeddings = False
    assert trainable_fim_ids(starcoder, rows, Model()) == []
