"""RepairLLaMA IR4/OR2 examples: exact formats, selection of fixes, external fix sets."""

import json
from collections import Counter

import pytest

from repotune.build import run_build
from repotune.build.fixsets import load_external
from repotune.build.repair import (
    COMMENT_PREFIX,
    comment_prefix,
    fix_chunk,
    repair_examples,
    repair_prompt,
)
from repotune.config import BuildConfig, RepairTaskConfig
from repotune.errors import UserError
from repotune.records import Commit
from tests.support.gitrepo import git

PY_BUGGY = """def mean(values):
    # average of the values
    total = sum(values)

    return total / (len(values) - 1)
"""
PY_FIXED = PY_BUGGY.replace("(len(values) - 1)", "len(values)")

C_BUGGY = """int clamp(int x, int lo, int hi)
{
\tif (x < lo)
\t\treturn lo;
\treturn x < hi ? hi : x;
}
"""
C_FIXED = C_BUGGY.replace("x < hi ? hi : x", "x > hi ? hi : x")


def _examples(path, before, after, cfg=None, message="Fix it"):
    (commit,) = load_external([_jsonl(path, before, after)])
    commit.message = message
    dropped = Counter()
    rows = list(repair_examples(commit, cfg or RepairTaskConfig(), dropped, source="history"))
    return rows, dropped


_TMP = {}


def _jsonl(path, before, after):
    import tempfile
    from pathlib import Path

    folder = _TMP.setdefault("dir", Path(tempfile.mkdtemp()))
    f = folder / f"{len(list(folder.iterdir()))}.jsonl"
    f.write_text(json.dumps({"path": path, "before": before, "after": after}) + "\n")
    return str(f)


def test_python_ir4_and_or2_exact():
    (ex,), _ = _examples("stats/mean.py", PY_BUGGY, PY_FIXED)
    # the comment and the blank line are stripped first, as RepairLLaMA does
    assert ex["prompt"] == (
        "def mean(values):\n"
        "    total = sum(values)\n"
        "# buggy code\n"
        "#     return total / (len(values) - 1)\n"
        "    <FILL_ME>\n"
    )
    assert ex["completion"] == "    return total / len(values)\n"
    assert ex["task"] == "repair" and ex["meta"]["function"] == "mean"
    assert ex["meta"]["bug_lines"] == [2, 2] and ex["meta"]["language"] == "python"


def test_c_ir4_and_or2_exact():
    (ex,), _ = _examples("src/clamp.c", C_BUGGY, C_FIXED)
    assert ex["prompt"] == (
        "int clamp(int x, int lo, int hi)\n"
        "{\n"
        "\tif (x < lo)\n"
        "\t\treturn lo;\n"
        "// buggy code\n"
        "// \treturn x < hi ? hi : x;\n"
        "\t<FILL_ME>\n"
        "}\n"
    )
    assert ex["completion"] == "\treturn x > hi ? hi : x;\n"


def test_repair_prompt_insertion_point_and_comment_syntax():
    lines = ["def f(x):", "    if x is None:", "        return 0", "    return x"]
    assert repair_prompt(lines, 1, 0, "python") == (
        "def f(x):\n# buggy code\n    <FILL_ME>\n"
        "    if x is None:\n        return 0\n    return x\n"
    )
    assert repair_prompt(["a", "b"], 0, 1, "sql").startswith("-- buggy code\n-- a\n-- b\n")
    assert COMMENT_PREFIX["rust"] == "//" and comment_prefix("shell") == "#"
    assert comment_prefix(None) == "//" and comment_prefix("css") == "//"
    with pytest.raises(ValueError):
        repair_prompt(lines, 2, 4, "python")


def test_keeping_comments_and_several_hunks():
    buggy = ["def f(a):", "    x = a + 1", "    y = 2", "    z = 3", "    return x - y"]
    fixed = ["def f(a):", "    x = a - 1", "    y = 2", "    z = 3", "    return x + y"]
    assert fix_chunk(buggy, fixed) == "several_hunks"
    chunk = fix_chunk(buggy, fixed, multi_hunk=True)
    assert (chunk.first, chunk.last) == (1, 4)  # first to last changed line
    assert chunk.fixed == fixed[1:5]
    commented = ["def f():", "    # old note", "    return 1"]
    assert fix_chunk(
        commented, ["def f():", "    # new note", "    return 1"], drop=({1}, {1})
    ) == ("comment_or_blank_change")


