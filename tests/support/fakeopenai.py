"""A fake OpenAI-compatible server on 127.0.0.1 (an ephemeral port), for backend tests.

`reply(kind, request)` returns the texts to answer with; every request body is recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, reply: Callable[[str, dict], list[str]]) -> None:
        self.reply = reply
        self.requests: list[tuple[str, dict]] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                kind = "chat" if self.path.endswith("/chat/completions") else "completions"
                outer.requests.append((kind, body))
                outer.auth.append(self.headers.get("Authorization"))
                texts = outer.reply(kind, body)
                if kind == "chat":
                    choices = [
                        {"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": t}}
                        for i, t in enumerate(texts)
                    ]  # fmt: skip
                    obj = "chat.completion"
                else:
                    choices = [
                        {"index": i, "finish_reason": "stop", "text": t, "logprobs": None}
                        for i, t in enumerate(texts)
                    ]
                    obj = "text_completion"
                data = json.dumps(
                    {"id": "x", "object": obj, "created": 0, "model": body["model"],
                     "choices": choices}
                ).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
