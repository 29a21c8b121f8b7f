"""The `complete` task built from a small repository's history: time split, dedup of train
targets against held-out ones, nothing written after the cutoff in train rows or in the
retrieval snippets, the shape of line and block targets, token caps, and `loss: all`."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter

import pytest

from repotune.build import run_build
from repotune.config import BuildConfig, CompleteTaskConfig, MineConfig
from repotune.mine import run_mine
from tests.support.gitrepo import git

T0 = 1_700_000_000
TOKEN = re.compile(r"\w+|[^\w\s]")
MARK_NEW = "UNIQUE_AFTER_CUTOFF_NEW"  # in a file the first held-out commit creates
MARK_OLD = "UNIQUE_AFTER_CUTOFF_OLD"  # added to an existing file by that commit
N_COMMITS = 16  # the root commit and 15 more: 12 train, 2 val, 2 test
FIRST_HELD_OUT = 12
PREFIX, SUFFIX, MIDDLE = "<fim_prefix>", "<fim_suffix>", "<fim_middle>"  # the tiny model's

START = {
    "geometry.py": "import math\n\n\ndef distance_k00(ax, ay, bx, by):\n"
    "    dx_k00 = bx - ax\n    dy_k00 = by - ay\n    return math.hypot(dx_k00, dy_k00)\n",
    "store.py": "class Store:\n    def __init__(self):\n        self.items_k00 = {}\n\n"
    "    def put(self, key, value):\n        self.items_k00[key] = value\n",
    "text_utils.py": "def words_k00(text):\n    parts_k00 = text.split()\n"
    '    return [p.strip(".,") for p in parts_k00]\n',
    "main.py": "from store import Store\n\n\ndef main():\n    store = Store()\n"
    '    store.put("a", 1)\n',
}
ROTATION = ("geometry.py", "store.py", "text_utils.py")


def _step(n: int) -> str:
    t = f"k{n:02d}"
    body = (
        f"\n\ndef step_{t}(values, factor):\n"
        f"    total_{t} = sum(v * factor for v in values)\n"
        f"    if total_{t} > {n}:\n"
        f"        return total_{t} - {n}\n"
    )
    if n == 5:  # a line of more than 50 code tokens
        body += f"    table_{t} = [{', '.join(str(i) for i in range(40))}]\n"
    return body + f"    return round(total_{t} / {n + 1}, 3)\n"


def _area(n: int) -> str:
    """Test commits' code: its words first appear in the late file (BM25 would find it)."""
    t = f"k{n:02d}"
    return (
        f"\n\ndef area_{t}(polygon_points, scale):\n"
        f"    pairs_{t} = zip(polygon_points, polygon_points[1:])\n"
        f"    twice_{t} = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairs_{t})\n"
        f"    return abs(twice_{t}) * scale / 2\n"
    )


LATE = (
    f'{MARK_NEW} = "late"\n\n\ndef perimeter_k12(polygon_points, scale):\n'
    "    pairs_k12 = zip(polygon_points, polygon_points[1:])\n"
    "    twice_k12 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairs_k12)\n"
    "    return scale * sum(math.dist(a, b) for a, b in pairs_k12) + twice_k12\n"
)


