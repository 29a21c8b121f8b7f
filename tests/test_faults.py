"""kill -9 at seeded points of `repotune mine`, `build`, `train` and `evaluate`: the same command
run again finishes with what an uninterrupted run writes (byte-identical data files; training
resumes from the last checkpoint and takes each step once), and no reader ever finds a
half-written file under its final name.

Commands run as the real CLI in forked children of one warm interpreter, killed by an audit
hook just before their Nth file-system change (see support/faultcli.py), so every point is exact and
repeatable; one case also kills from outside at a seeded time.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.faultcli import describe
from tests.support.gitrepo import make_history

SEED = 8
MAX_STEPS = 3
STAGES = ("mine", "build", "train", "evaluate")
# Data files every run writes the same: after a kill they are absent or whole, after the
# re-run byte-identical to the uninterrupted run's.
DATA = (
    "commits.parquet",
    "datasets/commit/train.jsonl", "datasets/commit/val.jsonl", "datasets/commit/test.jsonl",
    "datasets/fim/train.jsonl", "datasets/fim/val.jsonl", "datasets/fim/test.jsonl",
    "datasets/stats.json",
    "eval/commit/base.jsonl", "eval/commit/tuned.jsonl", "eval/summary.json",
)  # fmt: skip
TIMINGS = {"seconds", "commits_per_second", "timings", "workers"}  # the rest of mine_stats.json
INTERNAL = ("mine-shards/", "train/checkpoints/")  # resumable state, checked by its own rules


def _sets(model: str) -> dict[str, list[str]]:
    train = [
        f"train.max_steps={MAX_STEPS}", "train.save_steps=1", "train.save_total_limit=2",
        "train.per_device_train_batch_size=2", "train.max_length=48", "train.logging_steps=1",
        "train.learning_rate=5e-3", "train.report_to=[]", "train.progress=false",
    ]  # fmt: skip
    return {
        "common": [f"model.name={model}", "model.dtype=float32"],
        "mine": ["mine.workers=1", "mine.shard_size=4", "mine.max_changed_lines=null"],
        "build": ["build.tasks=[commit,fim]"],
        "train": ["build.tasks=[commit,fim]", *train],
        # the FIM test split of a one-file repository is empty: evaluate the commit task
        "evaluate": [
            "evaluate.tasks=[commit]",
            "train.max_length=48",
            "evaluate.max_examples=3",
            "evaluate.generate_examples=2",
            "evaluate.max_new_tokens=6",
        ],
    }


@dataclass
class Reference:
    """An uninterrupted run: the run folder before and after each stage, and its changes."""

    repo: Path
    sets: dict[str, list[str]]
    before: dict[str, Path] = field(default_factory=dict)
    after: dict[str, Path] = field(default_factory=dict)
    events: dict[str, list[dict]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def args(self, stage: str, run: Path, *extra: str) -> list[str]:
        args = [stage, str(self.repo)] if stage == "mine" else [stage]
        for s in [*self.sets["common"], *self.sets[stage], *extra]:
            args += ["--set", s]
        return [*args, "--out", str(run)]


@pytest.fixture(scope="module")
def cli(warm_cli):
    return warm_cli


@pytest.fixture(scope="module")
def ref(cli, tiny_model, tmp_path_factory) -> Reference:
    base = tmp_path_factory.mktemp("reference")
    ref = Reference(make_history(base / "repo", n_commits=26), _sets(tiny_model))
    run = base / "run"
    for stage in STAGES:
        ref.before[stage] = _copy(run, base / f"before-{stage}")
        start = time.monotonic()
        res = cli.run(*ref.args(stage, run), root=run)
        assert res.rc == 0, res.output[-3000:]
        ref.seconds[stage] = time.monotonic() - start
        ref.events[stage] = res.events
        ref.after[stage] = _copy(run, base / f"after-{stage}")
    return ref


def _copy(run: Path, dest: Path) -> Path:
    if run.exists():
        shutil.copytree(run, dest, symlinks=True)
    else:
        dest.mkdir()
    return dest


def _points(ref: Reference, stage: str, k: int) -> list[int]:
    """k seeded points among the stage's changes in its main process."""
    main = ref.events[stage][0]["pid"]
    n = sum(e["pid"] == main for e in ref.events[stage])
    return sorted(random.Random(f"{SEED}:{stage}").sample(range(1, n + 1), k))


# -- what a reader may find ----------------------------------------------------------------
def _is_temp(rel: str) -> bool:
    return any(part.startswith(".") and part.endswith(".tmp") for part in rel.split("/"))


def _files(run: Path) -> dict[str, Path]:
    return {p.relative_to(run).as_posix(): p for p in run.rglob("*") if p.is_file()}


