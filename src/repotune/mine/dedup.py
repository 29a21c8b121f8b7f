"""Duplicate commits: the same change made twice (cherry-picks, backports, re-applied reverts)
would be seen twice in training and could sit on both sides of a time split.

A commit's change is its changed lines, each with its file path and sign, whitespace collapsed.
Exact copies share a digest of that list; near copies (a backport with a line adapted) have sets
of lines whose Jaccard similarity is above a threshold, found with MinHash LSH. Workers compute
the keys next to the commit; the run checks them over the whole history, oldest first, so the
first copy is the one kept wherever the shards were cut.

MinHash and LSH are `datasketch`'s, value for value (MinHash scheme "affine32", seed 1, CRC-32
of each line; LSH bands chosen as `MinHashLSH` chooses them), written here in a few lines of
numpy because importing datasketch imports SciPy: half a second of start-up for every worker
and every run. The tests hold both equal to datasketch.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import defaultdict
from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

NUM_PERM = 64
SEED = 1
# datasketch's affine32 permutations for SEED: h -> a * h + b mod 2^32, `a` odd
_rng = np.random.RandomState(SEED)
_A = (_rng.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1))[None, :]
_B = _rng.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)[None, :]
del _rng


def signature(files: Sequence[dict[str, Any]], near: bool = True) -> tuple[bytes | None, ...]:
    """(exact digest, MinHash bytes) of a commit's text changes; (None, None) if it has none."""
    lines: list[str] = []
    one_per_line = True  # no "\n" inside a line: they can be encoded as one string
    for f in files:
        if f["skip_reason"] is not None:
            continue
        prefix = (f["new_path"] or f["old_path"]) + "\0"
        one_per_line = one_per_line and "\n" not in prefix
        for h in f["hunks"]:
            lines += [
                prefix + line[0] + " ".join(line[1:].split())
                for line in h["lines"]
                if line[:1] != " "
            ]
    if not lines:
        return None, None
    if one_per_line:
        joined = "\n".join(lines).encode("utf-8", "surrogatepass")
        data = joined.split(b"\n")
    else:
        data = [line.encode("utf-8", "surrogatepass") for line in lines]
        joined = b"\n".join(data)
    exact = hashlib.blake2b(joined, digest_size=16).digest()
    if not near:
        return exact, None
    return exact, minhash(set(data)).astype("<u4").tobytes()


def minhash(items: set[bytes] | Sequence[bytes]) -> np.ndarray:
    """`datasketch.MinHash(NUM_PERM, seed=SEED, scheme="affine32", hashfunc=zlib.crc32)`
    updated with `items`: its `hashvalues`."""
    return minhash_crc(np.fromiter(map(zlib.crc32, items), dtype=np.uint32, count=len(items)))


def minhash_crc(crcs: np.ndarray) -> np.ndarray:
    """`minhash` of items given as their CRC-32s (uint32; a set made of them elsewhere)."""
    hv = np.array(crcs, dtype=np.uint32)[:, None]  # a copy: mixed in place below
    hv ^= hv >> np.uint32(16)  # the MurmurHash3 finalizer, as datasketch pre-mixes
    hv *= np.uint32(0x85EBCA6B)
    hv ^= hv >> np.uint32(13)
    hv *= np.uint32(0xC2B2AE35)
    hv ^= hv >> np.uint32(16)
    return (hv * _A + _B).min(axis=0)


class Deduper:
    """Feed commits oldest first; `check` says why one is a copy of an earlier one, or None."""

    def __init__(self, mode: str, threshold: float) -> None:
        self.mode = mode
        self.threshold = threshold
        self.seen: set[bytes] = set()
        self.lsh = LSH(threshold, NUM_PERM) if mode == "near" else None
        self.signatures: dict[Hashable, np.ndarray] = {}

    def check(self, key: Hashable, exact: bytes | None, minhash: bytes | None) -> str | None:
        if self.mode == "off" or exact is None:
            return None
        if exact in self.seen:
            return "duplicate"
        self.seen.add(exact)
        if self.lsh is None or minhash is None:
            return None
        values = np.frombuffer(minhash, dtype="<u4")
        # LSH candidates are approximate: confirm with the estimated Jaccard similarity.
        for other in self.lsh.query(values):
            if np.mean(self.signatures[other] == values) >= self.threshold:
                return "near_duplicate"
        self.lsh.insert(key, values)
        self.signatures[key] = values
        return None


class LSH:
    """`datasketch.MinHashLSH`: hash values cut into `bands` bands of `rows`; a query gives
    the keys of the sketches that share at least one band with it."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.bands, self.rows = lsh_bands(threshold, num_perm)
        self.tables: list[defaultdict[bytes, list[Hashable]]] = [
            defaultdict(list) for _ in range(self.bands)
        ]

    def _keys(self, values: np.ndarray) -> list[bytes]:
        r = self.rows
        return [values[i * r : (i + 1) * r].tobytes() for i in range(self.bands)]

    def insert(self, key: Hashable, values: np.ndarray) -> None:
        for table, band in zip(self.tables, self._keys(values), strict=True):
            table[band].append(key)

    def query(self, values: np.ndarray) -> set[Hashable]:
        found: set[Hashable] = set()
        for table, band in zip(self.tables, self._keys(values), strict=True):
            found.update(table.get(band, ()))
        return found


@lru_cache
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the false positive plus false negative probability mass around
    `threshold`, as `datasketch.lsh._optimal_param` with equal weights. Its integrands are
    polynomials of degree <= num_perm, which Gauss-Legendre quadrature with
    num_perm / 2 + 1 nodes integrates exactly."""
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 2)
    below = threshold / 2 * (nodes + 1)  # nodes mapped to [0, threshold]
    above = threshold + (1 - threshold) / 2 * (nodes + 1)  # and to [threshold, 1]
    best, choice = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = threshold / 2 * float(np.dot(weights, 1 - (1 - below**r) ** b))
            fn = (1 - threshold) / 2 * float(np.dot(weights, (1 - above**r) ** b))
            if fp * 0.5 + fn * 0.5 < best:
                best, choice = fp * 0.5 + fn * 0.5, (b, r)
    return choice