def make_repo(repo):
    """Four Python files, then one commit an hour, each adding code tagged `kNN` by its
    number; commit 2 and the last one add the same line `dup_marker()` to main.py."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    files = dict(START)
    for n in range(N_COMMITS):
        if n == 0:
            pass
        elif n == FIRST_HELD_OUT:
            files["late_k12.py"] = LATE
            files["store.py"] += (
                f"\n\ndef flush_k12(store):\n    {MARK_OLD} = list(store.items_k00)\n"
                f"    return sorted({MARK_OLD})\n"
            )
        elif n >= 14:
            files[ROTATION[n % 3]] += _area(n)
            if n == 14:
                files["store.py"] += "\n\ndef size_k14(store):\n    return len(store.items_k00)\n"
        else:
            files[ROTATION[n % 3]] += _step(n)
        if n in (2, N_COMMITS - 1):
            files["main.py"] += "\ndup_marker()\n"
        for path, text in files.items():
            (repo / path).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"Change {n}: more code", time=T0 + 3600 * n)
    return repo


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    root = tmp_path_factory.mktemp("complete")
    repo = make_repo(root / "repo")
    run_mine(repo, root / "mined", MineConfig(dedup="off", max_changed_lines=None))
    return root


def _build(mined, tmp_path, tiny_model, name="run", **complete):
    run = tmp_path / name
    shutil.copytree(mined / "mined", run)
    cfg = BuildConfig(tasks=["complete"], complete=CompleteTaskConfig(**complete))
    stats = run_build(run, cfg, model=tiny_model, say=lambda _: None)
    return run, stats["complete"]


def _rows(run):
    return {
        split: [json.loads(line) for line in open(run / "datasets" / "complete" / f"{split}.jsonl")]
        for split in ("train", "val", "test")
    }


@pytest.fixture(scope="module")
def built(mined, tiny_model, tmp_path_factory):
    """The default build (block_rate 0.25, retrieval on)."""
    run, stats = _build(mined, tmp_path_factory.mktemp("default"), tiny_model)
    return run, stats, _rows(run)


def _sha(repo, n: int) -> str:
    """The sha of commit number n (oldest first)."""
    return git(repo, "rev-list", "--reverse", "HEAD").split()[n]


def _after(repo, row) -> str:
    return git(repo, "show", f"{row['meta']['sha']}:{row['meta']['path']}")


def _line(repo, row) -> str:
    """The first line of the row's target, whole."""
    return _after(repo, row).split("\n")[row["meta"]["lines"][0] - 1]