def _check_whole(run: Path, ref: Reference) -> None:
    """After a kill: every output under its final name is complete (a data file is the
    uninterrupted run's, byte for byte; JSON parses; an adapter has all its files)."""
    done = ref.after["evaluate"]
    for rel, path in _files(run).items():
        if _is_temp(rel) or rel.startswith(INTERNAL):
            continue
        if rel in DATA:
            assert path.read_bytes() == (done / rel).read_bytes(), rel
        elif rel.endswith(".json"):
            json.loads(path.read_text())
    if (run / "adapter").exists():
        _check_adapter(run / "adapter", done / "adapter")


def _check_adapter(adapter: Path, reference: Path) -> None:
    from safetensors import safe_open

    # README.md is the model card, documentation the stages refresh after the adapter is whole
    files = lambda d: sorted(p.name for p in d.iterdir() if p.name != "README.md")  # noqa: E731
    assert files(adapter) == files(reference)
    with (
        safe_open(adapter / "adapter_model.safetensors", "pt") as got,
        safe_open(reference / "adapter_model.safetensors", "pt") as want,
    ):
        assert sorted(got.keys()) == sorted(want.keys())
    json.loads((adapter / "adapter_config.json").read_text())


def _check_finished(run: Path, ref: Reference, stage: str) -> None:
    """After the re-run: the uninterrupted run's data files, no temp file left behind."""
    want = ref.after[stage]
    for rel in DATA:
        if (want / rel).exists():
            assert (run / rel).read_bytes() == (want / rel).read_bytes(), rel
    leftovers = [rel for rel in _files(run) if _is_temp(rel)]
    leftovers += [p.name for p in run.glob(".*.tmp") if p.is_dir()]  # .adapter.tmp, ...
    assert not leftovers, leftovers
    assert not (run / "mine-shards").exists()
    if stage == "mine":
        stats, want_stats = (json.loads((d / "mine_stats.json").read_text()) for d in (run, want))
        assert {k: v for k, v in stats.items() if k not in TIMINGS} == {
            k: v for k, v in want_stats.items() if k not in TIMINGS
        }


def _kill_and_rerun(cli, ref: Reference, stage: str, run: Path, **kill) -> Path | None:
    """Kill the stage, check what a reader finds, run it again, check the result; returns
    the checkpoint the re-run should have resumed from."""
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(ref.before[stage], run, symlinks=True)
    args = ref.args(stage, run)
    killed = cli.run(*args, root=run, **kill)
    assert killed.killed, (kill, killed.rc, killed.output[-3000:])
    _check_whole(run, ref)
    last = _last_checkpoint(run)
    again = cli.run(*args, root=run)
    assert again.rc == 0, again.output[-3000:]
    _check_finished(run, ref, stage)
    return last


# -- mine, build, evaluate: byte-identical outputs ------------------------------------------
@pytest.mark.parametrize("stage", ["mine", "build", "evaluate"])
def test_kill_9_then_rerun_gives_the_same_files(cli, ref, tmp_path, stage):
    for point in _points(ref, stage, 3 if stage == "evaluate" else 4):
        _kill_and_rerun(cli, ref, stage, tmp_path / f"{stage}-{point}", kill_at=point)


def test_kill_9_from_outside_while_workers_mine(cli, ref, tmp_path):
    """Parallel workers, killed with the whole process group at seeded times."""
    run = tmp_path / "run"
    args = ref.args("mine", run, "mine.workers=2")
    for delay in random.Random(SEED).sample(range(10, 90), 2):
        cli.start(*args, root=run)
        time.sleep(ref.seconds["mine"] * delay / 100)
        cli.kill()
        cli.wait()
        _check_whole(run, ref)
    assert cli.run(*args, root=run).rc == 0
    _check_finished(run, ref, "mine")


def test_workers_end_with_a_killed_parent(cli, ref, tmp_path):
    """The OOM killer (or kill -9 PID) ends the main process only, here while a worker starts
    its first shard: the workers end with it, rather than wait for work forever."""
    run = tmp_path / "run"
    args = ref.args("mine", run, "mine.workers=2")
    killed = cli.run(*args, root=run, kill_on="arrow", main_only=True)
    assert killed.killed
    deadline = time.monotonic() + 10
    try:
        while _running_in_group(cli.pid):
            assert time.monotonic() < deadline, "a mining worker outlived its parent"
            time.sleep(0.05)
    finally:
        cli.kill()
    _check_whole(run, ref)
    assert cli.run(*args, root=run).rc == 0
    _check_finished(run, ref, "mine")


