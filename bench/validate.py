"""Validation throughput: candidates validated per minute with 1 worker and with all cores.

    python bench/validate.py [--rounds N]

Builds the test suite's manifest (12 Python and 3 C bugs, repotune/sandbox/bugsuite.py) in a
temp folder and validates, for every bug, its fix, its unchanged buggy lines and two broken
variants that still compile (4 x 15 = 60 candidates per round; N rounds use distinct
candidates), without the cache, first with one worker, then with one per core. Each candidate
is a full sandboxed run: copy of the project, build (C), tests. Printed: candidates/minute of
each and the ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from repotune.sandbox import Limits, Sandbox, describe, isolation
from repotune.sandbox.bugsuite import make_suite
from repotune.sandbox.manifest import load_bugs
from repotune.sandbox.validate import Validator


def _jobs(bugs, validator, rounds: int) -> list[tuple[str, str]]:
    jobs = []
    for r in range(rounds):
        for b in bugs:
            buggy = validator.buggy_span(b.id)
            note = "#" if b.lang() == "python" else "//"
            jobs += [
                (b.id, b.fix + f"{note} round {r}\n"),
                (b.id, buggy + f"{note} round {r}\n"),
                (b.id, buggy + f"{note} variant a {r}\n"),
                (b.id, buggy + f"{note} variant b {r}\n"),
            ]
    return jobs


def _rate(bugs, workers: int, rounds: int) -> tuple[float, int]:
    with Sandbox(Limits(memory_mb=2048)) as sb, Validator(bugs, sb, workers=workers) as v:
        v.validate([(b.id, b.fix) for b in bugs])  # export + warm up outside the clock
        jobs = _jobs(bugs, v, rounds)
        start = time.monotonic()
        outcomes = v.validate(jobs)
        seconds = time.monotonic() - start
    assert all(o.outcome in ("test_pass", "test_fail") for o in outcomes), "unexpected outcome"
    return len(jobs) / seconds * 60, len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        bugs = load_bugs(make_suite(Path(tmp)))
        print(f"sandbox: {describe(isolation())}")
        one, n = _rate(bugs, 1, args.rounds)
        print(f"1 worker:   {one:7.0f} candidates/min ({n} candidates)")
        many, _ = _rate(bugs, cores, args.rounds)
        print(f"{cores} workers: {many:7.0f} candidates/min")
        print(f"ratio: {many / one:.2f}x with {cores} cores")


if __name__ == "__main__":
    main()