def _added(repo, row) -> set[int]:
    """1-based numbers of the lines the row's commit added to its file (git's own diff)."""
    diff = git(repo, "show", "--format=", "-U0", row["meta"]["sha"], "--", row["meta"]["path"])
    out: set[int] = set()
    for m in re.finditer(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", diff, re.M):
        start, count = int(m[1]), int(m[2] if m[2] is not None else 1)
        out.update(range(start, start + count))
    return out


def _key(text: str) -> str:
    return " ".join(text.split())


def _psm(prompt: str) -> tuple[str, str]:
    """(prefix, suffix) of a PSM prompt in the tiny model's sentinels."""
    assert prompt.startswith(PREFIX) and prompt.endswith(MIDDLE), prompt[:80]
    before, after = prompt[len(PREFIX) : -len(MIDDLE)].split(SUFFIX)
    return before, after


def _all(rows):
    return [r for split in ("train", "val", "test") for r in rows[split]]


def test_split_by_time_and_commits(built, mined):
    run, stats, rows = built
    assert all(rows.values()), {k: len(v) for k, v in rows.items()}
    for split, part in rows.items():
        assert all(r["task"] == "complete" and r["meta"]["split"] == split for r in part)
    train = max(r["meta"]["time"] for r in rows["train"])
    val_lo = min(r["meta"]["time"] for r in rows["val"])
    val_hi = max(r["meta"]["time"] for r in rows["val"])
    test = min(r["meta"]["time"] for r in rows["test"])
    assert train < val_lo <= val_hi < test
    assert stats["commits"] == {"train": 12, "val": 2, "test": 2}
    held = {r["meta"]["sha"] for r in rows["val"] + rows["test"]}
    assert held == {_sha(mined / "repo", n) for n in range(FIRST_HELD_OUT, N_COMMITS)}
    assert stats["form"] == "fim (starcoder)"  # the tiny model's tokenizer has FIM tokens
    assert all(r["meta"]["fim"] == "psm" for r in _all(rows))


def test_train_targets_that_are_held_out_are_dropped(built, mined):
    from repotune.build.complete import complete_examples
    from repotune.commits import read_commits
    from repotune.models.fim import FAMILIES

    run, stats, rows = built
    train_keys = {_key(r["completion"]) for r in rows["train"]}
    for split in ("val", "test"):
        assert not {_key(r["completion"]) for r in rows[split]} & train_keys, split
    # the duplicate made on purpose: commit 2's `dup_marker()` line is a target before the
    # split, a test target after it, and gone from train
    commits = {c.sha: c for c in read_commits(run / "commits.parquet")}
    cfg = BuildConfig(tasks=["complete"])
    star = FAMILIES["starcoder"]
    early = list(complete_examples(commits[_sha(mined / "repo", 2)], cfg, Counter(), star, star))
    assert any(r["completion"] == "dup_marker()\n" for r in early)
    assert any(r["completion"] == "dup_marker()\n" for r in rows["test"])
    assert not any("dup_marker" in r["completion"] for r in rows["train"])
    # the count is every train-commit target that a held-out target repeats
    held = {_key(r["completion"]) for r in rows["val"] + rows["test"]}
    train_shas = {r["meta"]["sha"] for r in rows["train"]}
    expected = sum(
        _key(r["completion"]) in held
        for sha in train_shas
        for r in complete_examples(commits[sha], cfg, Counter(), star, star)
    )
    assert stats["dropped"]["train_target_also_held_out"] == expected >= 1


def test_no_text_after_the_cutoff_reaches_train_or_retrieval(built, mined):
    from repotune.code.tree import read_tree
    from repotune.infer.retrieval import Index, query_of, windows

    run, stats, rows = built
    repo = mined / "repo"
    later = [f"k{n:02d}" for n in range(FIRST_HELD_OUT, N_COMMITS)]
    later += [MARK_NEW, MARK_OLD, "polygon_points"]  # words first written after the cutoff
    for r in rows["train"]:
        text = r["prompt"] + r["completion"]
        assert not [w for w in later if w in text], r["id"]
    # the index is the tree of the newest commit before the first val/test commit
    cutoff = _sha(repo, FIRST_HELD_OUT - 1)
    assert stats["retrieval"]["tree"] == cutoff != git(repo, "rev-parse", "HEAD").strip()
    assert stats["retrieval"]["files"] == len(START)  # late_k12.py came after
    contexts = []
    for r in rows["test"]:
        rp = r["meta"]["retrieval_prompt"]
        before, after = _psm(r["prompt"])
        # the same prompt with the snippets put before its prefix
        assert rp.startswith(PREFIX) and rp.endswith(before + SUFFIX + after + MIDDLE)
        context = rp[len(PREFIX) : len(rp) - len(before + SUFFIX + after + MIDDLE)]
        contexts.append(context)
        for word in (MARK_NEW, MARK_OLD, "late_k12", "k12", "k13"):
            assert word not in context, (r["id"], word)
            if word in rp:
                assert word in r["prompt"]  # only the row's own file, as it is now
        assert not any(p.startswith("late_k12.py:") for p in r["meta"]["retrieved"])
    assert any(contexts) and any(MARK_OLD in r["prompt"] for r in rows["test"])
    # the check can fail: over the tree at HEAD, BM25 finds the late file for these rows
    head = read_tree(repo, "HEAD", include=[], exclude=[], languages=[], max_file_bytes=10**6)
    index = Index(windows([(f.path, f.text) for f in head.files]))
    found = [
        s.path
        for r in rows["test"]
        for s in index.search(query_of(_psm(r["prompt"])[0]), 3, r["prompt"])
    ]
    assert "late_k12.py" in found


def _check_target(repo, row, max_tokens=50):
    lines = _after(repo, row).split("\n")
    added = _added(repo, row)
    first, last = row["meta"]["lines"]
    target = row["completion"]
    assert target.endswith("\n") and set(range(first, last + 1)) <= added, row["id"]
    if row["meta"]["kind"] == "line":
        assert first == last
        line = lines[first - 1]
        assert line.endswith(target[:-1]) and "\n" not in target[:-1]
        assert 3 <= len(TOKEN.findall(target)) <= max_tokens, row["id"]
        col = len(line) - len(target) + 1
        assert col in {m.start() for m in TOKEN.finditer(line)}, row["id"]  # at a token
    else:
        assert row["meta"]["kind"] == "block" and 2 <= last - first + 1 <= 3, row["id"]
        assert target == "\n".join(lines[first - 1 : last]) + "\n"
        assert lines[first - 1].strip() and lines[last - 1].strip()
    return lines, first, last


def test_targets_are_added_lines_and_blocks(built, mined):
    run, stats, rows = built
    repo = mined / "repo"
    kinds = Counter()
    for r in _all(rows):
        _check_target(repo, r)
        kinds[r["meta"]["kind"]] += 1
        # prefix + target + suffix is the file as the commit left it
        before, after = _psm(r["prompt"])
        assert before + r["completion"] + after in _after(repo, r), r["id"]
    assert kinds["line"] and kinds["block"]


def test_block_rate_zero_and_one(mined, tiny_model, tmp_path):
    repo = mined / "repo"
    _build(mined, tmp_path, tiny_model, "none", block_rate=0.0, targets_per_file=10, max_tokens=4)
    none = _all(_rows(tmp_path / "none"))
    assert none and all(r["meta"]["kind"] == "line" for r in none)
    for r in none:
        _check_target(repo, r, max_tokens=4)
    # every line of 3+ tokens is a target now, the one of 80 code tokens too
    (long,) = [r for r in none if _line(repo, r).startswith("    table_k05 = [")]
    assert len(TOKEN.findall(_line(repo, long))) > 80
    assert sum(len(TOKEN.findall(_line(repo, r))) > 4 for r in none) > 10
    _build(mined, tmp_path, tiny_model, "all", block_rate=1.0, targets_per_file=2)
    every = _all(_rows(tmp_path / "all"))
    assert any(r["meta"]["kind"] == "block" for r in every)
    for r in every:
        _check_target(repo, r)
        if r["meta"]["kind"] == "line":  # only where no two added lines follow each other
            lines = _after(repo, r).split("\n")
            added = _added(repo, r)  # 1-based: line i is lines[i - 1]
            pairs = [
                i for i in added if i + 1 in added and lines[i - 1].strip() and lines[i].strip()
            ]
            assert not pairs, r["id"]


def test_prompt_tokens_are_capped(mined, tiny_model, tmp_path):
    from repotune.models.load import load_tokenizer

    tok = load_tokenizer(tiny_model)
    cap = 40
    run, _ = _build(mined, tmp_path, tiny_model, max_prompt_tokens=cap)
    rows = _all(_rows(run))
    count = [len(tok(r["prompt"], add_special_tokens=False)["input_ids"]) for r in rows]
    assert max(count) <= cap
    trimmed = 0
    for r in rows:
        before, after = _psm(r["prompt"])
        text = _after(mined / "repo", r)
        assert before + r["completion"] + after in text
        trimmed += not text.startswith(before + r["completion"])
    assert trimmed  # the cap bit: some prompts lost the start of their file


def test_left_to_right_rows_are_a_prefix_of_the_file(built, mined):
    from repotune.build.complete import complete_examples
    from repotune.commits import read_commits

    run, _, _ = built
    repo = mined / "repo"
    cfg = BuildConfig(tasks=["complete"], complete=CompleteTaskConfig(block_rate=0.5))
    seen = Counter()
    for commit in read_commits(run / "commits.parquet"):
        for r in complete_examples(commit, cfg, Counter(), None, None):
            assert r["meta"]["fim"] == "l2r" and "train_prompt" not in r["meta"]
            text = _after(repo, r)
            assert text.startswith(r["prompt"] + r["completion"]), r["id"]
            _check_target(repo, r)
            seen[r["meta"]["kind"]] += 1
    assert seen["line"] and seen["block"]


def test_loss_all_marks_rows_and_encode_masks_only_the_first_token(
    built, mined, tiny_model, tmp_path
):
    from repotune.models.load import load_tokenizer
    from repotune.train.data import encode

    tok = load_tokenizer(tiny_model)
    run, _ = _build(mined, tmp_path, tiny_model, loss="all")
    rows = _rows(run)["train"]
    assert rows and all(r["meta"]["loss"] == "all" for r in rows)
    for e in encode(rows, tok, 512):
        assert e["completion_mask"] == [0] + [1] * (len(e["input_ids"]) - 1)
    plain = built[2]["train"]
    assert all("loss" not in r["meta"] for r in plain)
    for r, e in zip(plain, encode(plain, tok, 512), strict=True):
        n_target = len(tok(r["completion"], add_special_tokens=False)["input_ids"]) + 1  # EOS
        assert sum(e["completion_mask"]) == n_target
        assert e["completion_mask"] == [0] * (len(e["input_ids"]) - n_target) + [1] * n_target


def test_holes_give_no_block_at_block_rate_zero():
    import random

    from repotune.build.complete import holes

    lines = ["try:", "    go()", "except:", "    pass", ""]  # short lines, one of 3 tokens
    added = [0, 1, 2, 3]

    def kinds(**kw):
        cc = CompleteTaskConfig(targets_per_file=4, **kw)
        return [(h.kind, h.first, h.last) for h in holes(lines, added, cc, random.Random(0))]

    assert kinds(block_rate=0.0) == [("line", 1, 1)]  # `go()`: the one line of 3 tokens
    assert kinds(block_rate=0.0, min_tokens=4) == []  # no line target and, asked, no block
    # otherwise a block stands in where no line is long enough
    assert kinds(block_rate=0.25, min_tokens=4) and {
        k for k, _, _ in kinds(block_rate=0.25, min_tokens=4)
    } == {"block"}
    assert {k for k, _, _ in kinds(block_rate=1.0)} == {"block"}
