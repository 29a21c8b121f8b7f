"""The same change made twice is kept once (the oldest copy), exactly or nearly the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from repotune.mine.dedup import Deduper, signature
from tests.mine.test_mine import GitRepo, lines, mine


def change(path: str, *hunk_lines: str, skip: str | None = None) -> dict:
    hunk = {"lines": list(hunk_lines)}
    return {"new_path": path, "old_path": path, "skip_reason": skip, "hunks": [hunk]}


def test_signature_ignores_context_and_whitespace_not_paths() -> None:
    a = signature([change("a.py", " ctx", "-x = 1", "+x  =  2")])
    b = signature([change("a.py", " other context", "-x = 1", "+x = 2")])
    c = signature([change("b.py", " ctx", "-x = 1", "+x = 2")])
    assert a == b and a[0] != c[0]
    assert signature([change("a.py", " only context")]) == (None, None)
    assert signature([change("a.png", "+x", skip="binary")]) == (None, None)
    assert signature([change("a.py", "+x")], near=False)[1] is None


def test_deduper_keeps_the_first_copy() -> None:
    base = [f"+line {i}" for i in range(40)]
    one = signature([change("a.py", *base)])
    near = signature([change("a.py", *base[:-1], "+line 39 changed")])
    other = signature([change("a.py", *[f"+other {i}" for i in range(40)])])
    d = Deduper("near", 0.85)
    assert [d.check(i, *sig) for i, sig in enumerate([one, one, near, other, (None, None)])] == [
        None,
        "duplicate",
        "near_duplicate",
        None,
        None,
    ]
    exact = Deduper("exact", 0.85)
    assert [exact.check(i, *sig) for i, sig in enumerate([one, one, near])] == [
        None,
        "duplicate",
        None,
    ]
    off = Deduper("off", 0.85)
    assert off.check(0, *one) is None and off.check(1, *one) is None


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, dict[str, str]]:
    """A block added, removed, added again (a copy), removed again, then added with one line
    adapted (a near copy)."""
    r = GitRepo(tmp_path_factory.mktemp("copies") / "repo")
    block = lines(40, "setting =")
    s = {"root": r.commit("Start", {"conf.py": "# settings\n"})}
    s["add"] = r.commit("Add the settings block", {"conf.py": "# settings\n" + block})
    s["drop"] = r.commit("Drop the settings block", {"conf.py": "# settings\n"})
    s["again"] = r.commit("Restore the settings block", {"conf.py": "# settings\n" + block})
    s["drop2"] = r.commit("Drop it once more", {"conf.py": "# settings\n"})
    adapted = block.replace("setting = 39", "setting = 39  # adapted")
    s["near"] = r.commit("Bring the block back, adapted", {"conf.py": "# settings\n" + adapted})
    s["other"] = r.commit("Add another file", {"other.py": lines(5, "o =")})
    return r, s


def test_duplicate_commits_dropped_and_counted(copies: tuple[GitRepo, dict[str, str]]) -> None:
    repo, s = copies
    commits, dropped = mine(repo, max_changed_lines=None)
    assert [c.sha for c in commits] == [s["other"], s["drop"], s["add"], s["root"]]
    assert dropped == {"duplicate": 2, "near_duplicate": 1}
    commits, dropped = mine(repo, max_changed_lines=None, dedup="exact")
    assert s["near"] in {c.sha for c in commits} and dropped == {"duplicate": 2}
    commits, dropped = mine(repo, max_changed_lines=None, dedup="off")
    assert len(commits) == 7 and dropped == {}


def test_run_mine_dedups_across_shards(
    tmp_path: Path, copies: tuple[GitRepo, dict[str, str]]
) -> None:
    from repotune.config import MineConfig
    from repotune.mine import read_commits, run_mine

    repo, s = copies
    cfg = MineConfig(max_changed_lines=None, shard_size=2, workers=1)
    stats = run_mine(repo.path, tmp_path / "run", cfg)
    assert stats["shards"] == 4
    assert stats["dropped"] == {"duplicate": 2, "near_duplicate": 1}
    kept = [c.sha for c in read_commits(tmp_path / "run" / "commits.parquet")]
    assert kept == [s["other"], s["drop"], s["add"], s["root"]]


def test_minhash_is_datasketchs() -> None:
    """The workers' numpy MinHash gives datasketch's values, so its LSH index reads them."""
    import zlib

    from datasketch import MinHash

    from repotune.mine.dedup import NUM_PERM, SEED, minhash

    for items in ([b"x"], [f"line {i}".encode() for i in range(500)], [b"", "é".encode()]):
        m = MinHash(NUM_PERM, seed=SEED, scheme="affine32", hashfunc=zlib.crc32)
        m.update_batch(items)
        assert (minhash(items) == m.hashvalues).all()


def test_lsh_is_datasketchs() -> None:
    """Same bands as datasketch's MinHashLSH for any threshold, same candidates."""
    import numpy as np
    from datasketch import LeanMinHash, MinHashLSH
    from datasketch.lsh import _optimal_param

    from repotune.mine.dedup import LSH, NUM_PERM, lsh_bands

    for t in [i / 100 for i in range(1, 101)]:
        assert lsh_bands(t, NUM_PERM) == _optimal_param(t, NUM_PERM, 0.5, 0.5), t
    rng = np.random.default_rng(0)
    base = rng.integers(0, 1 << 32, size=(50, NUM_PERM), dtype=np.uint32)
    sketches = [b.copy() for b in base for _ in range(4)]
    for s in sketches:  # near copies: some values changed
        s[rng.integers(0, NUM_PERM, size=int(rng.integers(0, 30)))] = rng.integers(0, 1 << 32)
    ours, theirs = LSH(0.85, NUM_PERM), MinHashLSH(threshold=0.85, num_perm=NUM_PERM)
    for key, s in enumerate(sketches):
        sketch = LeanMinHash(seed=1, hashvalues=s, scheme="affine32")
        assert ours.query(s) == set(theirs.query(sketch))
        ours.insert(key, s)
        theirs.insert(key, sketch, check_duplication=False)


def test_signature_of_odd_paths_and_text() -> None:
    """Keys are those of the lines `{path}\\0{sign}{content, whitespace collapsed}`."""
    import hashlib

    from repotune.mine.dedup import minhash

    for path in ("a.py", "new\nline.py", "café.py"):
        got = signature([change(path, " ctx", "-x \t= 1", "+y = 2 ", "+\udcff")])
        keys = [f"{path}\0-x = 1", f"{path}\0+y = 2", f"{path}\0+\udcff"]
        data = [k.encode("utf-8", "surrogatepass") for k in keys]
        assert got[0] == hashlib.blake2b(b"\n".join(data), digest_size=16).digest()
        assert got[1] == minhash(set(data)).astype("<u4").tobytes()