def _running_in_group(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting for a reaper do not count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


# -- train: resumes from the last whole checkpoint -------------------------------------------
def _last_checkpoint(run: Path) -> Path | None:
    """The newest checkpoint whose trainer_state.json is whole (read here, not by repotune)."""
    found = []
    for folder in (run / "train" / "checkpoints").glob("checkpoint-*"):
        try:
            state = json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        found.append((state["global_step"], folder))
    return max(found)[1] if found else None


def _check_resumed(run: Path, resumed_from: Path | None) -> None:
    summary = json.loads((run / "train" / "summary.json").read_text())
    assert summary["resumed_from"] == (str(resumed_from) if resumed_from else None)
    assert summary["steps"] == MAX_STEPS and not summary["interrupted"]
    history = json.loads((run / "train" / "log_history.json").read_text())
    steps = [h["step"] for h in history if "learning_rate" in h]
    assert steps == list(range(1, MAX_STEPS + 1))  # each step once: none redone, none lost


def test_kill_9_in_training_resumes_from_the_last_checkpoint(cli, ref, tmp_path):
    points = [("seeded", {"kill_at": p}) for p in _points(ref, "train", 2)]
    # After the last checkpoint, writing the adapter and the logs: nothing is left to train.
    points.append(("last", {"kill_on": "log_history.json"}))
    for name, kill in points:
        run = tmp_path / name / str(kill.get("kill_at", 0))
        last = _kill_and_rerun(cli, ref, "train", run, **kill)
        _check_resumed(run, last)
        _check_adapter(run / "adapter", ref.after["train"] / "adapter")
        # Optimizer, schedule, RNG and data order resume exactly: the very same weights.
        weights = "adapter/adapter_model.safetensors"
        assert (run / weights).read_bytes() == (ref.after["train"] / weights).read_bytes()


def test_kill_9_while_replacing_an_adapter(cli, ref, tmp_path):
    """A re-run of a finished training writes its adapter again: killed at seeded steps of
    the swap, RUN/adapter is the old one or the new one, whole (or absent), never half gone."""
    run = tmp_path / "run"
    shutil.copytree(ref.before["train"], run)
    args = ref.args("train", run)
    assert cli.run(*args, root=run).rc == 0
    adapter = _copy(run / "adapter", tmp_path / "adapter")
    probe = cli.run(*args, root=run)  # nothing left to train: the adapter is written again
    swap = [e["n"] for e in probe.events if "RUN/adapter" in describe(e) or ".old" in describe(e)]
    for point in sorted(random.Random(SEED).sample(swap, min(3, len(swap)))):
        for old in [run / "adapter", *run.glob(".adapter*")]:
            shutil.rmtree(old)
        shutil.copytree(adapter, run / "adapter")  # the same state before each kill
        assert cli.run(*args, root=run, kill_at=point).killed
        if (run / "adapter").exists():
            _check_adapter(run / "adapter", ref.after["train"] / "adapter")
    assert cli.run(*args, root=run).rc == 0
    _check_resumed(run, _last_checkpoint(run))


def test_half_written_trainer_state_is_not_resumed(cli, ref, tmp_path):
    """A kill while the Trainer writes trainer_state.json (it writes it in place, last):
    that checkpoint is dropped and the one before it resumed."""
    run = tmp_path / "run"
    shutil.copytree(ref.before["train"], run)
    args = ref.args("train", run)
    killed = cli.run(*args, root=run, kill_on="checkpoint-3/trainer_state.json")
    assert killed.killed
    state = run / "train" / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    state.write_text(json.dumps({"global_step": 3, "log_history": []})[:20])
    again = cli.run(*args, root=run)
    assert again.rc == 0, again.output[-3000:]
    _check_resumed(run, run / "train" / "checkpoints" / "checkpoint-2")


# -- writers --------------------------------------------------------------------------------
def test_outputs_are_written_under_temp_names_then_renamed(ref):
    """No stage opens an output under its final name for writing: each is written to a temp
    file (`.NAME.PID.xxx.tmp`) or folder and renamed, so a reader finds it whole or not at all.
    The Trainer's checkpoint folders are exempt: a checkpoint counts once its state is whole."""
    for stage in STAGES:
        for e in ref.events[stage]:
            paths = [p.removeprefix("RUN/") for p in e["paths"] if p]
            if any(p.startswith("train/checkpoints/checkpoint-") for p in paths):
                continue
            if e["op"] == "open":
                assert _is_temp(paths[0]) or paths[0] == "train/checkpoints/README.md", e
            elif e["op"] == "os.rename" and not _is_temp(paths[1]):
                assert _is_temp(paths[0]), e  # published by a rename from a temp name
