"""glibc malloc tuning for CPU training.

Each training step allocates and frees tensors of hundreds of MB. By default glibc serves
those with mmap and returns them to the OS at once, so every step pays page faults again
(measured here: ~8 s/step vs ~3-5 s/step for the same LoRA step on Gemma 3 270M). Keeping
freed memory in the heap costs resident memory we would use again on the next step anyway.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Keep large freed blocks for reuse; a no-op (False) where libc is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    ok &= libc.mallopt(_M_TOP_PAD, 1 << 28)
    return bool(ok)
