"""How fast a tuned model goes stale, and what a refresh buys back, on a real history replayed
in windows.

    python bench/staleness.py REPO --cuts REV0 REV1 [REV2 ...] --out DIR [-c CONFIG] [--set k=v]
    python bench/staleness.py REPO --cuts ... --out DIR --rescore   # the table again

REPO is never touched: it is cloned into DIR/clone, where a branch is put at REV0 (revisions
of REPO, e.g. `HEAD~250 HEAD~150 HEAD~75 HEAD` along first parents). `repotune run` there is
window 0; its adapter is kept aside (DIR/stale) and never trained again. Then for each later
cut the branch moves forward and

- `repotune refresh` mines the new commits, moves the split (the newest commits become the
  test set), continues the adapter and evaluates it: the *refreshed* model on window w;
- `repotune evaluate` runs the kept adapter on the same datasets (a run folder of its own
  with the refreshed run's datasets and config): the *stale* model on window w.

Both evaluations score the base model too, on the same rows: their base losses must agree,
which the script checks. Printed per window and task: the test commits' dates, the base loss,
the stale and refreshed tuned/base loss ratios with paired bootstrap intervals, and on the
`complete` task the exact matches with McNemar's exact test (stale vs refreshed); each on all
the window's test rows (the newest tenth of the history, which can reach back past the
previous cut) and on the rows of commits made after the previous cut alone. Everything is
written to DIR/staleness.json. A quality run, not a timed test: its figures are losses and
matches, but give it the machine alone anyway (minutes per window with the embedded model).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    res = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return res.stdout.strip()


def repotune(args: list[str], log: Path) -> float:
    """Run one CLI command (its stderr appended to `log`); its wall-clock seconds."""
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"\n$ repotune {' '.join(args)}\n")
        f.flush()
        res = subprocess.run([sys.executable, "-m", "repotune.cli", *args], stderr=f, stdout=f)
    if res.returncode != 0:
        sys.exit(f"repotune {' '.join(args[:2])} failed: see {log}")
    return time.perf_counter() - t0


def per_row(run: Path, task: str, label: str) -> dict[str, dict]:
    path = run / "eval" / task / f"{label}.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def window_scores(fresh: Path, stale: Path, tasks: list[str], since: int | None = None) -> dict:
    """Base, stale and refreshed scores on one window's test rows, paired by row id; with
    `since`, also on the rows of commits made after it alone (`new`): the test split is the
    newest tenth of the history, which can reach back past the previous cut."""
    from repotune.rundir import load_split

    out: dict = {}
    for task in tasks:
        base, base2 = per_row(fresh, task, "base"), per_row(stale, task, "base")
        tuned = {"stale": per_row(stale, task, "tuned"), "refreshed": per_row(fresh, task, "tuned")}
        when = {r["id"]: r["meta"].get("time") or 0 for r in load_split(fresh, task, "test")}
        ids = [i for i, r in base.items() if r.get("tokens")]  # rows with a loss
        times = [t for t in when.values() if t]
        res: dict = {
            "dates": [_day(min(times)), _day(max(times))] if times else None,
            "base_nll_max_drift": max(
                (abs(base[i]["nll"] - base2[i]["nll"]) for i in ids), default=0.0
            ),
            **_scores(list(base), base, tuned),
        }
        if since is not None:
            res["new"] = _scores([i for i in base if when.get(i, 0) > since], base, tuned)
        out[task] = res
    return out


def _scores(ids: list[str], base: dict[str, dict], tuned: dict[str, dict[str, dict]]) -> dict:
    """Loss ratios (rows with a loss) and exact matches (rows answered) on `ids`."""
    from repotune.evaluate.paired import compare
    from repotune.report.stats import loss_ratio_ci

    lossy = [i for i in ids if base[i].get("tokens")]
    res: dict = {"rows_loss": len(lossy)}
    if lossy:
        res["base_loss"] = sum(base[i]["nll"] for i in lossy) / sum(
            base[i]["tokens"] for i in lossy
        )
        for name, rows in tuned.items():
            res[name] = {
                "loss": sum(rows[i]["nll"] for i in lossy) / sum(rows[i]["tokens"] for i in lossy),
                "ratio_ci": loss_ratio_ci([base[i] for i in lossy], [rows[i] for i in lossy]),
            }
        # what a refresh buys back, paired on the same rows: refreshed loss / stale loss
        res["refreshed_over_stale"] = loss_ratio_ci(
            [tuned["stale"][i] for i in lossy], [tuned["refreshed"][i] for i in lossy]
        )
    gen = [i for i in ids if "exact_match" in base[i] and i in tuned["stale"]]
    if gen:
        hits = {k: [bool(v[i]["exact_match"]) for i in gen] for k, v in tuned.items()}
        hits["base"] = [bool(base[i]["exact_match"]) for i in gen]
        res["exact_match"] = {k: sum(v) / len(v) for k, v in hits.items()}
        res["exact_match"]["n"] = len(gen)
        res["stale_vs_refreshed"] = compare(hits["stale"], hits["refreshed"])
    return res


def _day(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def keep_tuned(run: Path, dest: Path) -> None:
    """A copy of the run's adapter and train summary (which says how it was trained)."""
    from repotune.rundir import ADAPTER

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(run / ADAPTER, dest / ADAPTER)
    (dest / "train").mkdir()
    shutil.copy2(run / "train" / "summary.json", dest / "train" / "summary.json")


