from repotune.build.commit import commit_examples
from repotune.config import BuildConfig
from repotune.records import Commit, FileChange, Hunk

BEFORE = "\n".join(f"line{i}" for i in range(1, 41)) + "\n"


def _commit(message="Fix the off-by-one in the loop", hunks=None, before=BEFORE):
    hunk = Hunk(
        old_start=20,
        old_lines=4,
        new_start=20,
        new_lines=4,
        header="@@ -20,4 +20,4 @@",
        lines=[" line20", " line21", "-line22", "+LINE22", " line23"],
    )
    change = FileChange(
        old_path="src/a.py",
        new_path="src/a.py",
        change_type="modified",
        language="python",
        before=before,
        after=None,
        added=1,
        deleted=1,
        hunks=hunks if hunks is not None else [hunk],
    )
    return Commit(
        sha="ab" * 20,
        parents=["cd" * 20],
        author_time=5,
        committer_time=6,
        author="x",
        message=message,
        files=[change],
    )


def test_prompt_has_message_path_and_context_and_completion_is_the_hunk():
    (ex,) = list(commit_examples(_commit(), BuildConfig(input_context=2)))
    assert ex["task"] == "commit"
    assert "Fix the off-by-one in the loop" in ex["prompt"]
    assert "src/a.py" in ex["prompt"]
    # old lines 20..23 plus two lines of context on each side
    assert "line18\nline19\nline20" in ex["prompt"]
    assert (
        "line25\n" in ex["prompt"] and "line26" not in ex["prompt"] and "line17" not in ex["prompt"]
    )
    assert ex["completion"] == " line20\n line21\n-line22\n+LINE22\n line23\n"
    assert ex["prompt"].endswith("### Diff:\n")
    assert ex["meta"]["sha"] == "ab" * 20 and ex["meta"]["time"] == 6


def test_caps_and_empty_messages_drop_examples():
    assert list(commit_examples(_commit(), BuildConfig(max_completion_chars=10))) == []
    assert list(commit_examples(_commit(message="  \n"), BuildConfig())) == []
    assert list(commit_examples(_commit(hunks=[]), BuildConfig())) == []


def test_signed_off_trailers_are_removed():
    msg = "Add retry\n\nSigned-off-by: A <a@b>"
    (ex,) = list(commit_examples(_commit(message=msg), BuildConfig()))
    assert "Signed-off-by" not in ex["prompt"]


def test_diff_context_cuts_unchanged_lines_at_the_ends_only():
    hunk = Hunk(
        old_start=20,
        old_lines=7,
        new_start=20,
        new_lines=7,
        header="@@ -20,7 +20,7 @@",
        lines=[" a", " b", "-c", "+C", " d", " e", "-f", "+F", " g", " h"],
    )
    commit = _commit(hunks=[hunk])

    def completion(context):
        cfg = BuildConfig.model_validate({"commit": {"diff_context": context}})
        (ex,) = list(commit_examples(commit, cfg))
        return ex["completion"]

    # unchanged lines between two changes stay: the completion is still one applicable hunk
    assert completion(0) == "-c\n+C\n d\n e\n-f\n+F\n"
    assert completion(1) == " b\n-c\n+C\n d\n e\n-f\n+F\n g\n"
    assert completion(None) == completion(5) == "\n".join(hunk.lines) + "\n"


def _regex(cfg=None, **kw):
    from repotune.build.commit import old_side
    from repotune.infer.grammar import diff_regex

    cfg = cfg or BuildConfig(input_context=0)
    (ex,) = list(commit_examples(_commit(**kw), cfg))
    return ex, diff_regex(old_side(ex["prompt"], cfg))


def test_diff_regex_pins_the_old_side_and_leaves_added_lines_free():
    import re

    ex, regex = _regex()
    ok = lambda text: re.fullmatch(regex, text) is not None  # noqa: E731
    assert ok(ex["completion"])
    assert ok(" line20\n-line21\n+x\n+y\n line22\n-line23\n+line23 = 1\n")
    assert ok("+first\n line20\n line21\n line22\n line23\n")  # unchanged: still a diff
    assert not ok(" line20\n line21\n-line2\n+LINE22\n line23\n")  # miscopied old line
    assert not ok(" line20\n line22\n+LINE22\n line23\n")  # an old line skipped
    assert not ok(" line20\n line21\n-line22\n+LINE22\n")  # stopped before the last old line
    assert not ok(" line20\n line21\n-line22\n+LINE22\n line23\n line24\n")  # past it
    assert not ok("line20\n line21\n-line22\n+LINE22\n line23\n")  # no prefix


def test_old_side_only_where_the_prompt_is_the_whole_old_side():
    from repotune.build.commit import old_side

    cut = BuildConfig(input_context=0, commit={"diff_context": 1})
    (ex,) = list(commit_examples(_commit(), cut))
    assert old_side(ex["prompt"], cut) is None  # the completion is a window of the code
    for cfg in (
        BuildConfig(input_context=2),
        BuildConfig(input_context=0, commit={"representation": "functions"}),
        BuildConfig(input_context=0, commit={"natural_language": True}),
    ):
        assert old_side(ex["prompt"], cfg) is None
    assert old_side("no template here", BuildConfig(input_context=0)) is None
    (ex,) = list(commit_examples(_commit(), BuildConfig(input_context=0)))
    lines = [f"line{i}" for i in range(20, 24)]
    assert old_side(ex["prompt"], BuildConfig(input_context=0)) == lines
    # build records where it sits, so evaluation needs neither the format nor the config
    a, b = ex["meta"]["old_side"]
    assert ex["prompt"][a:b].split("\n") == lines
    (windowed,) = list(commit_examples(_commit(), cut))
    assert "old_side" not in windowed["meta"]


def test_diff_regex_of_a_new_file_is_added_lines_only():
    import re

    hunk = Hunk(0, 0, 1, 2, "@@ -0,0 +1,2 @@", ["+a = 1", "+b = 2"])
    ex, regex = _regex(hunks=[hunk], before=None)
    assert "(new file)" in ex["prompt"]
    assert ex["meta"]["old_side"] == [0, 0]  # an empty old side
    assert re.fullmatch(regex, ex["completion"])
    assert not re.fullmatch(regex, " a = 1\n")
