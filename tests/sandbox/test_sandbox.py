"""Hostile candidates are contained and the host is untouched.

Limits are tight and timeouts short so the fork bomb stays harmless on a 2-core CI machine.
Containment of the file system needs either root (commands run as an unprivileged uid) or a
mount namespace; where this machine offers neither, those tests say so and skip.
"""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from repotune.sandbox import Limits, Sandbox, describe, isolation

PY = sys.executable


@pytest.fixture()
def fake_home(tmp_path, monkeypatch) -> Path:
    """A $HOME with a secret in it, so no test touches the real one."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("SECRET-KEY-MATERIAL\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-never-leak")
    return home


@pytest.fixture()
def checkout(tmp_path) -> Path:
    """The user's project: the sandbox must never change it."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    (repo / "keep.txt").write_text("precious\n")
    return repo


@pytest.fixture()
def sandbox(checkout, fake_home):
    with Sandbox(Limits(wall_seconds=5, memory_mb=512, max_processes=16), protect=[checkout]) as sb:
        yield sb


def _fs_contained() -> bool:
    applied = isolation()
    return bool(applied.get("hidden") or applied.get("root"))


def _run(sb: Sandbox, code: str, limits: Limits | None = None, marker: str = ""):
    folder = sb.scratch("hostile")
    (folder / "evil.py").write_text(textwrap.dedent(code))
    sb.hand_over(folder)
    return sb.run([PY, "evil.py", marker], folder, limits)


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                pass
    return found


def test_isolation_is_reported():
    applied = isolation()
    line = describe(applied)
    assert "rlimits" in line and "network" in line
    if os.geteuid() == 0:  # root: commands must not run as root
        assert applied["uid"] != 0


def test_runs_in_scratch_with_a_scrubbed_environment(sandbox, fake_home):
    res = _run(
        sandbox,
        """
        import os
        print("KEY", os.environ.get("OPENAI_API_KEY"))
        print("HOME", os.environ["HOME"])
        print("CWD", os.getcwd())
        """,
    )
    assert res.ok, res.output
    assert "KEY None" in res.output
    assert f"HOME {fake_home}" not in res.output
    assert "CWD " + str(sandbox.base.resolve()) in res.output


def test_refuses_to_run_outside_a_scratch_folder(sandbox, checkout):
    with pytest.raises(ValueError):
        sandbox.run("true", checkout)


def test_infinite_loop_is_killed_at_the_wall_clock_limit(sandbox):
    start = time.monotonic()
    res = _run(sandbox, "while True:\n    pass\n", Limits(wall_seconds=1))
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 4


def test_cpu_time_limit_kills_a_busy_process(sandbox):
    res = _run(sandbox, "while True:\n    pass\n", Limits(wall_seconds=10, cpu_seconds=1))
    assert not res.timed_out
    assert res.returncode != 0 and "SIGXCPU" in res.output


def test_fork_bomb_is_capped_and_every_process_dies(sandbox):
    marker = f"bomb-{uuid.uuid4().hex}"
    counted = _run(
        sandbox,
        """
        import os, time
        n = 0
        try:
            while n < 200:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                n += 1
        except OSError:
            pass
        print("forked", n, flush=True)
        """,
        Limits(wall_seconds=5, max_processes=8),
        marker,
    )
    forked = int(counted.output.split("forked")[1].split()[0])
    assert forked < 8, counted.output  # the cap held (a few slots go to the command itself)
    assert not _processes_with(marker)  # its sleeping children died with it

    bomb = _run(
        sandbox,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        Limits(wall_seconds=1.5, max_processes=8, cpu_seconds=2),
        marker,
    )
    assert bomb.timed_out or bomb.returncode != 0
    time.sleep(0.2)
    assert not _processes_with(marker)


def test_memory_bomb_hits_the_memory_limit(sandbox):
    res = _run(
        sandbox,
        """
        chunks = []
        while True:
            chunks.append(bytearray(50 * 1024 * 1024))
        """,
        Limits(wall_seconds=10, memory_mb=256),
    )
    assert not res.timed_out
    assert res.returncode != 0 and "MemoryError" in res.output


def test_processes_that_leave_the_group_still_die(sandbox):
    marker = f"escape-{uuid.uuid4().hex}"
    res = _run(
        sandbox,
        """
        import os, subprocess, sys
        subprocess.Popen(["sleep", "30", sys.argv[1]], start_new_session=True)
        print("started", flush=True)
        """,
        Limits(wall_seconds=5),
        marker,
    )
    assert res.ok, res.output
    time.sleep(0.2)
    if not isolation().get("pid_ns"):
        for pid in _processes_with(marker):
            os.kill(pid, 9)
        pytest.skip("no PID namespace here: a process that calls setsid() can outlive a run")
    assert not _processes_with(marker)


def test_writing_and_deleting_outside_the_scratch_copy_is_contained(sandbox, checkout, fake_home):
    if not _fs_contained():
        pytest.skip("neither root nor a mount namespace here: the file system is not isolated")
    targets = [checkout / "pwned", fake_home / "pwned", Path("/etc/repotune-pwned")]
    res = _run(
        sandbox,
        f"""
        import os, shutil
        for path in {[str(t) for t in targets]!r}:
            try:
                open(path, "w").write("pwned")
                print("WROTE", path)
            except OSError as exc:
                print("denied", path, type(exc).__name__)
        for victim in ({str(checkout / "keep.txt")!r}, {str(fake_home / ".ssh" / "id_rsa")!r}):
            try:
                os.remove(victim)
                print("REMOVED", victim)
            except OSError as exc:
                print("denied", victim, type(exc).__name__)
        shutil.rmtree({str(checkout)!r}, ignore_errors=True)
        open("inside.txt", "w").write("fine")
        """,
    )
    assert res.ok, res.output
    for t in targets:
        assert not t.exists(), t
    assert (checkout / "keep.txt").read_text() == "precious\n"
    assert (fake_home / ".ssh" / "id_rsa").read_text() == "SECRET-KEY-MATERIAL\n"


def test_reading_home_is_denied(sandbox, fake_home):
    if not _fs_contained():
        pytest.skip("neither root nor a mount namespace here: $HOME is not hidden")
    res = _run(
        sandbox,
        f"""
        try:
            print(open({str(fake_home / ".ssh" / "id_rsa")!r}).read())
        except OSError as exc:
            print("denied", type(exc).__name__)
        """,
    )
    assert "SECRET-KEY-MATERIAL" not in res.output
    assert "denied" in res.output


def test_no_network_even_to_localhost(sandbox):
    if not isolation().get("net_ns"):
        pytest.skip("no network namespace here: network access is not blocked")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    res = _run(
        sandbox,
        f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
            print("CONNECTED")
        except OSError as exc:
            print("blocked", type(exc).__name__)
        """,
    )
    server.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing reached the host's listening socket
        server.accept()
    server.close()
    assert "blocked" in res.output and "CONNECTED" not in res.output


def test_output_is_bounded_and_file_size_limited(sandbox):
    res = _run(
        sandbox,
        """
        import sys
        with open("big.bin", "wb") as fh:
            fh.write(b"x" * (2 * 1024 * 1024))
        """,
        Limits(wall_seconds=5, file_size_mb=1),
    )
    assert res.returncode != 0  # Python ignores SIGXFSZ and gets EFBIG; C programs get killed
    assert "SIGXFSZ" in res.output or "File too large" in res.output
    chatty = _run(sandbox, "for i in range(200000):\n    print(i)\n")
    assert chatty.ok and len(chatty.output) <= sandbox.tail_chars
    assert chatty.output.rstrip().endswith("199999")
