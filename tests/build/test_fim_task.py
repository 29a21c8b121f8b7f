"""FIM examples cut on syntax boundaries, and the current tree they are cut from."""

from collections import Counter

from repotune.build.fim import cut_candidates, fim_examples, keep_head, keep_tail
from repotune.code.tree import Snapshot, SourceFile, read_tree
from repotune.config import BuildConfig, FimTaskConfig
from repotune.models.fim import FAMILIES
from tests.support.gitrepo import git

PY = '''import os


def load(path):
    """Read a file."""
    with open(path) as fh:
        text = fh.read()
    return text


def size(path):
    return os.path.getsize(path)
'''
C = "int add(int a, int b)\n{\n\tint s = a + b;\n\treturn s;\n}\n"


def _snapshot(*files):
    return Snapshot(sha="ab" * 20, time=123, files=list(files))


def _rows(cfg, tokens="starcoder", *files):
    dropped = Counter()
    rows = list(fim_examples(_snapshot(*files), cfg, FAMILIES[tokens], dropped))
    return rows, dropped


def test_cuts_are_bodies_blocks_and_lines():
    lines = PY.splitlines(keepends=True)
    cuts = cut_candidates(SourceFile("a.py", "python", PY), lines, 800)
    assert (4, 7) in cuts["function_body"] and (11, 11) in cuts["function_body"]
    assert (6, 6) in cuts["block"]  # the `with` body
    assert (0, 0) in cuts["line"] and (1, 1) not in cuts["line"]  # blank lines are no cut
    c_cuts = cut_candidates(SourceFile("a.c", "c", C), C.splitlines(keepends=True), 800)
    assert c_cuts["function_body"] == [(2, 3)]


def test_l2r_rows_are_exact_whole_line_cuts():
    cfg = BuildConfig(fim=FimTaskConfig(fim_rate=0.0, examples_per_file=6))
    rows, _ = _rows(cfg, "starcoder", SourceFile("a.py", "python", PY))
    assert len(rows) == 6 and {r["meta"]["fim"] for r in rows} == {"l2r"}
    lines = PY.splitlines(keepends=True)
    for r in rows:
        first, last = r["meta"]["lines"]
        assert r["prompt"] == "".join(lines[:first])
        assert r["completion"] == "".join(lines[first : last + 1])
        assert r["completion"].endswith("\n")
        assert r["meta"]["time"] == 123 and r["meta"]["path"] == "a.py"


def test_psm_and_spm_rows_use_the_family_tokens():
    psm_cfg = BuildConfig(fim=FimTaskConfig(fim_rate=1.0, spm_rate=0.0, examples_per_file=1))
    (row,), _ = _rows(psm_cfg, "deepseek", SourceFile("a.c", "c", C))
    first, last = row["meta"]["lines"]
    lines = C.splitlines(keepends=True)
    prefix, middle, suffix = (
        "".join(lines[:first]),
        "".join(lines[first : last + 1]),
        "".join(lines[last + 1 :]),
    )
    assert row["prompt"] == f"<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>"
    assert row["completion"] == middle and row["meta"]["fim"] == "psm"
    spm_cfg = BuildConfig(fim=FimTaskConfig(fim_rate=1.0, spm_rate=1.0, examples_per_file=1))
    (row,), _ = _rows(spm_cfg, "starcoder", SourceFile("a.c", "c", C))
    assert row["prompt"].startswith("<fim_prefix><fim_suffix>")
    assert row["meta"]["fim"] == "spm" and row["meta"]["fim_tokens"] == "starcoder"


def test_rates_weights_and_determinism():
    cfg = BuildConfig(
        fim=FimTaskConfig(
            fim_rate=0.5, spm_rate=0.5, examples_per_file=8, cut_weights={"line": 1.0}
        )
    )
    files = [SourceFile(f"m{i}.py", "python", PY) for i in range(20)]
    rows, _ = _rows(cfg, "qwen", *files)
    again, _ = _rows(cfg, "qwen", *files)
    assert rows == again  # seeded per path
    assert {r["meta"]["cut"] for r in rows} == {"line"}
    modes = Counter(r["meta"]["fim"] for r in rows)
    assert set(modes) == {"l2r", "psm", "spm"}
    assert 0.3 < modes["l2r"] / len(rows) < 0.7


def test_files_with_sentinels_or_no_cut_are_dropped():
    cfg = BuildConfig()
    rows, dropped = _rows(
        cfg,
        "starcoder",
        SourceFile("tok.py", "python", "X = '<fim_prefix>'\n"),
        SourceFile("blank.txt", None, "\n\n"),
    )
    assert rows == [] and dropped == {"file_contains_fim_tokens": 1, "file_without_cut": 1}


def test_prefix_and_suffix_are_trimmed_at_line_boundaries():
    text = "".join(f"line {i}\n" for i in range(100))
    tail = keep_tail(text, 50)
    assert len(tail) <= 50 and tail.startswith("line ") and tail.endswith("line 99\n")
    head = keep_head(text, 50)
    assert len(head) <= 50 and head.startswith("line 0\n") and head.endswith("\n")
    assert keep_tail("short\n", 50) == "short\n" and keep_head("x" * 80, 50) == ""


def test_read_tree_reads_git_objects_with_filters(tmp_path):
    repo = tmp_path / "repo"
    (repo / "vendor").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("def f():\r\n    return 1\r\n")
    (repo / "vendor" / "lib.py").write_text("x = 1\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x00binary")
    (repo / "min.js").write_text("var a=1;" * 200 + "\n")
    (repo / "conf.py").write_text('password = "hunter2hunter2hunter2"\n')
    (repo / "link.py").symlink_to("a.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "a.py").write_text("uncommitted\n")  # the work tree is never read
    snap = read_tree(repo, "HEAD", exclude=["vendor"])
    assert [f.path for f in snap.files] == ["a.py", "conf.py"]
    assert snap.files[0].text == "def f():\n    return 1\n" and snap.files[0].language == "python"
    assert "hunter2" not in snap.files[1].text  # scrubbed like mined commits
    assert snap.skipped == {"binary": 1, "minified": 1, "symlink": 1}
    assert len(snap.sha) == 40 and snap.time == 1_700_000_000
    only_py = read_tree(repo, "HEAD", languages=["javascript"])
    assert only_py.files == []


def test_prompts_shrink_to_the_token_budget_keeping_the_sentinels():
    text = "".join(f"x{i} = {i}\n" for i in range(200))
    cfg = BuildConfig(fim=FimTaskConfig(fim_rate=1.0, examples_per_file=5, max_prompt_tokens=60))
    dropped = Counter()
    rows = list(
        fim_examples(
            _snapshot(SourceFile("big.py", "python", text)),
            cfg,
            FAMILIES["starcoder"],
            dropped,
            count_tokens=len,  # one "token" per character
        )
    )
    assert len(rows) == 5
    for r in rows:
        assert len(r["prompt"]) <= 60 and r["prompt"].startswith("<fim_prefix>")
        assert "<fim_middle>" in r["prompt"]
