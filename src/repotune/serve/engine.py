"""One loaded model that streams completions, shared by `repotune serve` and `repotune chat`.

transformers' `generate` runs in a worker thread and hands text to a `TextIteratorStreamer`;
this side cuts the text at stop strings (holding back a possible partial match, so a client
never sees half of one) and cancels generation through a stopping criterion. A lock serialises
requests: one model on one device gains nothing from interleaving them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

log = logging.getLogger("repotune.serve")


@dataclass
class Sampling:
    """Decoding settings; temperature 0 means greedy."""

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Finish:
    """Filled in when a stream ends: why it stopped and how many tokens it took."""

    reason: str = "length"  # "stop" (EOS or a stop string) | "length" (max_tokens reached)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Watch(StoppingCriteria):
    """Counts generated tokens and stops generation once `cancel` is set."""

    def __init__(self, prompt_len: int, cancel: threading.Event):
        self.prompt_len, self.cancel = prompt_len, cancel
        self.generated, self.last = 0, -1

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self.generated = input_ids.shape[1] - self.prompt_len
        self.last = int(input_ids[0, -1])
        flag = self.cancel.is_set()
        return torch.full((input_ids.shape[0],), flag, dtype=torch.bool, device=input_ids.device)


def _first_stop(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


class Engine:
    def __init__(self, model: Any, tokenizer: Any, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.lock = threading.Lock()
        limits = [getattr(model.config, "max_position_embeddings", None)]
        limits.append(getattr(tokenizer, "model_max_length", None))
        self.context = min(n for n in [*limits, 1 << 20] if isinstance(n, int) and n > 0)

    def encode(self, prompt: str, templated: bool, max_tokens: int) -> list[int]:
        """Prompt ids, cut from the left so prompt plus `max_tokens` fits the context."""
        ids = self.tokenizer(prompt, add_special_tokens=not templated)["input_ids"]
        room = max(self.context - max_tokens, 1)
        if len(ids) <= room:
            return ids
        bos = [ids[0]] if ids and ids[0] == self.tokenizer.bos_token_id else []
        return bos + ids[len(ids) - room + len(bos) :]

    def complete(
        self, prompt: str, sampling: Sampling, templated: bool = False
    ) -> tuple[str, Finish]:
        """The whole completion at once: (text, Finish)."""
        finish = Finish()
        text = "".join(self.stream(prompt, sampling, finish, templated))
        return text, finish

    def stream(
        self, prompt: str, sampling: Sampling, finish: Finish, templated: bool = False
    ) -> Iterator[str]:
        """Yield text pieces as they are generated; `finish` is complete once this ends."""
        ids = self.encode(prompt, templated, sampling.max_tokens)
        finish.prompt_tokens = len(ids)
        with self.lock:
            started = time.monotonic()
            yield from self._stream_locked(ids, sampling, finish)
            seconds = time.monotonic() - started
        log.info(
            "%d prompt + %d generated tokens in %.2f s (%.1f tokens/s, %s)",
            finish.prompt_tokens, finish.completion_tokens, seconds,
            finish.completion_tokens / max(seconds, 1e-6), finish.reason,
        )  # fmt: skip

    def _stream_locked(self, ids: list[int], sampling: Sampling, finish: Finish) -> Iterator[str]:
        tok = self.tokenizer
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        watch = _Watch(len(ids), cancel)
        device = next(self.model.parameters()).device
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kwargs: dict[str, Any] = dict(
            input_ids=torch.tensor([ids], device=device),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
            max_new_tokens=sampling.max_tokens,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([watch]),
            pad_token_id=pad,
            eos_token_id=tok.eos_token_id,
            num_beams=1,
        )
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        hold = max((len(s) for s in sampling.stop if s), default=1) - 1
        text, sent, stopped, drained = "", 0, False, False
        try:
            for piece in streamer:
                text += piece
                cut = _first_stop(text, sampling.stop)
                if cut is not None:
                    stopped = True
                    cancel.set()
                    if cut > sent:
                        yield text[sent:cut]
                    break
                if len(text) - hold > sent:
                    yield text[sent : len(text) - hold]
                    sent = len(text) - hold
            else:
                drained = True
                if len(text) > sent:
                    yield text[sent:]
        finally:
            cancel.set()  # also when the consumer went away (client disconnected, Ctrl-C)
            if not drained:  # read up to the end signal, so the worker thread finishes
                for _ in streamer:
                    pass
            thread.join()
        if failure:
            raise failure[0]
        finish.completion_tokens = watch.generated
        hit_eos = watch.last == tok.eos_token_id
        finish.reason = "stop" if stopped or hit_eos else "length"
        if not stopped and not hit_eos and watch.generated < sampling.max_tokens:
            finish.reason = "stop"  # another stop condition of the model's generation config


def load_engine(
    run: Path | None = None,
    model: str | None = None,
    adapter: str | None = None,
    dtype: str = "auto",
    merge: bool = False,
    name: str | None = None,
) -> Engine:
    """The model a user points at: a run's tuned model (`run`), or a model (+ adapter).

    A run serves its tuned model (rundir.tuned_model): RUN/merged after a full fine-tune or
    `repotune merge`, otherwise its base model plus RUN/adapter.
    `merge` folds the adapter into the weights once, for faster generation.
    """
    from repotune.models.load import load_model, load_tokenizer
    from repotune.models.registry import resolve_model

    if run is not None:
        model, adapter, dtype = _from_run(Path(run), model, dtype)
    model = model or "gemma-3-270m"
    path = resolve_model(model)
    tokenizer = load_tokenizer(path)
    lm = load_model(path, dtype=dtype, adapter=adapter)
    if adapter is not None and merge:
        lm = lm.merge_and_unload()
    default_name = Path(run).name if run else Path(model).name
    return Engine(lm, tokenizer, name or default_name)


def _from_run(run: Path, model: str | None, dtype: str) -> tuple[str, str | None, str]:
    """The run's tuned model (rundir.tuned_model), from RUN/merged where that holds it."""
    from repotune.rundir import read_config, tuned_model

    saved = read_config(run)
    base = model or (saved.model.name if saved else None) or "gemma-3-270m"
    weights, adapter = tuned_model(run, base).load_args(fast=True)
    if adapter is None:
        return weights, None, dtype
    if model is None and saved is not None and dtype == "auto":
        dtype = saved.model.dtype
    return weights, adapter, dtype
