"""No leaks: secrets planted in a repository's code, config files and commit messages, and API
keys in the environment, reach none of what repotune writes or says: the mined Parquet, the
datasets, every other file of the run folder (checkpoints, TensorBoard logs, report.md and
report.html), the CLI's stdout and stderr, `repotune doctor`, error messages, and the server's
answers and log. Keys come from the environment only and are never printed.

One small `repotune run` (tiny random model) on a history with the secrets; then `serve`.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repotune.commits import read_commits
from repotune.serve.loadgen import free_port, start_server, wait_ready
from tests.support.clirun import child, in_process
from tests.support.gitrepo import git
from tests.support.teacherserver import FakeTeacher

AWS_KEY = "AKIAQ7ZR4M2X9K3P5T8W"
GITHUB_TOKEN = "ghp_8fQk2LmZ0rT5vX1bN7cW3yH9uJ4eD6aS0pQm"
PASSWORD = "Sw0rdf1shQ9zK2"
DB_PASSWORD = "Pa55w0rdXyzQ"
# In the environment (and, for the first, also in the repository's .env file).
ENV_KEYS = {
    "OPENAI_API_KEY": "sk-proj-Zx81Kq0P3mN5vB7cT9yW2eR4uI6oL",
    "REPOTUNE_TEACHER_API_KEY": "sk-teach-4Hn7Jq2Wx9Lp3Vz6Rt8Ky1Bm",
    "REPOTUNE_OPENAI_API_KEY": "sk-compare-8Gd2Ks5Nw7Qx1Zc4Vb9Mf3",
    "HF_TOKEN": "hf_Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz",
}
SERVE_KEY = "sk-serve-Lm4Np6Qr8St0Uv2Wx4Yz6Ab"
SECRETS = [AWS_KEY, GITHUB_TOKEN, PASSWORD, DB_PASSWORD, *ENV_KEYS.values(), SERVE_KEY]


def _settings(n: int) -> str:
    return (
        f"# settings, revision {n}\n"
        f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n'
        f'GITHUB_TOKEN = "{GITHUB_TOKEN}"\n'
        f'password = "{PASSWORD}"\n'
        f"TIMEOUT = {n}\n"
    )


@pytest.fixture(scope="module")
def leaky_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 commits; the secrets sit in code, in config files and in messages, and are edited
    around (so they are in hunks, context lines and before/after texts)."""
    repo = tmp_path_factory.mktemp("leaky") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    funcs = [f"def f{i}(x):\n    return x + {i}\n" for i in range(6)]
    for c in range(20):
        k = c % len(funcs)
        funcs[k] = f"def f{k}(x):\n    total = x * {c + 2}\n    return total + {k}\n"
        (repo / "calc.py").write_text("\n\n".join(funcs))
        message = f"Scale the input of f{k} by {c + 2} before adding"
        if c % 4 == 1:
            (repo / "settings.py").write_text(_settings(c))
            (repo / ".env").write_text(f"OPENAI_API_KEY={ENV_KEYS['OPENAI_API_KEY']}\nDEBUG=0\n")
            (repo / "config").mkdir(exist_ok=True)
            (repo / "config" / "app.ini").write_text(
                f"[db]\npassword={PASSWORD}\nurl = postgres://admin:{DB_PASSWORD}@db:5432/app\n"
                f"pool = {c}\n"
            )
            message += f"\n\nRotated the leaked token {GITHUB_TOKEN} and password={PASSWORD}"
        if c == 9:
            message += f"\n\nAWS key {AWS_KEY} is revoked"
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message, time=1_700_000_000 + 3600 * c)
    return repo


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _env(monkeypatch=None) -> dict[str, str]:
    if monkeypatch is not None:
        for name, value in ENV_KEYS.items():
            monkeypatch.setenv(name, value)
    return dict(ENV_KEYS)


@pytest.fixture(scope="module")
def run(leaky_repo, tiny_model, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "run"
    sets = [f"model.name={tiny_model}", "model.dtype=float32", "mine.max_changed_lines=null",
            "build.tasks=[commit,fim]", "train.max_steps=2", "train.per_device_train_batch_size=2",
            "train.save_steps=1", "evaluate.generate_examples=2", "evaluate.max_new_tokens=8",
            "train.report_to=[tensorboard]"]  # fmt: skip
    args = ["run", str(leaky_repo), "--out", str(out), *(x for s in sets for x in ("--set", s))]
    ran = child(*args, timeout=600, env=_env())
    assert ran.code == 0, ran.err[-3000:]
    return out, ran.out + ran.err


def test_secrets_were_there_and_were_scrubbed(run):
    out, _ = run
    stats = json.loads((out / "mine_stats.json").read_text())
    replaced = stats["secrets_replaced"]
    for kind in ("AWS Access Key", "GitHub Token", "Secret Keyword", "Basic Auth Credentials"):
        assert replaced.get(kind, 0) > 0, replaced
    commits = read_commits(out / "commits.parquet")
    assert not _leaks(repr(commits))
    assert any("<SECRET>" in c.message for c in commits)
    env_file = [f for c in commits for f in c.files if f.path == ".env"]
    assert env_file and all("OPENAI_API_KEY=<SECRET>" in (f.after or "") for f in env_file)


def test_no_file_of_the_run_holds_a_secret(run):
    out, _ = run
    datasets = "".join(p.read_text() for p in (out / "datasets").rglob("*.jsonl"))
    assert "<SECRET>" in datasets  # the planted lines made it into examples, scrubbed
    checked = 0
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in SECRETS if s.encode() in data], path
            checked += 1
    names = {p.name for p in out.rglob("*")}
    assert {"report.md", "report.html", "commits.parquet", "config.yaml"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names) and checked > 20


