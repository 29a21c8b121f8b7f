"""Secrets never reach commits.parquet: keys, tokens and passwords become a placeholder in the
code, the hunks and the messages, and the records still diff as git says."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from repotune.code.secrets import Scrubber, find_secrets, has_private_key
from repotune.config import MineConfig
from repotune.mine import read_commits, run_mine
from tests.mine.test_mine import GitRepo, file_at, git_numstat, mine

AWS_KEY = "AKIAQX4ZB7TJ2MNP3KDW"
GH_TOKEN = "ghp_" + "Zq8rT2vLx9Kd4Wm7Yb1Nc6Hs3Jf5Gp0Ae2Ru"
PASSWORD = "Tr0ub4dor&3horse"
SLACK = "xoxb-2412342343-2412342343-Fh83kdJSl2kd93jdKLas"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "-----END RSA PRIVATE KEY-----\n"
)


@pytest.mark.parametrize(
    ("line", "path", "kind"),
    [
        (f'aws_access_key_id = "{AWS_KEY}"', "settings.py", "AWS Access Key"),
        (f'TOKEN = "{GH_TOKEN}"', "ci.py", "GitHub Token"),
        (f'password = "{PASSWORD}"', "db.py", "Secret Keyword"),
        (f"db_password: {PASSWORD}", "config.yaml", "Secret Keyword"),
        (f'char *password = "{PASSWORD}";', "auth.c", "Secret Keyword"),
        ("url = 'https://admin:hunter2hunter2@db.example.com/x'", "a.py", "Basic Auth Credentials"),
        (f'slack = "{SLACK}"', "bot.js", "Slack Token"),
        ("key = 'sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc'", "pay.py", "Stripe Access Key"),
        ("glpat-" + "x7Yz9AbCdEfGhIjKlMnOp", "notes.txt", "GitLab Token"),
    ],
)
def test_detects_and_replaces(line: str, path: str, kind: str) -> None:
    scrubbed, kinds = Scrubber().line(line, path)
    assert kinds == [kind]
    assert "<SECRET>" in scrubbed
    for secret in (AWS_KEY, GH_TOKEN, PASSWORD, SLACK, "hunter2hunter2", "4eC39HqLyjWDarjtT1zd"):
        assert secret not in scrubbed


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("password = get_password(user)", "a.py"),  # an indirect reference, not a value
        ('password = "${DB_PASSWORD}"', "a.py"),  # a template
        ('password = "<SECRET>"', "a.py"),  # already scrubbed: idempotent
        ('token = "abcdefghijklmnop"', "a.py"),  # sequential
        ("def check_password(self, raw):", "a.py"),
        ("see https://example.com/docs/auth for details", "a.md"),
        ("commit 0123456789abcdef0123456789abcdef01234567", "a.txt"),
    ],
)
def test_leaves_ordinary_code(line: str, path: str) -> None:
    assert find_secrets(line, path) == []
    assert Scrubber().line(line, path) == (line, [])


def test_text_keeps_lines_and_untouched_text() -> None:
    text = f"import os\n\nKEY = '{AWS_KEY}'\nx = 1\n"
    scrubbed, kinds = Scrubber("[REDACTED]").text(text, "a.py")
    assert scrubbed == "import os\n\nKEY = '[REDACTED]'\nx = 1\n" and kinds == ["AWS Access Key"]
    plain = "café = 1\n" * 3
    assert Scrubber().text(plain, "a.py") == (plain, [])


def test_diff_lines_and_headers_scrub_the_content_only() -> None:
    lines = [" x = 1", f"-password = '{PASSWORD}'", f"+password = '{PASSWORD}x'", "+y = 2"]
    out, kinds = Scrubber().diff_lines(lines, "a.py")
    assert out == [" x = 1", "-password = '<SECRET>'", "+password = '<SECRET>'", "+y = 2"]
    assert kinds == ["Secret Keyword"] * 2
    header, kinds = Scrubber().header(f"@@ -1,2 +1,3 @@ TOKEN = '{GH_TOKEN}'", "a.py")
    assert header == "@@ -1,2 +1,3 @@ TOKEN = '<SECRET>'" and kinds == ["GitHub Token"]


def test_messages() -> None:
    message = f"Rotate keys\n\nThe old one was {AWS_KEY}; use password={PASSWORD}\n\n{PEM}"
    scrubbed, kinds = Scrubber().message(message)
    assert AWS_KEY not in scrubbed and PASSWORD not in scrubbed and "MIIE" not in scrubbed
    assert sorted(kinds) == ["AWS Access Key", "Private Key", "Secret Keyword"]
    assert scrubbed.startswith("Rotate keys\n\nThe old one was <SECRET>; use password=<SECRET>")
    assert Scrubber().message("Fix password: reset flow\n") == ("Fix password: reset flow\n", [])


def test_private_keys_take_the_whole_text() -> None:
    assert has_private_key("x = 1\n" + PEM)
    assert not has_private_key("parse a private key from the file\n")


def test_no_secret_reaches_the_parquet_file(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "repo")
    r.commit("Add settings", {"settings.py": "DEBUG = False\n", "notes.md": "# notes\n"})
    r.commit(
        f"Configure deploys\n\nUses {GH_TOKEN} for the registry.\n",
        {
            "settings.py": f"DEBUG = False\nAWS_KEY = '{AWS_KEY}'\npassword = '{PASSWORD}'\n",
            "deploy.sh": f"curl -H 'Authorization: token {GH_TOKEN}' https://x.example\n",
        },
    )
    r.commit("Add the deploy key", {"keys/deploy.pem": PEM})
    r.commit("Tune settings", {"settings.py": f"DEBUG = True\nAWS_KEY = '{AWS_KEY}'\n"})
    out = tmp_path / "run"
    stats = run_mine(r.path, out, MineConfig())
    assert stats["kept"] == 4
    table = pq.read_table(out / "commits.parquet")
    dump = repr(table.to_pylist())
    for secret in (AWS_KEY, GH_TOKEN, PASSWORD, "MIIEowIBAAKCAQEA0Z3VS5JJ"):
        assert secret not in dump
    assert "<SECRET>" in dump
    assert stats["secrets_replaced"]["AWS Access Key"] >= 2
    assert stats["secrets_replaced"]["Private Key"] == 1
    assert {"GitHub Token", "Secret Keyword"} <= set(stats["secrets_replaced"])
    commits = {c.message.split("\n")[0]: c for c in read_commits(out / "commits.parquet")}
    pem = file_at(commits["Add the deploy key"], "keys/deploy.pem")
    assert (pem.skip_reason, pem.after, pem.hunks) == ("secret", None, [])
    tuned = commits["Tune settings"]
    settings = file_at(tuned, "settings.py")
    # scrubbing replaces inside lines: the record still diffs as git says
    assert {f.path: (f.added, f.deleted) for f in tuned.files} == git_numstat(r, tuned.sha)
    assert settings.before.splitlines()[1:] == ["AWS_KEY = '<SECRET>'", "password = '<SECRET>'"]
    assert settings.after == "DEBUG = True\nAWS_KEY = '<SECRET>'\n"
    assert [line for h in settings.hunks for line in h.lines] == [
        "-DEBUG = False",
        "+DEBUG = True",
        " AWS_KEY = '<SECRET>'",
        "-password = '<SECRET>'",
    ]
    assert "<SECRET> for the registry" in commits["Configure deploys"].message


def test_scrubbing_can_be_turned_off(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "repo")
    r.commit("Add settings", {"settings.py": f"AWS_KEY = '{AWS_KEY}'\n"})
    stats = run_mine(r.path, tmp_path / "run", MineConfig(scrub_secrets=False))
    assert stats["secrets_replaced"] == {}
    [commit] = read_commits(tmp_path / "run" / "commits.parquet")
    assert AWS_KEY in commit.files[0].after


def test_versions_scrubbed_from_each_other_as_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text is scrubbed from the other side of its diff plus the changed lines; that gives
    what scanning every text from scratch gives, secrets or not, for every kind of edit."""
    from repotune.mine.history import CommitMiner

    creds = "url = 'https://admin:hunter2hunter2@db.example.com/x'\n"
    body = "".join(f"x{i} = {i}\n" for i in range(30))
    r = GitRepo(tmp_path / "repo")
    r.commit("Add", {"db.py": creds + body, "app.py": body, "crlf.txt": "a\r\nb\r\n"})
    r.commit("Same secret twice", {"db.py": creds + body + creds})  # a secret line repeats
    r.commit("Edit around it", {"db.py": creds + body.replace("x3 ", "y3 ") + creds + "z = 1"})
    r.commit("New secret", {"app.py": body + f"password = '{PASSWORD}'\n", "crlf.txt": "a\r\nc"})
    r.commit("Secret gone", {"db.py": body, "app.py": body.replace("x1 ", "k1 ")})
    r.git("mv", "app.py", "config.yaml")  # a rename: another file type, same blob
    r.commit("Move", {"config.yaml": body + f"db_password: {PASSWORD}\n"})
    r.commit("Key", {"db.py": body + PEM})  # a private key appears in a changed line
    r.commit("Latin-1", {"db.py": body.encode() + b"caf\xe9 = 1\n", "notes.md": "x\n"})
    r.commit("Back", {"db.py": creds + body})
    cfg = {"max_changed_lines": None, "encoding_fallback": "latin-1", "dedup": "off"}
    derived = mine(r, **cfg)

    def scan_everything(self, blob, patch, sign, other, path):  # type: ignore[no-untyped-def]
        return self._read_side(blob, path)

    monkeypatch.setattr(CommitMiner, "_derived_side", scan_everything)
    assert derived == mine(r, **cfg)
    dump = repr(derived)
    assert "hunter2hunter2" not in dump and PASSWORD not in dump and "MIIEow" not in dump
    key = file_at(next(c for c in derived[0] if c.message == "Key\n"), "db.py")
    assert key.skip_reason == "secret"
