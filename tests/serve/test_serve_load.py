"""`repotune serve` over capacity: every request gets its answer or a clean 503, never a
dropped connection, and memory stays flat (bench/serve_load.py runs the same for longer)."""

from __future__ import annotations

import asyncio
import json

from repotune.serve.app import Admission
from repotune.serve.loadgen import drive, free_port, start_server, wait_ready


async def _request(app, path: str, body: bytes = b"{}") -> list[dict]:
    """One POST through an ASGI app, to its end; the messages the app sent back."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-length", str(len(body)).encode())]
    await app({"type": "http", "method": "POST", "path": path, "headers": headers}, receive, send)
    return sent


def test_admission_holds_a_slot_until_the_stream_ends():
    release = asyncio.Event()

    async def slow_stream(scope, receive, send) -> None:
        """Generation paths stream until released; anything else answers at once."""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] != "/health":
            await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
            await release.wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    gate = Admission(slow_stream, capacity=1, max_body=100)

    async def scenario() -> list[int]:
        stream = asyncio.create_task(_request(gate, "/v1/completions"))
        await asyncio.sleep(0.01)  # the stream has started and is held open
        busy = await _request(gate, "/v1/chat/completions")
        assert dict(busy[0]["headers"])[b"retry-after"] == b"1"
        error = json.loads(busy[1]["body"])["error"]
        assert error["type"] == "server_busy" and "capacity 1" in error["message"]
        health = await _request(gate, "/health", b"")
        too_big = await _request(gate, "/v1/completions", b"x" * 101)
        release.set()
        first = await stream
        again = await _request(gate, "/v1/completions")
        return [m[0]["status"] for m in (first, busy, health, too_big, again)]

    # busy while the stream runs; /health is never limited; an oversized body gets 413; the
    # slot is free again once the stream has ended
    assert asyncio.run(scenario()) == [200, 503, 200, 413, 200]


def test_over_capacity_gives_503_and_every_request_an_answer(tiny_model, tmp_path):
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        flags = ("--model", tiny_model, "--dtype", "float32", "--capacity", "2")
        proc = start_server(port, log, *flags)
        try:
            wait_ready(port, proc, timeout=120)
            body = {"prompt": "def add(a, b):", "max_tokens": 8, "temperature": 0}
            result = drive(port, clients=20, seconds=5, body=body, pid=proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    summary = result.summary()
    assert set(result.statuses) <= {200, 503}, summary
    assert not result.errors and not result.bad_bodies, summary
    assert result.statuses[200] >= 1 and result.statuses[503] >= 1, summary
    # 503s are answered at once, without waiting for the model
    assert max(result.busy_latencies) < 1.0, summary
    # memory stays flat under load: queued work is bounded by the capacity
    assert max(result.rss_mib) - result.rss_mib[0] < 200, summary
