"""Parallel shards: the same output whatever the number of workers, an interrupted run resumed
by running it again, and never a half-written commits.parquet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repotune.config import MineConfig
from repotune.mine import SHARD_DIR, mine_into, read_commits, run_mine
from repotune.mine.progress import enabled
from repotune.mine.shards import mine_shard, plan_shards
from tests.support.gitrepo import make_history

CFG = {"max_changed_lines": None, "shard_size": 4}


class Boom(RuntimeError):
    pass


def fail_on_shard_3(task, counter=None):
    """A worker that dies on the fourth shard (picklable: workers import this module)."""
    if task.index == 3:
        raise Boom("worker died")
    return mine_shard(task, counter)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_history(tmp_path_factory.mktemp("shards") / "repo", n_commits=26)


@pytest.fixture(scope="module")
def reference(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict]:
    """An uninterrupted run in this process."""
    out = tmp_path_factory.mktemp("reference")
    stats = run_mine(repo, out, MineConfig(**CFG, workers=1))
    return (out / "commits.parquet").read_bytes(), stats


def test_reference_run(repo: Path, reference: tuple[bytes, dict]) -> None:
    _, stats = reference
    assert stats["shards"] == 7 and stats["considered"] == 26 and stats["kept"] == 26
    assert stats["sizes"]["files"] == {"1": 26}


def test_workers_give_the_same_bytes(
    repo: Path, tmp_path: Path, reference: tuple[bytes, dict]
) -> None:
    stats = run_mine(repo, tmp_path, MineConfig(**CFG, workers=2))
    assert stats["workers"] == 2
    assert (tmp_path / "commits.parquet").read_bytes() == reference[0]
    assert not (tmp_path / SHARD_DIR).exists()  # shards are removed once merged


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_run_resumes(
    repo: Path, tmp_path: Path, reference: tuple[bytes, dict], workers: int
) -> None:
    cfg = MineConfig(**CFG, workers=workers)
    with pytest.raises(Boom):
        mine_into(repo, tmp_path, cfg, shard_fn=fail_on_shard_3)
    assert not (tmp_path / "commits.parquet").exists()  # never half-written
    assert not (tmp_path / "mine_stats.json").exists()
    names = [p.name for p in (tmp_path / SHARD_DIR).iterdir()]
    assert all(not name.startswith(".") for name in names)  # no temp file of the dead shard
    done = sorted({name[:6] for name in names})  # a shard's rows or its encoded part
    if workers == 1:  # oldest first: the three shards mined before the failure are kept
        assert done == ["000004", "000005", "000006"]
        assert all(name.endswith(".parquet") for name in names)  # and encoded

    mined: list[int] = []

    def record(task, counter=None):
        mined.append(task.index)
        return mine_shard(task, counter)

    stats = mine_into(repo, tmp_path, MineConfig(**CFG, workers=1), shard_fn=record)
    assert len(mined) == 7 - len(done) and 3 in mined  # only what was missing
    assert (tmp_path / "commits.parquet").read_bytes() == reference[0]
    assert {k: stats[k] for k in ("kept", "dropped")} == {
        k: reference[1][k] for k in ("kept", "dropped")
    }


def test_finished_run_is_not_redone(repo: Path, tmp_path: Path) -> None:
    first = run_mine(repo, tmp_path, MineConfig(**CFG, workers=1))
    stamp = os.stat(tmp_path / "commits.parquet").st_mtime_ns
    assert run_mine(repo, tmp_path, MineConfig(**CFG, workers=1)) == first
    assert os.stat(tmp_path / "commits.parquet").st_mtime_ns == stamp
    other = run_mine(repo, tmp_path, MineConfig(**CFG, workers=1, max_commits=5))
    assert other["kept"] == 5 and len(read_commits(tmp_path / "commits.parquet")) == 5


def test_shard_keys_follow_arguments_and_commits(repo: Path, tmp_path: Path) -> None:
    shas = [f"{i:040x}" for i in range(10)]
    base = plan_shards(repo, shas, MineConfig(shard_size=4), tmp_path)
    assert [len(t.shas) for t in base] == [4, 4, 2]
    same = plan_shards(repo, shas, MineConfig(shard_size=4, workers=3), tmp_path)
    assert [t.path for t in same] == [t.path for t in base]
    changed = plan_shards(repo, shas, MineConfig(shard_size=4, context_lines=1), tmp_path)
    assert not {t.path for t in changed} & {t.path for t in base}
    moved = plan_shards(repo, ["f" * 40, *shas], MineConfig(shard_size=4), tmp_path)
    assert not {t.path for t in moved} & {t.path for t in base}


def test_output_loads_with_datasets(repo: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    run_mine(repo, tmp_path / "run", MineConfig(**CFG, workers=1))
    path = tmp_path / "run" / "commits.parquet"
    ds = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert ds["sha"] == [c.sha for c in read_commits(path)]


def test_progress_bar_is_off_without_a_terminal() -> None:
    assert not enabled()  # pytest captures stderr


def test_mining_pauses_while_too_many_rows_wait(tmp_path: Path) -> None:
    """Rows wait uncompressed until every older shard is mined: when an old shard is slow,
    the others stop mining at a bound, but never when nothing runs (no deadlock)."""
    from collections import deque

    from repotune.mine.shards import _BACKLOG, _fill

    class Pool:
        def submit(self, fn, *args):  # type: ignore[no-untyped-def]
            return object()

    shas = [f"{i:040x}" for i in range(40)]
    to_mine = deque(plan_shards(tmp_path, shas, MineConfig(shard_size=1), tmp_path))
    running: dict = {}
    _fill(Pool(), running, 2, deque(), to_mine, mine_shard, set(range(_BACKLOG * 2 - 1)))
    assert len(running) == 1  # one below the bound: one more shard is mined
    running.clear()
    _fill(Pool(), running, 2, deque(), to_mine, mine_shard, set(range(_BACKLOG * 2)))
    assert len(running) == 1  # at the bound, only because nothing else runs
    _fill(Pool(), running, 2, deque(), to_mine, mine_shard, set(range(_BACKLOG * 2)))
    assert len(running) == 1
