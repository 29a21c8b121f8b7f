"""The `commit` task's other representations: changed functions, token streams, wrapped."""

from repotune.build.changes import change_runs
from repotune.build.commit import commit_examples
from repotune.config import BuildConfig, CommitTaskConfig
from repotune.records import Commit, FileChange, Hunk

BEFORE = "def f(x):\n    y = x + 1\n    return y\n\n\ndef g():\n    return 0\n"
AFTER = "def f(x):\n    y = x + 2\n    return y\n\n\ndef g():\n    return 0\n"
HUNK = Hunk(
    1,
    3,
    1,
    3,
    "@@ -1,3 +1,3 @@",
    ["def f(x):", "-    y = x + 1", "+    y = x + 2", "     return y"],
)


def _commit(before=BEFORE, after=AFTER, hunks=(HUNK,)):
    change = FileChange("m.py", "m.py", "modified", "python", before, after, 1, 1, list(hunks))
    return Commit("ab" * 20, [], 1, 2, "a", "Bump the offset of f.", [change])


def _cfg(**commit):
    return BuildConfig(commit=CommitTaskConfig(**commit))


def test_functions_representation_is_function_before_to_after():
    (ex,) = commit_examples(_commit(), _cfg(representation="functions"))
    assert ex["prompt"].endswith(
        "### File: m.py\n### Function before:\ndef f(x):\n    y = x + 1\n    return y\n"
        "### Function after:\n"
    )
    assert ex["completion"] == "def f(x):\n    y = x + 2\n    return y\n"
    assert ex["id"].endswith("m.py:f@1") and ex["meta"]["unit"] == "f@1"


def test_tokens_representation_marks_each_changed_token():
    (ex,) = commit_examples(_commit(), _cfg(representation="tokens", token_context=1))
    assert "### Tokens before:\nbegin_function_definition\nkeyword|def\nname|f\n" in ex["prompt"]
    assert ex["completion"] == " operator|+\n-literal|1\n+literal|2\n keyword|return\n"


def test_natural_language_wrapper():
    (ex,) = commit_examples(
        _commit(), _cfg(representation="tokens", natural_language=True, token_context=0)
    )
    assert ex["prompt"].startswith(
        "There is an issue in the following code. It relates to: Bump the offset of f. "
        "Please fix this issue.\n\n### File: m.py\nbegin_function_definition\n"
    )
    assert ex["completion"] == (
        "I corrected the issue by changing the following tokens:\n-literal|1\n+literal|2\n"
    )
    (diff,) = commit_examples(_commit(), _cfg(natural_language=True))
    assert diff["completion"].startswith("I corrected the issue by changing the following lines:")


def test_default_diff_representation_unchanged():
    (ex,) = commit_examples(_commit(), BuildConfig())
    assert ex["completion"] == "def f(x):\n-    y = x + 1\n+    y = x + 2\n     return y\n"
    assert ex["meta"]["hunk"] == 0 and ex["id"] == f"{'ab' * 6}:m.py:0"


def test_change_runs_split_a_hunk_at_context_lines():
    hunk = Hunk(10, 6, 10, 6, "@@", [" a", "-b", "+B", " c", " d", "-e", "+E", " f"])
    runs = change_runs(hunk)
    assert [(r.old_first, r.old_count, r.new_first, r.new_count) for r in runs] == [
        (10, 1, 10, 1),
        (13, 1, 13, 1),
    ]
    insert = Hunk(3, 0, 4, 2, "@@ -3,0 +4,2 @@", ["+x", "+y"])
    (run,) = change_runs(insert)
    assert (run.old_first, run.old_count, run.new_first, run.new_count) == (3, 0, 3, 2)
