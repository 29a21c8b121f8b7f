"""Run untrusted commands (model-written code and its tests) without trusting them.

Every run happens in a scratch folder, never the user's checkout, through `_jail.py`, which
isolates itself as far as the OS allows (namespaces, private /tmp, hidden $HOME, unprivileged
uid, rlimits) and reports what it applied; see `isolation()` and docs/evaluate.md. Here the
parent adds what it alone can do: a scrubbed environment, a wall-clock limit enforced by killing
the whole process group (and with it the PID namespace), and output captured to a file so a
chatty or hostile command cannot flood memory.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_JAIL = Path(__file__).with_name("_jail.py")
_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits; CPU seconds default to the wall-clock limit (rounded up)."""

    wall_seconds: float = 60.0
    cpu_seconds: int | None = None
    memory_mb: int | None = 4096  # RLIMIT_AS per process (EvalPlus uses 4 GiB)
    max_processes: int | None = 64
    file_size_mb: int | None = 64
    open_files: int = 256
    tmp_mb: int = 256  # size of the private /tmp, /var/tmp, /dev/shm
    network: bool = False


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    output: str  # the tail of stdout and stderr together
    error: str | None = None  # the sandbox itself failed: not the command's fault

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and self.returncode == 0


@dataclass
class Sandbox:
    """A policy (limits, identity, what to hide or protect) and a scratch area for its runs.

    `protect`: folders bound read-only (the user's checkout, the run directory).
    `read_paths`: folders kept readable under hidden ones (toolchains under $HOME); the
    running Python's installation is always kept so `python` works in commands.
    `uid`/`gid`: the identity commands run as when repotune runs as root.
    """

    limits: Limits = field(default_factory=Limits)
    protect: Sequence[Path] = ()
    read_paths: Sequence[Path] = ()
    uid: int | None = 65534
    gid: int | None = 65534
    namespaces: bool = True
    tail_chars: int = 6000
    _base: Path | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- scratch folders -------------------------------------------------------------------
    @property
    def base(self) -> Path:
        with self._lock:  # worker threads share one sandbox
            if self._base is None:
                self._base = Path(tempfile.mkdtemp(prefix="repotune-sandbox-"))
                self._base.chmod(0o711)  # the sandbox uid may pass through, not list
            return self._base

    def scratch(self, name: str = "run") -> Path:
        """A new empty folder for one run; fill it, then call `hand_over`."""
        return Path(tempfile.mkdtemp(prefix=f"{_safe(name)}-", dir=self.base))

    def hand_over(self, folder: Path) -> None:
        """Make a filled scratch folder the sandbox user's (a no-op unless running as root)."""
        if not _is_root() or self.uid is None:
            return
        gid = self.gid if self.gid is not None else self.uid
        os.chown(folder, self.uid, gid)
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, gid, follow_symlinks=False)

    def remove(self, folder: Path) -> None:
        _rmtree(folder)

    def close(self) -> None:
        if self._base is not None:
            _rmtree(self._base)
            self._base = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        command: str | list[str],
        cwd: Path,
        limits: Limits | None = None,
        env: dict[str, str] | None = None,
        probe: bool = False,
    ) -> RunResult:
        """Run `command` (a shell line, or argv) in `cwd`, which must be a scratch folder."""
        lim = limits or self.limits
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        cwd = Path(cwd).resolve()
        if not _under(cwd, self.base.resolve()):
            raise ValueError(f"sandboxed runs need a scratch folder, not {cwd}")
        fd, log_path = tempfile.mkstemp(prefix=".log-", dir=self.base)
        sfd, status_path = tempfile.mkstemp(prefix=".status-", dir=self.base)
        os.close(sfd)
        spec = self._spec(argv, cwd, lim, env or {}, status_path, probe)
        start = time.monotonic()
        timed_out = False
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_JAIL), json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
                env={"PATH": _SAFE_PATH, "LANG": "C.UTF-8"},
            )
            try:
                proc.wait(timeout=lim.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc.pid)
            proc.wait()
            seconds = time.monotonic() - start
            output = _tail(log_path, self.tail_chars)
            status = Path(status_path).read_text(encoding="utf-8")
        finally:
            os.close(fd)
            Path(log_path).unlink(missing_ok=True)
            Path(status_path).unlink(missing_ok=True)
        if not status:
            return RunResult(None, False, seconds, output, error=f"sandbox failed: {output[-500:]}")
        result = RunResult(None if timed_out else proc.returncode, timed_out, seconds, output)
        if probe:
            result.error = None
            result.output = status
        return result

    def _spec(self, argv, cwd: Path, lim: Limits, env, status_path, probe) -> dict:
        mb = 1024 * 1024
        cpu = lim.cpu_seconds if lim.cpu_seconds is not None else math.ceil(lim.wall_seconds) + 1
        homes = sorted({str(h) for h in _homes() if str(h) != "/"})
        keep = {str(Path(p).resolve()) for p in (*_python_paths(), *self.read_paths)}
        return {
            "argv": argv,
            "cwd": str(cwd),
            "env": _clean_env(cwd, env),
            "status": status_path,
            "probe": probe,
            "namespaces": self.namespaces,
            "network": lim.network,
            "tmp_mb": lim.tmp_mb,
            "hide": homes,
            "keep": sorted(keep),
            "writable": [str(self.base.resolve())],
            # a folder holding the scratch area cannot be made read-only (the uid switch, where
            # there is one, still keeps commands out of it)
            "readonly": [
                str(Path(p).resolve())
                for p in self.protect
                if not _under(self.base.resolve(), Path(p).resolve())
            ],
            "uid": self.uid,
            "gid": self.gid if self.gid is not None else self.uid,
            "nproc_extra": 0,
            "limits": {
                "cpu": cpu,
                "as": lim.memory_mb * mb if lim.memory_mb else None,
                "fsize": lim.file_size_mb * mb if lim.file_size_mb else None,
                "nofile": lim.open_files,
                "nproc": lim.max_processes,
            },
        }


