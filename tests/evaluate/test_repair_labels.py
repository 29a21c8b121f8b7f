"""Labelled fix sets: a fix's `label` (a CWE) shown in the repair prompt as a comment line in
the language's syntax, or hidden; `evaluate --bugs` results per label, down to the report."""

from __future__ import annotations

import json

import pytest

from repotune.build import run_build
from repotune.build.fixsets import load_external
from repotune.config import BuildConfig, EvalExecConfig, RepairTaskConfig, RunConfig
from repotune.errors import UserError
from repotune.evaluate.repair_eval import repair_prompt_for
from repotune.infer.generate import Completion
from repotune.sandbox.bugsuite import make_suite
from repotune.sandbox.manifest import bug_fingerprint, load_bugs, parse_bug, save_bugs

PY_BUGGY = "def mean(values):\n    total = sum(values)\n    return total / (len(values) - 1)\n"
PY_FIXED = PY_BUGGY.replace("(len(values) - 1)", "len(values)")
C_BUGGY = "int at(const int *xs, int i)\n{\n\treturn xs[i + 1];\n}\n"
C_FIXED = C_BUGGY.replace("i + 1", "i")
GO_BUGGY = "func half(x int) int {\n\treturn x / 3\n}\n"
GO_FIXED = GO_BUGGY.replace("/ 3", "/ 2")

FIXES = [
    {"id": "py", "path": "stats/mean.py", "before": PY_BUGGY, "after": PY_FIXED,
     "label": "CWE-369"},
    {"id": "c", "path": "src/at.c", "before": C_BUGGY, "after": C_FIXED,
     "label": "CWE-787\n (out-of-bounds write)"},
    {"id": "go", "path": "half.go", "before": GO_BUGGY, "after": GO_FIXED},
]  # fmt: skip


def _build(tmp_path, show: bool) -> tuple[dict, dict[str, dict]]:
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_text("".join(json.dumps(f) + "\n" for f in FIXES))
    run = tmp_path / ("shown" if show else "hidden")
    repair = RepairTaskConfig(
        external=[str(fixes)], external_split="train", show_label=show,
        max_input_tokens=None, max_output_tokens=None,  # no tokenizer needed
    )  # fmt: skip
    stats = run_build(run, BuildConfig(tasks=["repair"], repair=repair))
    rows = [json.loads(x) for x in (run / "datasets" / "repair" / "train.jsonl").open()]
    return stats["repair"], {r["meta"]["path"]: r for r in rows}


def test_labelled_fix_set_shown_and_hidden(tmp_path):
    hidden_stats, hidden = _build(tmp_path, show=False)
    shown_stats, shown = _build(tmp_path, show=True)
    assert set(hidden) == set(shown) == {"stats/mean.py", "src/at.c", "half.go"}

    # Python: a `#` line just above `# buggy code`; C: a `//` line, the label on one line.
    assert shown["stats/mean.py"]["prompt"] == (
        "def mean(values):\n"
        "    total = sum(values)\n"
        "# label: CWE-369\n"
        "# buggy code\n"
        "#     return total / (len(values) - 1)\n"
        "    <FILL_ME>\n"
    )
    assert shown["src/at.c"]["prompt"] == (
        "int at(const int *xs, int i)\n{\n"
        "// label: CWE-787 (out-of-bounds write)\n"
        "// buggy code\n// \treturn xs[i + 1];\n\t<FILL_ME>\n}\n"
    )
    for path in ("stats/mean.py", "src/at.c"):
        assert "label:" not in hidden[path]["prompt"]
        # shown = hidden plus exactly that one line; the target and the split do not move
        kept = [ln for ln in shown[path]["prompt"].split("\n") if " label: " not in ln]
        assert "\n".join(kept) == hidden[path]["prompt"]
        assert shown[path]["completion"] == hidden[path]["completion"]
        assert shown[path]["meta"]["sha"] == hidden[path]["meta"]["sha"]
        assert shown[path]["meta"]["label"] == hidden[path]["meta"]["label"]
    assert hidden["src/at.c"]["meta"]["label"] == "CWE-787 (out-of-bounds write)"
    # a row without a label is the same either way
    assert shown["half.go"] == hidden["half.go"] and "label" not in shown["half.go"]["meta"]

    assert shown_stats["labels"] == {
        "CWE-369": {"train": 1, "val": 0, "test": 0},
        "CWE-787 (out-of-bounds write)": {"train": 1, "val": 0, "test": 0},
    }
    assert shown_stats["labels_shown"] is True and hidden_stats["labels_shown"] is False


def test_a_label_must_be_text(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**FIXES[0], "label": 369}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:1: 'label' must be text"):
        load_external([str(bad)])
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({**FIXES[0], "label": "  "}) + "\n")
    assert load_external([str(empty)])[0].label is None
    with pytest.raises(UserError, match="m:1: label must be text"):
        parse_bug({"id": "b", "repo": ".", "file": "a.py", "span": [1, 1],
                   "test_command": "true", "label": ["CWE-1"]}, "m:1")  # fmt: skip