def stale_run(fresh: Path, stale: Path, dest: Path) -> Path:
    """A run folder with the refreshed run's config and datasets and the kept adapter."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(stale, dest)
    shutil.copy2(fresh / "config.yaml", dest / "config.yaml")
    shutil.copytree(fresh / "datasets", dest / "datasets")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--cuts", nargs="+", required=True, help="revisions of REPO, oldest first")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-c", "--config", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument(
        "--rescore", action="store_true", help="score the windows already in --out again"
    )
    args = parser.parse_args()
    if len(args.cuts) < 2:
        sys.exit("--cuts needs two revisions or more: the first run's, then each refresh's")

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shas = [git(args.repo, "rev-parse", c) for c in args.cuts]
    times = [int(git(args.repo, "log", "-1", "--format=%ct", sha)) for sha in shas]
    if args.rescore:
        results = json.loads((out / "staleness.json").read_text())
        tasks = list(results[0]["scores"])
        for w, r in enumerate(results[1:], start=1):
            r["scores"] = window_scores(out / f"window{w}", out / f"stale{w}", tasks, times[w - 1])
    else:
        results, tasks = replay(args, out, shas, times)
    (out / "staleness.json").write_text(json.dumps(results, indent=1))
    print_table(results, tasks)


def replay(args: argparse.Namespace, out: Path, shas: list[str], times: list[int]):
    """The first run at the first cut, then a refresh and a stale evaluation per later cut."""
    clone, run, log = out / "clone", out / "run", out / "log.txt"
    if not clone.exists():
        subprocess.run(
            ["git", "clone", "-q", "--no-hardlinks", str(args.repo.resolve()), str(clone)],
            check=True,
        )
    options = (["-c", str(args.config.resolve())] if args.config else []) + [
        a for s in args.sets for a in ("--set", s)
    ]
    git(clone, "checkout", "-q", "-B", "repotune-bench", shas[0])
    seconds = repotune(["run", str(clone), "--out", str(run), *options], log)
    keep_tuned(run, out / "stale")
    from repotune.rundir import built_tasks

    tasks = [t for t in built_tasks(run) if (run / "eval" / t / "tuned.jsonl").is_file()]
    print(
        f"window 0 at {args.cuts[0]}: first run {seconds / 60:.1f} min, tasks {tasks}, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = [
        {
            "cut": args.cuts[0],
            "sha": shas[0],
            "seconds": seconds,
            "scores": window_scores(run, run, tasks),
        }
    ]
    for w, (cut, sha) in enumerate(zip(args.cuts[1:], shas[1:], strict=True), start=1):
        git(clone, "reset", "-q", "--hard", sha)
        fresh_s = repotune(["refresh", str(run), *options], log)
        keep = out / f"window{w}"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(run / "eval", keep / "eval")
        shutil.copytree(run / "datasets", keep / "datasets")
        stale = stale_run(run, out / "stale", out / f"stale{w}")
        stale_s = repotune(["evaluate", "--out", str(stale), *options], log)
        history = json.loads((run / "eval" / "history" / f"{w:03d}.json").read_text())
        results.append(
            {
                "cut": cut,
                "sha": sha,
                "seconds": fresh_s,
                "stale_eval_seconds": stale_s,
                "refresh": history.get("train"),
                "new_commits": history.get("new_commits"),
                "scores": window_scores(keep, stale, tasks, times[w - 1]),
            }
        )
        print(
            f"window {w} at {cut}: refresh {fresh_s / 60:.1f} min, stale evaluation "
            f"{stale_s / 60:.1f} min, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        (out / "staleness.json").write_text(json.dumps(results, indent=1))
    return results, tasks


def print_table(results: list[dict], tasks: list[str]) -> None:
    """Per task, a row per window: all its test rows, then (from window 1) the rows of
    commits made after the previous cut alone."""

    def ratio(r: dict) -> str:
        x, lo, hi = r["ratio_ci"]
        return f"{x:.2f} ({lo:.2f}-{hi:.2f})"

    def cells(s: dict) -> str:
        line = f"{s['rows_loss']} | {s['base_loss']:.3f} | {ratio(s['stale'])} | "
        line += ratio(s["refreshed"])
        over = s.get("refreshed_over_stale")  # window 0 has one adapter
        line += " | " + (ratio({"ratio_ci": over}) if over else "-")
        if "exact_match" in s:
            em, c = s["exact_match"], s["stale_vs_refreshed"]
            line += (
                f" | {em['base']:.3f} / {em['stale']:.3f} / {em['refreshed']:.3f} "
                f"(n={em['n']}; {c['first_only']} vs {c['second_only']}, p={c['mcnemar_p']:.3f})"
            )
        return line

    for task in tasks:
        print(
            f"\n{task}: window | rows of | test commits | loss rows | base loss | stale/base | "
            "refreshed/base | refreshed/stale"
            + (" | EM base / stale / refreshed (n; discordant, p)" if task == "complete" else "")
        )
        for w, r in enumerate(results):
            s = r["scores"][task]
            print(f"{w} | all | {s['dates'][0]}..{s['dates'][1]} | {cells(s)}")
            if s.get("new", {}).get("rows_loss"):
                print(f"{w} | after cut {w - 1} | | {cells(s['new'])}")


if __name__ == "__main__":
    main()