def isolation(sandbox: Sandbox | None = None) -> dict:
    """What the sandbox really enforces on this machine, found by running one probe."""
    sb = sandbox or Sandbox()
    return _probe(sb.uid, sb.gid, sb.namespaces)


@functools.cache
def _probe(uid: int | None, gid: int | None, namespaces: bool) -> dict:
    with Sandbox(uid=uid, gid=gid, namespaces=namespaces) as sb:
        where = sb.scratch("probe")
        sb.hand_over(where)
        res = sb.run("true", where, Limits(wall_seconds=20), probe=True)
    try:
        applied = json.loads(res.output)
    except json.JSONDecodeError:
        return {"error": res.error or res.output}
    root = _is_root()
    applied["root"] = root
    if root:
        applied["nproc"] = "own user namespace" if applied.get("own_nproc") else "shared by uid"
    elif applied["user_ns"]:
        applied["nproc"] = "own user namespace"
    else:
        applied["nproc"] = "uid-wide (limit raised by processes already running)"
    return applied


def describe(applied: dict) -> str:
    """One line for logs and reports: which isolation is in force."""
    if "error" in applied:
        return f"sandbox probe failed: {applied['error']}"
    parts = ["own process group", "rlimits (cpu, memory, file size, processes)"]
    uid = applied.get("uid")
    parts.append(f"uid {uid}" + (" (dropped from root)" if applied.get("root") else ""))
    parts.append(f"process count: {applied.get('nproc')}")
    ns = [n for n in ("user", "mount", "pid", "net") if applied.get(f"{n}_ns")]
    parts.append("namespaces: " + (", ".join(ns) if ns else "none"))
    parts.append("network: none" if applied.get("net_ns") else "network: NOT isolated")
    if applied.get("hidden"):
        parts.append("hidden: " + ", ".join(applied["hidden"]))
    if applied.get("private_tmp"):
        parts.append("private /tmp")
    return "; ".join(parts)


def copy_tree(src: Path, dst: Path, ignore: Sequence[str] = (".git",)) -> None:
    """Copy a project into a scratch folder (symlinks stay links, never followed out)."""
    shutil.copytree(
        src, dst, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*ignore)
    )


def _clean_env(cwd: Path, extra: dict[str, str]) -> dict[str, str]:
    """Only what builds and tests need: no API keys, tokens, proxies or the user's HOME."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}:{_SAFE_PATH}",
        "HOME": str(cwd),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }
    env.update(extra)
    return env


def _homes() -> list[Path]:
    """$HOME and the account's home from the password database (they can differ)."""
    import pwd

    homes = [Path.home().resolve()]
    try:
        homes.append(Path(pwd.getpwuid(os.getuid()).pw_dir).resolve())
    except KeyError:
        pass
    return homes


def _python_paths() -> list[str]:
    """The interpreter and every folder it imports from, read-only: an environment assembled by
    .pth files or PYTHONPATH (site.addsitedir of another venv, as under a private /tmp) must
    reach the same packages inside the sandbox as outside."""
    exe = Path(sys.executable)
    imports = [p for p in sys.path if p and os.path.isdir(p)]
    interpreter = [sys.prefix, sys.base_prefix, sys.exec_prefix, str(exe.resolve().parent.parent)]
    return [*interpreter, *imports]


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: str, chars: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - chars * 2))
        text = fh.read().decode("utf-8", errors="replace")
    return text[-chars:]


def _rmtree(folder: Path) -> None:
    def unlock(func, path, _exc):  # a command may leave read-only folders behind
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            func(path)
        except OSError:
            pass

    if Path(folder).exists():
        shutil.rmtree(folder, onerror=unlock)


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40] or "run"


def _is_root() -> bool:
    return os.geteuid() == 0
