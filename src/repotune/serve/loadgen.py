"""Concurrent clients against `repotune serve` on 127.0.0.1, for tests/serve/test_serve_load.py
and bench/serve_load.py: answers counted by status, transport errors by kind, latencies, and the
server's resident memory sampled while the load runs. In the package rather than tests/ because
bench scripts import no test helpers.

Clients are threads with one keep-alive connection each (stdlib http.client: the load is
I/O-bound, and nothing beyond the standard library is needed). A client that gets a 503 waits
its Retry-After before asking again, as well-behaved clients do.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class LoadResult:
    clients: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    ok_latencies: list[float] = field(default_factory=list)
    busy_latencies: list[float] = field(default_factory=list)
    bad_bodies: int = 0  # 200 answers that were not a completion
    rss_mib: list[float] = field(default_factory=list)
    peak_rss_mib: float | None = None

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def other(self) -> int:
        return sum(n for status, n in self.statuses.items() if status not in (200, 503))

    def summary(self) -> str:
        def pct(values: list[float], q: int) -> str:
            if len(values) < 2:
                return f"{values[0]:.3f}" if values else "-"
            return f"{statistics.quantiles(values, n=100, method='inclusive')[q - 1]:.3f}"

        ok, busy = self.ok_latencies, self.busy_latencies
        lines = [
            f"requests: {self.requests} in {self.seconds:.1f} s "
            f"({self.requests / self.seconds:.1f}/s); answered 200: {self.statuses[200]} "
            f"({self.statuses[200] / self.seconds:.1f}/s), 503: {self.statuses[503]}, "
            f"other status: {self.other}, connection errors: {sum(self.errors.values())}"
            + (f" {dict(self.errors)}" if self.errors else ""),
            f"latency of 200s: p50 {pct(ok, 50)} s, p95 {pct(ok, 95)} s, max "
            f"{max(ok, default=0):.3f} s; of 503s: p50 {pct(busy, 50)} s, p95 {pct(busy, 95)} s",
        ]
        if self.rss_mib:
            lines.append(
                f"server RSS: {self.rss_mib[0]:.0f} MiB at the start of the load, "
                f"{max(self.rss_mib):.0f} MiB highest sample, {self.rss_mib[-1]:.0f} MiB at the "
                f"end; peak since start (VmHWM, model loading included) {self.peak_rss_mib:.0f} MiB"
            )
        return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log: IO[str], *args: str) -> subprocess.Popen:
    """`repotune serve ARGS` on 127.0.0.1:PORT, its output into `log`."""
    cmd = [sys.executable, "-m", "repotune.cli", "serve", "--port", str(port), *args]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"repotune serve exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"repotune serve did not answer within {timeout:.0f} s")
        time.sleep(0.3)


def _status_field(pid: int, name: str) -> float | None:
    """A memory figure of /proc/PID/status (VmRSS, VmHWM) in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def drive(
    port: int,
    clients: int,
    seconds: float,
    body: dict,
    pid: int | None = None,
    request_timeout: float = 300.0,
) -> LoadResult:
    """`clients` threads POST `body` to /v1/completions back to back for `seconds`; requests
    still running at the end are waited for and counted."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    result = LoadResult(clients, seconds)
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds
    stop_sampling = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=request_timeout)
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        ok, busy, bad = [], [], 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                conn.request("POST", "/v1/completions", body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=request_timeout)
                continue
            took = time.monotonic() - t0
            statuses[resp.status] += 1
            if resp.status == 200:
                ok.append(took)
                try:
                    bad += not isinstance(json.loads(payload)["choices"][0]["text"], str)
                except (ValueError, KeyError, IndexError, TypeError):
                    bad += 1
            elif resp.status == 503:
                busy.append(took)
                wait = float(resp.getheader("Retry-After") or 1)
                time.sleep(max(0.0, min(wait, end - time.monotonic())))
        conn.close()
        with lock:
            result.statuses.update(statuses)
            result.errors.update(errors)
            result.ok_latencies.extend(ok)
            result.busy_latencies.extend(busy)
            result.bad_bodies += bad

    def sample() -> None:
        while pid is not None and not stop_sampling.is_set():
            rss = _status_field(pid, "VmRSS")
            if rss is not None:
                result.rss_mib.append(rss)
            stop_sampling.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - start
    stop_sampling.set()
    sampler.join()
    if pid is not None:
        result.peak_rss_mib = _status_field(pid, "VmHWM")
    return result
