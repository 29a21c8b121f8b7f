"""User-facing errors: the CLI prints these as one line and exits non-zero, no traceback."""

from __future__ import annotations

import os
import re

# Environment variables that hold credentials (OPENAI_API_KEY, REPOTUNE_TEACHER_API_KEY,
# HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...): their values are never printed.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)


class UserError(Exception):
    """Bad input from the user (path, config, data): message is shown as is."""


def redact(text: str) -> str:
    """`text` with the value of every credential in the environment replaced by its variable's
    name: an error may quote what a server answered, and servers echo keys back."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, f"<${name}>")
    return text
