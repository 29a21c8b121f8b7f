"""Near copies across repositories (issue 18): a vendored file with a local edit (its licence
header changed) is the same file for the time split, so it lands on one side only, while a
different file of the same name stays; mine.dedup decides which copies count."""

from __future__ import annotations

from pathlib import Path

import pytest

from repotune.build import run_build
from repotune.config import BuildConfig, MineConfig
from repotune.fsutil import read_jsonl
from repotune.mine.repos import Copies, drop_copies, mine_repos, specs_from_paths
from tests.mine.test_repos import make_repo

BODY = "".join(
    f"def near_marker_{i}(items):\n    return [x * {i} + {i * i} for x in items]\n"
    for i in range(10)
)
VENDORED = "# Copyright 2019 Upstream Ltd.\n" + BODY
PATCHED = "# Copyright 2024 Web Team, with local changes\n" + BODY  # one line differs
# Same name, different code: only the header and an import in common.
OTHER = "# Copyright 2019 Upstream Ltd.\nimport os\n" + "".join(
    f"def own_helper_{i}(path):\n    return os.path.join(path, 'part{i}')\n" for i in range(8)
)


def _row(repo: str, sha: str, t: int, path: str, text: str) -> dict:
    lines = ["+" + line for line in text.splitlines()]
    f = {"old_path": None, "new_path": path, "before": None, "after": text, "skip_reason": None,
         "hunks": [{"lines": lines}]}  # fmt: skip
    return {"sha": sha, "committer_time": t, "repo": repo, "files": [f]}


def _edit(row: dict, line: str, new: str) -> dict:
    """A change to the file `row` added: `line` replaced by `new`."""
    f = row["files"][0]
    after = f["after"].replace(line, new)
    hunk = {"lines": [" " + f["after"].splitlines()[0], "-" + line, "+" + new]}
    return {**row, "files": [{**f, "before": f["after"], "after": after, "hunks": [hunk]}]}


def test_near_copy_dropped_as_mine_dedup_says():
    rows = [
        _row("web", "2", 20, "third_party/listutil.py", PATCHED),  # the near copy, later
        _row("api", "1", 10, "vendor/listutil.py", VENDORED),
        _row("web", "3", 30, "util/listutil.py", OTHER),  # same name, other code
        _row("api", "4", 40, "lib/listutil.py", PATCHED),  # api again: not a cross copy
    ]
    kept, dropped = drop_copies(rows, Copies("near", 0.85))
    assert [r["sha"] for r in kept] == ["4", "3", "1"] and dropped == {"web": 1}
    assert drop_copies(rows) == (kept, dropped)  # near at 0.85 is mine.dedup's default
    # exact copies only: web's edited copy stays, and api's later one is a copy of it
    kept, dropped = drop_copies(rows, Copies("exact", 0.85))
    assert [r["sha"] for r in kept] == ["3", "2", "1"] and dropped == {"api": 1}
    twice = [rows[1], {**rows[1], "sha": "5", "repo": "web", "committer_time": 50}]
    assert len(drop_copies(twice, Copies("exact", 0.85))[0]) == 1
    assert len(drop_copies(twice, Copies("off", 0.85))[0]) == 2  # off: none dropped


def test_near_copy_needs_both_the_change_and_the_text_near():
    api = _row("api", "1", 10, "vendor/listutil.py", VENDORED)
    web = {**api, "repo": "web", "sha": "2", "committer_time": 20}  # an exact copy
    three, five = "    return [x * 3 + 9 for x in items]", "    return [x * 5 + 25 for x in items]"
    # each repository patches its copy: the texts are near, the changes differ
    api_fix = _edit({**api, "sha": "3", "committer_time": 30}, three, three + " if x")
    web_fix = _edit({**web, "sha": "4", "committer_time": 40}, five, five + " if x")
    # api's patch again in web, on a copy whose header differs: a near copy
    again = _edit({**web, "sha": "5", "committer_time": 50}, three, three + " if x")
    f = again["files"][0]
    again["files"] = [{**f, "after": f["after"].replace("2019 Upstream Ltd.", "2024 Web")}]
    kept, dropped = drop_copies([api, web, api_fix, web_fix, again])
    assert [r["sha"] for r in kept] == ["4", "3", "1"] and dropped == {"web": 2}


def test_refresh_checks_new_rows_against_old_near_copies():
    old = [_row("api", "1", 10, "vendor/listutil.py", VENDORED)]
    new = [_row("web", "2", 20, "third_party/listutil.py", PATCHED)]
    assert drop_copies(new, Copies("near", 0.85).remember(old))[1] == {"web": 1}
    assert drop_copies(new, Copies("exact", 0.85).remember(old))[1] == {}


def _repo(path: Path, offset: int, extra: dict[int, list[tuple[str, str]]]) -> Path:
    """15 commits an hour apart, interleaved with the other repository's by `offset`; after
    commit c, one more commit per (path, text) of extra[c]."""
    return make_repo(path, offset, extra=extra)


@pytest.mark.parametrize("dedup", ["near", "exact"])
def test_vendored_file_with_one_line_changed_lands_in_one_split(tmp_path, tiny_model, dedup):
    api = _repo(tmp_path / "api", 0, {1: [("vendor/listutil.py", VENDORED)]})
    web = _repo(tmp_path / "web", 1, {14: [("third_party/listutil.py", PATCHED),
                                           ("listutil.py", OTHER)]})  # fmt: skip
    out = tmp_path / "run"
    stats = mine_repos(specs_from_paths([api, web]), out, MineConfig(workers=1, dedup=dedup), str)
    run_build(out, BuildConfig(tasks=["commit"]), model=tiny_model, say=lambda _: None)

    where = {}
    for split in ("train", "val", "test"):
        for r in read_jsonl(out / "datasets" / "commit" / f"{split}.jsonl"):
            for marker in ("near_marker_3", "own_helper_3"):
                if marker in r["completion"]:
                    where.setdefault(marker, set()).add((split, r["meta"]["repo"]))
    assert where["own_helper_3"] == {("test", "web")}  # a different file of the same name
    if dedup == "near":
        assert where["near_marker_3"] == {("train", "api")}
        assert (
            stats["repos"]["web"]["cross_repo_copies"] == stats["dropped"]["cross_repo_copy"] == 1
        )
    else:  # exact copies only: the near copy leaks into web's test split
        assert where["near_marker_3"] == {("train", "api"), ("test", "web")}
        assert "cross_repo_copy" not in stats["dropped"]
