"""Train stage (sft.py) and what uses its result: merge.py, export.py."""

import logging

# bitsandbytes (QLoRA) warns on every import on CPUs with AVX512-BF16 that an optional kernel
# from the hub is missing; its own CPU kernels work, so the warning is only noise.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
