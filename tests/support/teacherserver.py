"""A fake OpenAI-compatible teacher on 127.0.0.1 that answers from a script, for tests.

Only loopback is ever contacted. The server runs in a daemon thread, answers at most
`max_requests` requests, and shuts itself down after `lifetime` seconds if a test forgets to.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeTeacher:
    """Script items, one per request: 200 (answer), another status code, ("sleep", s)
    (answer late, to trigger client time-outs), ("garbage", bytes) (a 200 with that body),
    ("trickle", s) (a 200 whose body comes one byte every s seconds) or ("cut", 0) (a 200
    whose body stops half-way and the connection closes). After the script: always 200."""

    def __init__(self, script=None, max_requests: int = 100, lifetime: float = 60.0):
        self.script = list(script or [])
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.max_requests = max_requests
        self.lifetime = lifetime
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeTeacher:
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with teacher._lock:
                    teacher.requests.append(body)
                    teacher.headers.append(dict(self.headers))
                    n = len(teacher.requests)
                    step = teacher.script.pop(0) if teacher.script else 200
                if n > teacher.max_requests:
                    step = 503
                mode, arg = step if isinstance(step, tuple) else (None, None)
                if mode == "garbage":
                    self._send_200(arg)
                    return
                if mode == "sleep":
                    time.sleep(arg)
                if mode is None and step != 200:
                    self.send_response(step)
                    if step == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = body["messages"][-1]["content"]
                answer = f"Explanation {n} of {len(code)} characters from {body['model']}."
                data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
                self._send_200(data, mode, arg)

            def _send_200(self, data: bytes, mode: str | None = None, arg=None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    if mode == "trickle":
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(arg)
                    elif mode == "cut":
                        self.wfile.write(data[: len(data) // 2])
                        self.close_connection = True
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first, as a test meant it to

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.timer = threading.Timer(self.lifetime, self.server.shutdown)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
