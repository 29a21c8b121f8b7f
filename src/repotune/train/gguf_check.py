"""Does llama.cpp run an exported GGUF as transformers runs the merged model it came from?

Both get the same prompt token ids (transformers' tokenizer), so only the weights and the
forward pass are compared. transformers decodes greedily; llama.cpp is then fed the same
tokens one by one (teacher forcing) and its top token is taken at every step. While the two
agree, llama.cpp's own greedy decoding is the same sequence, so the first disagreement is where
its free-running output would diverge, and the share of agreeing steps says how often its top
token matches along transformers' path. llama.cpp's own tokenization of each prompt is
compared too, since Ollama and llama.cpp tokenize the text themselves.

llama-cpp-python is an optional dependency (`pip install repotune[llamacpp]`, a compile of
llama.cpp): this module imports it only when called.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class PromptCheck:
    tokens: int  # transformers' greedy tokens (to EOS or the limit), each compared
    agree: int  # steps where llama.cpp's top token is transformers' token
    first_divergence: int | None  # step of the first disagreement; None: the same sequence
    tokenizer_same: bool  # llama.cpp tokenizes the prompt text to the same ids
    max_logit_diff: float
    transformers_token: str = ""  # at the first divergence
    llama_cpp_token: str = ""
    margin: float = 0.0  # transformers' top-1 minus top-2 logit there: a near-tie or not


@dataclass
class Agreement:
    prompts: list[PromptCheck] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self.prompts)

    @property
    def share(self) -> float:
        return sum(p.agree for p in self.prompts) / max(self.tokens, 1)

    @property
    def identical(self) -> int:
        """Prompts whose whole greedy continuation is the same in both runtimes."""
        return sum(p.first_divergence is None for p in self.prompts)

    def summary(self) -> dict:
        diverged = [(i, p) for i, p in enumerate(self.prompts) if p.first_divergence is not None]
        first = diverged[0] if diverged else None
        return {
            "prompts": len(self.prompts),
            "tokens_compared": self.tokens,
            "share_identical": round(self.share, 4),
            "identical_continuations": self.identical,
            "tokenizer_same": sum(p.tokenizer_same for p in self.prompts),
            "max_logit_diff": max((p.max_logit_diff for p in self.prompts), default=0.0),
            "first_divergence": None if first is None else {"prompt": first[0], **asdict(first[1])},
        }


def compare(
    gguf: Path,
    model_dir: Path,
    prompts: list[str],
    max_new_tokens: int = 32,
    threads: int | None = None,
    kv_f32: bool = False,
) -> Agreement:
    """Greedy tokens of `model_dir` (transformers, float32) vs the GGUF in llama.cpp.
    `kv_f32`: keep llama.cpp's KV cache in float32 instead of its default float16, so an f32
    file can be checked to float precision."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    n_ctx = max(len(ids) for ids in encoded) + max_new_tokens + 8
    llm = _load(gguf, n_ctx, threads, kv_f32)
    result = Agreement()
    for text, ids in zip(prompts, encoded):
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False,
                output_logits=True, return_dict_in_generate=True,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        tokens = out.sequences[0, len(ids) :].tolist()
        reference = [step[0].float().numpy() for step in out.logits]
        check = _follow(llm, ids, tokens, reference)
        check.tokenizer_same = llm.tokenize(text.encode(), add_bos=True, special=True) == ids
        if check.first_divergence is not None:
            at, mine = check.first_divergence, check.llama_cpp_token
            check.transformers_token = tokenizer.decode([tokens[at]])
            check.llama_cpp_token = tokenizer.decode([int(mine)])
            top2 = np.sort(reference[at])[-2:]
            check.margin = float(top2[1] - top2[0])
        result.prompts.append(check)
    return result


def _load(gguf: Path, n_ctx: int, threads: int | None, kv_f32: bool):
    import llama_cpp

    kv = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if kv_f32 else {}
    return llama_cpp.Llama(
        model_path=str(gguf), n_ctx=n_ctx, n_batch=n_ctx, n_threads=threads, verbose=False, **kv
    )


def _follow(llm, ids: list[int], tokens: list[int], reference: list[np.ndarray]) -> PromptCheck:
    """Feed `ids` then `tokens` to llama.cpp, comparing its top token at each step."""
    import llama_cpp

    llm.reset()
    llm.eval(ids)
    agree, first, mine, worst = 0, None, "", 0.0
    for step, token in enumerate(tokens):
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))
        n = min(len(logits), len(reference[step]))  # HF pads the vocabulary past the real one
        worst = max(worst, float(np.abs(logits[:n] - reference[step][:n]).max()))
        top = int(np.argmax(logits[:n]))
        if top == token:
            agree += 1
        elif first is None:
            first, mine = step, str(top)
        llm.eval([token])
    return PromptCheck(len(tokens), agree, first, False, worst, llama_cpp_token=mine)