def test_selection_by_message_and_by_number_of_functions():
    _, dropped = _examples("m.py", PY_BUGGY, PY_FIXED, message="Refactor the mean")
    assert dropped == {"not_bugfix": 1}
    rows, _ = _examples(
        "m.py", PY_BUGGY, PY_FIXED, RepairTaskConfig(commits="all"), message="Refactor the mean"
    )
    assert len(rows) == 1
    two = PY_BUGGY + "\n\ndef g():\n    return 1\n"
    _, dropped = _examples("m.py", two, PY_FIXED + "\n\ndef g():\n    return 2\n")
    assert dropped == {"several_functions": 1}
    _, dropped = _examples("m.py", "import os\n" + PY_BUGGY, "import sys\n" + PY_FIXED)
    assert dropped == {"change_outside_function": 1}


def test_token_caps_drop_long_examples():
    (commit,) = load_external([_jsonl("m.py", PY_BUGGY, PY_FIXED)])
    dropped = Counter()
    rows = list(repair_examples(commit, RepairTaskConfig(), dropped, lambda p, c: len(p) < 20))
    assert rows == [] and dropped == {"over_token_cap": 1}


def test_external_jsonl_with_diff_and_diff_folders(tmp_path):
    diff = "@@ -5 +5 @@\n-\treturn x < hi ? hi : x;\n+\treturn x > hi ? hi : x;\n"
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_text(json.dumps({"path": "a.c", "before": C_BUGGY, "diff": diff}) + "\n")
    (c1,) = load_external([str(fixes)])
    assert c1.files[0].after == C_FIXED
    bug = tmp_path / "bugs" / "b1"
    (bug / "src").mkdir(parents=True)
    (bug / "src" / "clamp.c").write_text(C_BUGGY)
    (bug / "fix.patch").write_text(
        "--- a/src/clamp.c\n+++ b/src/clamp.c\n@@ -4,3 +4,3 @@\n \t\treturn lo;\n"
        "-\treturn x < hi ? hi : x;\n+\treturn x > hi ? hi : x;\n }\n"
    )
    (c2,) = load_external([str(tmp_path / "bugs")])
    assert c2.files[0].path == "src/clamp.c" and c2.files[0].after == C_FIXED
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.c", "before": "x"}\n{not json\n')
    with pytest.raises(UserError, match=r"bad.jsonl:1: needs 'after'"):
        load_external([str(bad)])
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"path": "a.c", "before": "a\n", "diff": "@@ -1 +1 @@\n-b\n+c\n"}))
    with pytest.raises(UserError, match="does not apply at line 1"):
        load_external([str(wrong)])


def test_build_from_history_splits_fixes_by_time(tmp_path):
    from repotune.config import MineConfig
    from repotune.mine import run_mine

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    funcs = [f"def f{i}(x):\n    return x + {i}\n" for i in range(6)]
    (repo / "calc.py").write_text("\n\n".join(funcs))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Add calc")
    for c in range(6):
        funcs[c] = f"def f{c}(x):\n    return x - {c}\n"
        (repo / "calc.py").write_text("\n\n".join(funcs))
        git(repo, "add", "-A")
        msg = f"Fix the sign in f{c}" if c % 2 == 0 else f"Tidy f{c}"
        git(repo, "commit", "-q", "-m", msg, time=1_700_000_000 + 60 * (c + 1))
    run = tmp_path / "run"
    run_mine(repo, run, MineConfig(dedup="off"))
    caps = {"max_input_tokens": None, "max_output_tokens": None}  # no tokenizer needed
    cfg = BuildConfig(tasks=["repair"], repair=RepairTaskConfig(**caps))
    stats = run_build(run, cfg)
    assert stats["repair"]["examples"] == {"train": 1, "val": 1, "test": 1}
    assert stats["repair"]["dropped"] == {"not_bugfix": 4}  # 3 tidy commits + the first
    rows = {
        s: [json.loads(x) for x in (run / "datasets" / "repair" / f"{s}.jsonl").open()]
        for s in ("train", "val", "test")
    }
    assert rows["test"][0]["meta"]["function"] == "f4"
    assert rows["test"][0]["completion"] == "    return x - 4\n"
    assert rows["train"][0]["meta"]["time"] < rows["test"][0]["meta"]["time"]


def test_commit_record_roundtrip_keeps_language():
    (commit,) = load_external([_jsonl("lib/x.rs", "fn a() {}\n", "fn a() { }\n")])
    assert isinstance(commit, Commit) and commit.files[0].language == "rust"