def test_manifest_label_in_prompts_in_each_syntax_and_not_in_the_cache_key():
    d = {"id": "b", "repo": ".", "file": "x.c", "span": [3, 3], "test_command": "true"}
    bug = parse_bug({**d, "label": "CWE-787"}, "m:1")
    text = "int f(int *p)\n{\n\treturn p[1];\n}\n"
    assert "// label: CWE-787\n// buggy code\n// \treturn p[1];\n" in repair_prompt_for(
        bug, text, show_label=True
    )
    assert "label" not in repair_prompt_for(bug, text)
    py = parse_bug({**d, "file": "x.py", "span": [2, 2], "label": "CWE-369"}, "m:1")
    shown = repair_prompt_for(py, "def f(x):\n    return 1 / x\n", show_label=True)
    assert "# label: CWE-369\n# buggy code\n" in shown
    # the label changes what the model is told, not what a candidate's run means
    assert bug_fingerprint(bug, "s") == bug_fingerprint(parse_bug(d, "m:1"), "s")


class LabelReader:
    """Fixes a bug only when its prompt names the label: what training with it shown teaches."""

    name = "label-reader"

    def __init__(self, bugs) -> None:
        self.bugs, self.prompts = bugs, []

    def complete(self, prompts, decoding, instruction=None, on_batch=None):
        out = []
        for p in prompts:
            self.prompts.append(p)
            bug = next(b for b in self.bugs if b.meta["marker"] in p)
            sees = " label: " in p or bug.label is None
            out.append([Completion(bug.fix if sees else "    pass\n")])
        return out

    def close(self):
        pass


def test_evaluate_bugs_per_label_hidden_then_shown(tmp_path, monkeypatch):
    """The experiment's evaluation: the same model and manifest, labels hidden then shown."""
    from repotune.evaluate import repair_eval
    from repotune.evaluate.exec_run import run_bug_evaluation
    from repotune.report.collect import collect
    from repotune.report.html import render_html
    from repotune.report.markdown import render

    monkeypatch.setenv("REPOTUNE_CACHE", str(tmp_path / "cache"))
    labels = {"sum-to": "CWE-193", "reverse": "CWE-193", "is-even": None}
    markers = {"sum-to": "sum_to", "reverse": "reverse", "is-even": "is_even"}
    bugs = [b for b in load_bugs(make_suite(tmp_path / "suite")) if b.id in labels]
    for b in bugs:
        b.label, b.meta["marker"] = labels[b.id], markers[b.id]
    manifest = tmp_path / "bugs.jsonl"
    save_bugs(manifest, bugs)
    assert {b.id: b.label for b in load_bugs(manifest)} == labels  # the field round-trips

    backend = LabelReader(bugs)
    monkeypatch.setattr(repair_eval, "open_contender", lambda c, cfg, dtype: backend)
    results = {}
    for show in (False, True):
        cfg = RunConfig()
        cfg.build.repair.show_label = show
        cfg.eval_exec = EvalExecConfig(
            candidates=1, decoding="greedy", k=[1], static_analysers=False, workers=2
        )
        run = tmp_path / f"run-{show}"
        said: list[str] = []
        table = run_bug_evaluation(run, manifest, ["model"], cfg, say=said.append)
        results[show] = (run, table, said)
        shown_lines = [p for p in backend.prompts[-3:] if "# label: CWE-193\n# buggy code" in p]
        assert len(shown_lines) == (2 if show else 0)

    run, table, said = results[False]
    summary = json.loads((run / "eval" / "summary.json").read_text())["bugs"]
    assert summary["models"]["model"]["by_label"] == {
        "(no label)": {"plausible@1": 1.0, "n_bugs": 1, "plausible_bugs": 1,
                       "plausible_after_turns": 1},
        "CWE-193": {"plausible@1": 0.0, "n_bugs": 2, "plausible_bugs": 0,
                    "plausible_after_turns": 0},
    }  # fmt: skip
    assert summary["per_bug"]["reverse"]["label"] == "CWE-193"
    assert "label" not in summary["per_bug"]["is-even"]
    assert "| CWE-193 | 2 | 0/2, 0.000 |" in table
    assert any("hidden from the prompts" in s for s in said)
    assert any(s.strip() == "per label: (no label) 1/1, CWE-193 0/2" for s in said)

    run, table, said = results[True]
    summary = json.loads((run / "eval" / "summary.json").read_text())["bugs"]
    assert summary["models"]["model"]["by_label"]["CWE-193"]["plausible_bugs"] == 2
    assert "| CWE-193 | 2 | 2/2, 1.000 |" in table
    assert any("shown in the prompts" in s for s in said)

    (bench,) = collect(run).benchmarks
    assert bench.by_label == {"model": summary["models"]["model"]["by_label"]}
    md = render(run)
    assert "| label | bugs | model |" in md and "| CWE-193 | 2 | 2/2, 1.000 |" in md
    assert "<td>CWE-193</td><td>2</td><td>2/2, 1.000</td>" in render_html(run)
