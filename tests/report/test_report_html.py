"""report.html from a real run (tiny model), and in a real browser: headless Chromium opens
it, and the verdict, the tables and every plot must render; a screenshot is kept."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from repotune.fsutil import read_jsonl, write_jsonl
from repotune.report.collect import collect
from repotune.report.html import run_html_report
from repotune.report.markdown import run_report
from tests.report.test_report import _commit_task, _completion_run
from tests.support.gitrepo import make_history

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Injected into a copy of the report: what the page actually rendered, written into the DOM
# so `--dump-dom` carries it out of the browser.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.querySelectorAll("img")].map(i => ({
    alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
    shown: i.getBoundingClientRect().width }));
  const tables = [...document.querySelectorAll("table")].map(t => ({
    cls: t.className, rows: t.rows.length, shown: t.getBoundingClientRect().height }));
  const verdict = document.querySelector("#verdict");
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    verdict: verdict ? verdict.innerText : "",
    verdictHeight: verdict ? verdict.getBoundingClientRect().height : 0,
    tables, imgs,
    highlighted: document.querySelectorAll(".hl span").length,
    examples: document.querySelectorAll(".example").length });
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, tiny_model) -> Path:
    """A run directory written by the real pipeline: mine, build, train, evaluate."""
    from repotune.config import load_config
    from repotune.pipeline import run_all

    tmp = tmp_path_factory.mktemp("report-run")
    repo = make_history(tmp / "repo", n_commits=20)
    cfg = load_config(
        None,
        [
            f"model.name={tiny_model}",
            "model.dtype=float32",
            "train.max_steps=12",
            "train.per_device_train_batch_size=2",
            "train.learning_rate=5e-3",
            "train.logging_steps=2",
            "train.eval_steps=4",
            "evaluate.generate_examples=4",
            "evaluate.max_new_tokens=16",
        ],
    )
    out = tmp / "run"
    run_all(repo, out, cfg, say=lambda _: None)
    return out


def _with_outcomes(run: Path, dest: Path) -> Path:
    """A copy of `run` whose generated rows carry execution outcomes, as a validating
    evaluation writes them: the tuned model passes more often."""
    shutil.copytree(run, dest)
    cycle = {"base": ["compile_error", "test_fail", "test_fail", "test_pass"],
             "tuned": ["test_pass", "test_pass", "test_fail", "compile_error"]}  # fmt: skip
    for model in ("base", "tuned"):
        path = dest / "eval" / "commit" / f"{model}.jsonl"
        rows = read_jsonl(path)
        generated = [r for r in rows if "generation" in r]
        for i, row in enumerate(generated):
            row["outcome"] = cycle[model][i % 4]
        write_jsonl(path, rows)
    # and a `bugs` section as the execution evaluation writes it: 8 bugs, 4 candidates each,
    # three models; the tuned model fixes more of them
    passes = {"base": [0, 1, 0, 0, 0, 1, 0, 0], "tuned": [2, 3, 1, 0, 2, 4, 1, 2],
              "openai:gpt-4o-mini": [4, 4, 0, 1, 3, 4, 2, 1]}  # fmt: skip
    per_bug = {
        f"bug{i}": {"models": {m: {"n": 4, "c": c[i], "fixed_turn": 0} for m, c in passes.items()}}
        for i in range(8)
    }
    models = {
        m: {"plausible@1": sum(c) / 32, "plausible@4": sum(x > 0 for x in c) / 8,
            "outcomes": {"test_pass": sum(c), "test_fail": 32 - sum(c) - 3, "compile_error": 3}}
        for m, c in passes.items()
    }  # fmt: skip
    summary = json.loads((dest / "eval" / "summary.json").read_text())
    summary["bugs"] = {"n_bugs": 8, "models": models, "per_bug": per_bug}
    (dest / "eval" / "summary.json").write_text(json.dumps(summary))
    return dest


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it)")
    return exe


def _browser(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def _probe(report: Path, tmp: Path) -> dict:
    page = tmp / "probe.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    res = _browser(
        ["--window-size=1280,2000", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        tmp / "profile-probe",
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, "the probe did not run: " + res.stdout[-500:]
    return json.loads(html.unescape(found.group(1)))


def _nonblank(png: Path) -> int:
    """Distinct colours in the screenshot: a blank or unstyled page has a handful."""
    from PIL import Image

    with Image.open(png) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colors or [])


def test_report_md_and_html_carry_the_same_numbers(real_run):
    report = collect(real_run)
    md = run_report(real_run, report).read_text()
    page = run_html_report(real_run, report).read_text()
    loss = report.tasks[0].loss
    assert loss is not None and loss.n > 0
    for text in (md, page):
        assert report.verdict.split("`")[0] in html.unescape(text)
        assert f"{loss.lo:.2f}" in text and f"{loss.hi:.2f}" in text
        names = [m.name for m in report.tasks[0].metrics]
        assert {"loss", "exact match", "edit similarity"} <= set(names)
    # training curves come from the real log history: train and validation points
    assert "| step | train loss | validation loss |" in md
    assert page.count('<img class="plot"') == 2  # effects + loss curves; no outcomes yet
    assert "Execution outcomes" not in page and "data:image/png;base64," in page
    assert "<script" not in page  # self-contained and inert: no scripts, nothing fetched
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_report_command_writes_both(real_run, tmp_path):
    from typer.testing import CliRunner

    from repotune.cli import app

    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    res = CliRunner().invoke(app, ["report", "--out", str(run), "--examples", "2"])
    assert res.exit_code == 0, res.output
    assert "## Verdict" in res.output
    assert (run / "report.html").is_file()
    assert (run / "report.html").read_text().count('class="example"') == 2


def test_report_renders_in_a_browser(real_run, tmp_path):
    run = _with_outcomes(real_run, tmp_path / "run")
    report = collect(run)
    path = run_html_report(run, report)
    run_report(run, report)
    md = (run / "report.md").read_text()
    assert "| outcomes | compile error | test fail | test pass |" in md
    assert "pass@1" in md
    assert "## Execution: bug repair (`bugs`, 8 bugs)" in md
    assert "| openai:gpt-4o-mini | 0.594 | 0.875 |" in md
    bugs = report.benchmarks[0]
    assert bugs.metrics[0].name == "plausible@1" and bugs.metrics[0].winner == "tuned"

    got = _probe(path, tmp_path)
    assert report.verdict.split("`")[0] in got["verdict"]
    assert "commit" in got["verdict"] and got["verdictHeight"] > 40
    tables = [(t["cls"], t["rows"]) for t in got["tables"]]
    # commit: models, comparisons, outcomes; bugs: scores, comparison, outcomes
    assert tables == [("results", 3), ("effects", 6), ("outcomes", 3),
                      ("scores", 4), ("effects", 2), ("outcomes", 4)]  # fmt: skip
    assert all(t["shown"] > 0 for t in got["tables"])
    assert len(got["imgs"]) == 4  # effects, outcomes of commit and of bugs, loss curves
    for img in got["imgs"]:
        assert img["complete"] and img["w"] > 200 and img["h"] > 100, img
        assert img["shown"] > 200, img
    assert got["examples"] >= 1 and got["highlighted"] > 10

    shot = tmp_path / "report.png"
    _browser(["--window-size=1280,3200", f"--screenshot={shot}", path.as_uri()], tmp_path / "p2")
    assert shot.stat().st_size > 20_000
    assert _nonblank(shot) > 200


def _synthetic(run: Path, task: str, base: list[dict], tuned: list[dict]) -> Path:
    metrics = {"loss": 1.0, "perplexity": 2.7, "n": len(base), "n_generated": 0}
    summary = {"model": "m", "tasks": {task: {"base": metrics, "tuned": metrics}}}
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "summary.json").write_text(json.dumps(summary))
    write_jsonl(run / "eval" / task / "base.jsonl", base)
    write_jsonl(run / "eval" / task / "tuned.jsonl", tuned)
    return run


def test_a_handful_of_rows_decides_nothing(tmp_path):
    rows = [{"id": str(i), "nll": 10.0, "tokens": 5} for i in range(3)]
    better = [{**r, "nll": 5.0} for r in rows]
    report = collect(_synthetic(tmp_path, "commit", rows, better))
    assert report.tasks[0].loss.effect == 0.5 and report.tasks[0].winner is None
    assert report.verdict.startswith("Too few test examples")


def test_pass_at_k_is_read_from_the_summary_evaluate_wrote(tmp_path):
    """pass@k / plausible@k have one source, eval/summary.json: the report shows what the
    evaluation computed (here with the shared estimator) and never recomputes them from rows;
    the paired plausible@1 effect and the outcome counts come from the per-row outcomes."""
    from repotune.evaluate.passk import mean_pass_at_k

    def rows(passes: list[int]) -> list[dict]:
        return [
            {"id": str(i), "nll": 1.0, "tokens": 1,
             "outcomes": ["test_pass"] * c + ["test_fail"] * (10 - c)}
            for i, c in enumerate(passes)
        ]  # fmt: skip

    base, tuned = rows([0] * 8), rows([3, 0] * 4)
    run = _synthetic(tmp_path, "repair", base, tuned)
    summary = json.loads((run / "eval" / "summary.json").read_text())
    for model, passes in (("base", [0] * 8), ("tuned", [3, 0] * 4)):
        scores = mean_pass_at_k([(10, c) for c in passes], [1, 5, 10])
        summary["tasks"]["repair"][model] = {
            **summary["tasks"]["repair"][model],
            **{k.replace("pass", "plausible"): v for k, v in scores.items()},
        }
    summary["tasks"]["repair"]["base"]["plausible@5"] = 0.25  # not what the rows would give
    (run / "eval" / "summary.json").write_text(json.dumps(summary))
    task = collect(run).tasks[0]
    tuned_cols = task.pass_columns["tuned"]
    assert tuned_cols["plausible@1"] == pytest.approx(0.15)  # (3/10 + 0) / 2
    assert tuned_cols["plausible@10"] == pytest.approx(0.5)
    assert task.pass_columns["base"]["plausible@5"] == 0.25  # the summary's, as written
    assert task.outcomes["tuned"]["test_pass"] == 12
    assert [m.name for m in task.metrics] == ["loss", "plausible@1"]
    assert task.metrics[1].effect == pytest.approx(0.15)  # paired over rows
    del summary["tasks"]["repair"]["tuned"]["plausible@1"]  # a summary without scores: none
    (run / "eval" / "summary.json").write_text(json.dumps(summary))
    assert "plausible@1" not in collect(run).tasks[0].pass_columns["tuned"]


def test_humaneval_section_is_compared_per_problem(tmp_path):
    (tmp_path / "eval" / "humaneval").mkdir(parents=True)
    models = {}
    for model, passing in (("base", 2), ("tuned", 9)):
        results = [{"task_id": f"HumanEval/{i}", "passed": i < passing, "result": "x"}
                   for i in range(10) for _ in range(2)]  # fmt: skip
        write_jsonl(tmp_path / "eval" / "humaneval" / f"{model}_samples.jsonl_results.jsonl",
                    results)  # fmt: skip
        models[model] = {"pass@1": passing / 10, "outcomes": {"passed": 2 * passing,
                         "failed": 20 - 2 * passing}}  # fmt: skip
    summary = {"tasks": {}, "humaneval": {"n_problems": 10, "models": models}}
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(summary))
    report = collect(tmp_path)
    (he,) = report.benchmarks
    assert he.metrics[0].name == "pass@1" and he.metrics[0].n == 10
    assert he.metrics[0].effect == pytest.approx(0.7) and he.winner == "tuned"
    assert report.verdict.startswith("Ship the tuned model")
    md = run_report(tmp_path, report).read_text()
    assert "| outcomes | failed | passed |" in md
    page = run_html_report(tmp_path, report).read_text()
    assert page.count('<img class="plot"') == 2  # effects + outcomes


def test_html_leads_with_completion_and_says_when_retrieval_wins(tmp_path):
    n = 40
    hits = {
        "base": [i < 8 for i in range(n)],
        "tuned": [i < 10 for i in range(n)],
        "base+retrieval": [True] * 20,  # the first 20 targets only, all right
        "tuned+retrieval": [i < 12 for i in range(20)],
    }
    commit = _commit_task(tmp_path, base_sim=0.5, tuned_sim=0.8)
    run = _completion_run(tmp_path, hits, tasks={"commit": commit})
    report = collect(run)
    page = run_html_report(run, report).read_text()
    # after the verdict, the first section is completion: before the chart and every task
    verdict_end = page.index("</section>")
    first = page.index("<h2", verdict_end)
    assert page[first:].startswith('<h2 id="completion">')
    assert page.index('id="completion"') < page.index('id="fig-effects"')
    assert page.index('id="completion"') < page.index('id="task-complete"')
    completion = page[first : page.index('id="fig-effects"')]
    labels = re.findall(r"<tr><td>([^<]+)</td>", completion)
    assert labels[:4] == ["base", "base + retrieval", "tuned", "tuned + retrieval"]
    assert "tuned vs base + retrieval" in labels
    assert "Retrieval rows: 20 of the 40" in completion
    assert "<td>0 vs 10</td>" in completion  # tuned vs base + retrieval: discordant counts
    beaten = "base + retrieval beats the tuned model on completion"
    assert beaten in completion and beaten in page[:verdict_end]
    # the commit task's whole-hunk edit similarity is shown, marked, and decides nothing
    assert "(does not vote)" in page
    assert report.tasks[1].task == "commit" and report.tasks[1].winner is None