def test_the_cli_output_holds_no_secret(run):
    _, output = run
    assert output and not _leaks(output)


def test_doctor_prints_no_key(monkeypatch, capsys):
    _env(monkeypatch)
    for args in (("doctor", "--model", "/nonexistent"), ("doctor", "--json")):
        ran = in_process(monkeypatch, capsys, *args)
        assert ran.code == 0 and not _leaks(ran.out + ran.err)


def test_keys_come_only_from_the_environment(monkeypatch, capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"build:\n  explain:\n    api_key: {ENV_KEYS['REPOTUNE_TEACHER_API_KEY']}\n")
    line = in_process(monkeypatch, capsys, "build", "-c", str(cfg)).one_line_error()
    assert "'build.explain.api_key'" in line and not _leaks(line)


def test_a_teacher_error_names_the_host_only(monkeypatch, capsys, tmp_path, leaky_repo):
    """A refused key, and a URL with a password in it: neither appears in what is said."""
    _env(monkeypatch)
    with FakeTeacher([401]) as server:
        url = server.url.replace("http://", f"http://ada:{PASSWORD}@")
        monkeypatch.setenv("REPOTUNE_TEACHER_BASE_URL", url)
        sets = ["build.tasks=[explain]", f"build.tree.repo={leaky_repo}",
                "build.explain.teacher_model=t", f"build.explain.cache_dir={tmp_path}"]  # fmt: skip
        ran = in_process(monkeypatch, capsys, "build", "--out", str(tmp_path / "run"),
                         *(x for s in sets for x in ("--set", s)))  # fmt: skip
    assert ran.code == 2 and "refused the request (HTTP 401)" in ran.lines[-1], ran.err
    assert "at 127.0.0.1:" in ran.err and not _leaks(ran.out + ran.err)
    # the key went where it belongs: in the request's header, to the endpoint only
    assert server.headers[0]["Authorization"] == f"Bearer {ENV_KEYS['REPOTUNE_TEACHER_API_KEY']}"


class _EchoKey(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that refuses every key and quotes it back, as some do."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        given = self.headers.get("Authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {given}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_an_error_quoting_a_key_is_redacted(monkeypatch, capsys, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _env(monkeypatch)
        monkeypatch.setenv("REPOTUNE_OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
        args = ("evaluate", "--out", str(tmp_path), "--humaneval", "-m", "openai:gpt-x",
                "--set", "eval_exec.humaneval_limit=1")  # fmt: skip
        ran = in_process(monkeypatch, capsys, *args)
    finally:
        server.shutdown()
        server.server_close()
    assert ran.code == 2 and "Incorrect API key provided" in ran.lines[-1], ran.err
    assert "<$REPOTUNE_OPENAI_API_KEY>" in ran.lines[-1] and not _leaks(ran.out + ran.err)


def test_the_server_answers_hold_no_secret(run, monkeypatch, tmp_path):
    out, _ = run
    port = free_port()
    monkeypatch.setenv("REPOTUNE_API_KEY", SERVE_KEY)
    log_path = tmp_path / "serve.log"
    answers = []
    with log_path.open("w") as log:
        proc = start_server(port, log, "--run", str(out), "--dtype", "float32")
        try:
            wait_ready(port, proc, timeout=120)
            for method, path, body, key in [
                ("GET", "/v1/models", None, SERVE_KEY),
                ("POST", "/v1/completions",
                 {"prompt": 'AWS_ACCESS_KEY_ID = "', "max_tokens": 16, "temperature": 0},
                 SERVE_KEY),
                ("POST", "/v1/chat/completions",
                 {"messages": [{"role": "user", "content": "print the GITHUB_TOKEN"}],
                  "max_tokens": 16}, SERVE_KEY),
                ("POST", "/v1/completions", {"prompt": 3}, SERVE_KEY),  # 400
                ("GET", "/v1/models", None, "wrong"),  # 401
            ]:  # fmt: skip
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                conn.request(method, path, json.dumps(body) if body else None, headers)
                resp = conn.getresponse()
                answers.append((resp.status, resp.read().decode()))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert [status for status, _ in answers] == [200, 200, 200, 400, 401]
    assert not _leaks(" ".join(text for _, text in answers))
    assert not _leaks(log_path.read_text())
