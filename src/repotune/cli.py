"""Command line: one subcommand per stage plus `run`, all reading the same YAML config.

User mistakes end in one line on stderr and exit code 2; Ctrl-C in exit code 130.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from repotune.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fine-tune a code LLM on a git repository and measure it against the base model.",
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="run config (YAML); defaults if omitted")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a config field: section.key=value (repeatable)"),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="run directory for all outputs")]


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def _config(config: Path | None, sets: list[str] | None, out: Path | None = None):
    from repotune.config import load_config

    if config is None and out is not None and (out / "config.yaml").is_file():
        config = out / "config.yaml"
    return load_config(config, sets or [])


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command()
def mine(
    repo: Annotated[Path, typer.Argument(help="path to a git repository")],
    out: OutOpt = Path("runs/latest"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    stats_: Annotated[
        bool, typer.Option("--stats", help="print commits kept/dropped by reason, languages, sizes")
    ] = False,
) -> None:
    """Mine commits into RUN/commits.parquet (parallel, resumable, deduplicated, scrubbed).

    Example: repotune mine ~/src/myproject --out runs/myproject --set mine.max_commits=500 --stats
    """
    from repotune.mine import run_mine

    cfg = _config(config, set_, None)
    stats = run_mine(repo, out, cfg.mine, warn=_say)
    _say(
        f"mined {stats['kept']} commits -> {out / 'commits.parquet'} (dropped: {stats['dropped']})"
    )
    if stats_:
        from rich.console import Console

        from repotune.mine.report import stats_tables

        Console().print(stats_tables(stats))


@app.command()
def build(out: OutOpt = Path("runs/latest"), config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Build task datasets RUN/datasets/<task>/{train,val,test}.jsonl from mined commits.

    Example: repotune build --out runs/myproject
    """
    from repotune.tasks import run_build

    cfg = _config(config, set_, out)
    for task, s in run_build(out, cfg.build).items():
        _say(f"{task}: {s['examples']} examples from commits {s['commits']}")


@app.command()
def train(out: OutOpt = Path("runs/latest"), config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Fine-tune a LoRA adapter into RUN/adapter (resumes from the last checkpoint).

    Example: repotune train --out runs/myproject --set train.max_steps=50
    """
    _quiet_libraries()
    from repotune.train.sft import run_train

    cfg = _config(config, set_, out)
    s = run_train(out, cfg.model, cfg.train, cfg.build.tasks)
    _say(f"trained {s['steps']} steps in {s['seconds']:.0f} s -> {out / 'adapter'}")


@app.command()
def evaluate(
    out: OutOpt = Path("runs/latest"), config: ConfigOpt = None, set_: SetOpt = None
) -> None:
    """Compare base and tuned on the test split; writes RUN/eval/summary.json.

    Example: repotune evaluate --out runs/myproject --set evaluate.generate_examples=20
    """
    _quiet_libraries()
    from repotune.evaluate.run import run_evaluate

    cfg = _config(config, set_, out)
    summary = run_evaluate(out, cfg.model, cfg.evaluate, cfg.train.max_length, cfg.build.tasks)
    for task, res in summary["tasks"].items():
        _say(f"{task}: loss base {res['base']['loss']:.3f} tuned {res['tuned']['loss']:.3f}")


@app.command()
def report(out: OutOpt = Path("runs/latest")) -> None:
    """Write RUN/report.md from the evaluation results.

    Example: repotune report --out runs/myproject
    """
    from repotune.report.markdown import run_report

    path = run_report(out)
    typer.echo(path.read_text())


@app.command()
def run(
    repo: Annotated[Path, typer.Argument(help="path to a git repository")],
    out: OutOpt = Path("runs/latest"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Mine, build, train, evaluate and report in one go.

    Example: repotune run . --out runs/self -c configs/quickstart.yaml
    """
    _quiet_libraries()
    from repotune.pipeline import run_all

    cfg = _config(config, set_, None)
    report_path = run_all(repo, out, cfg, say=_say)
    typer.echo(report_path.read_text())


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="text to complete")],
    model: Annotated[str, typer.Option(help="model name, local folder or hub id")] = "gemma-3-270m",
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder to apply")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
) -> None:
    """Print a greedy completion of PROMPT.

    Example: repotune generate --model gemma-3-270m "def fibonacci(n):"
    """
    _quiet_libraries()
    from repotune.infer.generate import generate as gen
    from repotune.models.load import load_model, load_tokenizer
    from repotune.models.registry import resolve_model

    path = resolve_model(model)
    tok = load_tokenizer(path)
    m = load_model(path, adapter=adapter)
    typer.echo(gen(m, tok, [prompt], max_new_tokens=max_new_tokens)[0])


def main() -> None:
    from repotune.memory import tune_malloc

    tune_malloc()
    try:
        app(standalone_mode=False)
    except UserError as err:
        _say(f"error: {err}")
        sys.exit(2)
    except KeyboardInterrupt:
        _say("interrupted: outputs written so far are kept; re-run the same command to resume")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors carry their own exit code
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            _say("aborted")
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
