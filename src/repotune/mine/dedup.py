"""Duplicate commits: the same change made twice (cherry-picks, backports, re-applied reverts)
would be seen twice in training and could sit on both sides of a time split.

A commit's change is its changed lines, each with its file path and sign, whitespace collapsed.
Exact copies share a digest of that list; near copies (a backport with a line adapted) have sets
of lines whose Jaccard similarity is above a threshold, found with MinHash LSH (`datasketch`).
Workers compute the keys next to the commit; the run checks them over the whole history, oldest
first, so the first copy is the one kept wherever the shards were cut.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

NUM_PERM = 64
_SCHEME = "affine32"
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=1, scheme=_SCHEME).permutations


def signature(files: Sequence[dict[str, Any]], near: bool = True) -> tuple[bytes | None, ...]:
    """(exact digest, MinHash bytes) of a commit's text changes; (None, None) if it has none."""
    lines = []
    for f in files:
        if f["skip_reason"] is not None:
            continue
        path = f["new_path"] or f["old_path"]
        for h in f["hunks"]:
            for line in h["lines"]:
                if line[:1] != " ":
                    lines.append(f"{path}\0{line[0]}{' '.join(line[1:].split())}")
    if not lines:
        return None, None
    data = [line.encode("utf-8", "surrogatepass") for line in lines]
    exact = hashlib.blake2b(b"\n".join(data), digest_size=16).digest()
    if not near:
        return exact, None
    m = MinHash(NUM_PERM, permutations=_PERMUTATIONS, scheme=_SCHEME, hashfunc=zlib.crc32)
    m.update_batch(set(data))
    return exact, m.hashvalues.astype("<u4").tobytes()


class Deduper:
    """Feed commits oldest first; `check` says why one is a copy of an earlier one, or None."""

    def __init__(self, mode: str, threshold: float) -> None:
        self.mode = mode
        self.threshold = threshold
        self.seen: set[bytes] = set()
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM) if mode == "near" else None
        self.signatures: dict[Hashable, bytes] = {}

    def check(self, key: Hashable, exact: bytes | None, minhash: bytes | None) -> str | None:
        if self.mode == "off" or exact is None:
            return None
        if exact in self.seen:
            return "duplicate"
        self.seen.add(exact)
        if self.lsh is None or minhash is None:
            return None
        values = np.frombuffer(minhash, dtype="<u4")
        sketch = LeanMinHash(seed=1, hashvalues=values, scheme=_SCHEME)
        # LSH candidates are approximate: confirm with the estimated Jaccard similarity.
        for other in self.lsh.query(sketch):
            if np.mean(np.frombuffer(self.signatures[other], "<u4") == values) >= self.threshold:
                return "near_duplicate"
        self.lsh.insert(key, sketch, check_duplication=False)
        self.signatures[key] = minhash
        return None
