"""`repotune serve` under load: many concurrent clients on loopback for a fixed time.

    python bench/serve_load.py [--clients 50] [--seconds 60] [--capacity 8] [--max-tokens 16]
                               [--embedded | --model PATH]

Starts `repotune serve` on 127.0.0.1 in a child process (a tiny random model built here by
default, the embedded default Gemma 3 270M with --embedded, or any model folder) and drives it
with completion requests from `--clients` threads, each with a keep-alive connection, back to
back; a 503 is waited out for its Retry-After. Printed: requests per second, answers by status
(200, 503, other) and connection errors, p50/p95 latency, and the server's resident memory
(sampled during the load, and its peak). The server must answer every request or say 503.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from repotune.serve.loadgen import drive, free_port, start_server, wait_ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--capacity", type=int, default=8, help="repotune serve --capacity")
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens per completion")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--embedded", action="store_true", help="the embedded default model")
    which.add_argument("--model", help="a model folder or name (default: a tiny random model)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.embedded:
            model, label, dtype = "gemma-3-270m", "embedded Gemma 3 270M", "auto"
        elif args.model:
            model, label, dtype = args.model, args.model, "auto"
        else:
            from repotune.models.tiny import make_tiny_model

            model, label, dtype = str(make_tiny_model(Path(tmp) / "tiny")), "tiny model", "float32"
        port = free_port()
        log_path = Path(tmp) / "serve.log"
        with log_path.open("w") as log:
            flags = ("--model", model, "--dtype", dtype, "--capacity", str(args.capacity))
            proc = start_server(port, log, *flags)
            try:
                wait_ready(port, proc, timeout=600)
                body = {"prompt": "def fibonacci(n):", "max_tokens": args.max_tokens,
                        "temperature": 0}  # fmt: skip
                result = drive(port, args.clients, args.seconds, body, pid=proc.pid)
            except RuntimeError as exc:
                sys.exit(f"{exc}\n{log_path.read_text()[-3000:]}")
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    print(
        f"repotune serve ({label}, --capacity {args.capacity}): {args.clients} clients for "
        f"{args.seconds:g} s, completions of {args.max_tokens} tokens, greedy"
    )
    print(result.summary())
    if result.other or result.errors or result.bad_bodies:
        sys.exit("FAIL: answers other than 200 or 503, malformed bodies, or connection errors")


if __name__ == "__main__":
    main()
