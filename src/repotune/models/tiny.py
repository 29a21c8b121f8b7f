"""A tiny random causal LM saved as an ordinary HF folder, so the suite needs no real weights.

Same family as the embedded default (Gemma 3, tied embeddings, a <bos> prepended by the
tokenizer) so code paths that work here also see the quirks of the real model; FIM tokens are
StarCoder-style, as the FIM task expects from models that have them. In the package rather than
tests/ because bench/serve_load.py builds one too, and bench scripts import no test helpers.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]
FIM_TOKENS = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
VOCAB_SIZE = 768

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n"
    "    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, item):\n        self.items.append(item)\n",
    "import os\nimport sys\n\nfor path in sys.argv[1:]:\n    print(os.path.getsize(path))\n",
    'int main(int argc, char **argv) {\n    printf("hello %d\\n", argc);\n    return 0;\n}\n',
    "static int clamp(int x, int lo, int hi)\n{\n\tif (x < lo)\n\t\treturn lo;\n"
    "\treturn x > hi ? hi : x;\n}\n",
    'public static void main(String[] args) {\n    System.out.println("Hello, world");\n}\n',
    "fix: handle empty input in parser\n\nThe parser crashed when the file was empty.\n",
    "diff --git a/src/app.py b/src/app.py\n@@ -1,3 +1,3 @@\n-x = 1\n+x = 2\n",
    "while (i < n) { total += values[i]; i++; }\n",
    "try:\n    value = int(text)\nexcept ValueError:\n    value = None\n",
    'SRC_URI = "git://example.com/repo.git;branch=main"\nDEPENDS += "zlib"\n',
]


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS + FIM_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    bos = tokenizer.token_to_id("<bos>")
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
            ),
        ]
    )
    return tokenizer


def _wrap_tokenizer(tokenizer):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=FIM_TOKENS,
        model_max_length=512,
        padding_side="left",  # what Gemma's tokenizer ships with; callers set their own
    )


def _build_model(tokenizer):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        max_position_embeddings=512,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        **ids,
    )
    with torch.random.fork_rng(devices=[]):  # deterministic without touching the caller's RNG
        torch.manual_seed(0)
        model = Gemma3ForCausalLM(config)
    model.generation_config = GenerationConfig(**ids)
    return model


def make_tiny_model(out_dir: Path) -> Path:
    """Build the tiny model and its tokenizer into `out_dir` (a few seconds on a CPU)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _wrap_tokenizer(_train_tokenizer())
    model = _build_model(tokenizer)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
