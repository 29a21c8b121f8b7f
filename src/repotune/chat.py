"""`repotune chat`: talk to a base, tuned (base + adapter) or merged model in the terminal.

The whole conversation is the prompt of every turn, so the model sees the history; when it no
longer fits the context, the oldest turns go first (the system message stays). Replies stream
as they are generated. Piped input works too: one line per turn, replies on stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from repotune.serve.engine import Engine, Finish, Sampling
from repotune.serve.prompts import chat_prompt

HELP = (
    "/reset clears the history, /history shows it, /exit or Ctrl-D quits; "
    "end a line with \\ to continue it"
)


class ChatSession:
    """A conversation with one engine; `messages` is the OpenAI-style history."""

    def __init__(self, engine: Engine, system: str | None = None, sampling: Sampling | None = None):
        self.engine = engine
        self.system = system
        self.sampling = sampling or Sampling(max_tokens=256)
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def prompt(self) -> tuple[str, list[str], bool]:
        """This turn's prompt, dropping the oldest exchanges until it fits the context."""
        room = self.engine.context - self.sampling.max_tokens
        while True:
            prompt, stops, templated = chat_prompt(self.engine.tokenizer, self.messages)
            n = len(self.engine.tokenizer(prompt, add_special_tokens=not templated)["input_ids"])
            first = 1 if self.system else 0
            if n <= room or len(self.messages) - first <= 1:
                return prompt, stops, templated
            del self.messages[first : first + 2]  # oldest user turn and its reply

    def ask(self, text: str, on_piece: Callable[[str], None] | None = None) -> tuple[str, Finish]:
        """Add the user's turn, generate the reply (streamed to `on_piece`), keep both."""
        self.messages.append({"role": "user", "content": text})
        prompt, stops, templated = self.prompt()
        sampling = replace(self.sampling, stop=[*self.sampling.stop, *stops])
        finish, pieces = Finish(), []
        for piece in self.engine.stream(prompt, sampling, finish, templated):
            if not pieces:
                piece = piece.lstrip()  # the transcript prompt ends in "Assistant:"
                if not piece:
                    continue
            pieces.append(piece)
            if on_piece:
                on_piece(piece)
        reply = "".join(pieces).rstrip()
        self.messages.append({"role": "assistant", "content": reply})
        return reply, finish


def _read_turn(stdin: TextIO, interactive: bool) -> str | None:
    """One user turn (lines ending in a backslash continue it); None at end of input."""
    lines: list[str] = []
    while True:
        if interactive:
            try:
                line = input(">>> " if not lines else "... ")
            except EOFError:
                return None
        else:
            line = stdin.readline()
            if not line:
                return "\n".join(lines) if lines else None
            line = line.rstrip("\n")
        if line.endswith("\\"):
            lines.append(line[:-1])
            continue
        lines.append(line)
        return "\n".join(lines)


def run_chat(
    session: ChatSession,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    """The read-generate-print loop; returns the number of turns answered."""
    interactive = stdin is sys.stdin and stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        stderr.write(f"chatting with {session.engine.name}. {HELP}\n")
    turns = 0
    while (text := _read_turn(stdin, interactive)) is not None:
        command = text.strip()
        if not command:
            continue
        if command in ("/exit", "/quit"):
            break
        if command == "/reset":
            session.reset()
            stderr.write("history cleared\n")
            continue
        if command == "/history":
            for m in session.messages:
                stdout.write(f"[{m['role']}] {m['content']}\n")
            continue
        if command in ("/help", "/?"):
            stderr.write(HELP + "\n")
            continue
        started = time.monotonic()

        def show(piece: str) -> None:
            stdout.write(piece)
            stdout.flush()

        _, finish = session.ask(text, show)
        stdout.write("\n")
        stdout.flush()
        turns += 1
        if interactive:
            seconds = max(time.monotonic() - started, 1e-6)
            rate = finish.completion_tokens / seconds
            cut = " (cut at max tokens)" if finish.reason == "length" else ""
            stderr.write(f"[{finish.completion_tokens} tokens, {rate:.1f} tokens/s{cut}]\n")
    return turns
