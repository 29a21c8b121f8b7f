"""`repotune serve`: the tuned model behind an OpenAI-compatible HTTP API (see app.py)."""

from __future__ import annotations

from repotune.serve.app import DEFAULT_CAPACITY
from repotune.serve.engine import Engine
from repotune.serve.prompts import CompletionPrompts


def run_server(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_tokens: int = 512,
    capacity: int = DEFAULT_CAPACITY,
    completion: CompletionPrompts | None = None,
) -> None:
    """Serve until Ctrl-C. Loopback by default: exposing a model is the user's explicit choice."""
    import logging

    import uvicorn

    from repotune.serve.app import create_app

    # One line per request with its token rate, next to uvicorn's own log lines.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logging.getLogger("repotune.serve").addHandler(handler)
    logging.getLogger("repotune.serve").setLevel(logging.INFO)

    app = create_app(
        engine,
        api_key=api_key,
        default_max_tokens=max_tokens,
        capacity=capacity,
        completion=completion,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
