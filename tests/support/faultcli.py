"""The real `repotune` CLI in child processes of one warm interpreter, each watched by an audit
hook that logs every file-system change under a folder and can `kill -9` the child (with its
worker processes) just before the Nth one.

Why a warm interpreter: importing torch, transformers and TRL costs ~10 s a process here, and a
kill sweep starts dozens of them. The server (this file run as a script) imports them once and
forks a child per command; the child sets `sys.argv` and calls `repotune.cli.main()`, so it is
the CLI a user runs, started in a fresh process group. The server runs no torch op before
forking, so the children start with no thread pools.

Why an audit hook (`sys.addaudithook`): Python raises an event before every `open`, rename,
remove, mkdir and rmtree, so a kill lands at an exact, repeatable point of a stage (for
example between writing a temp file and renaming it), and the log shows every path a stage
opened for writing. Writes done in native code (Parquet, safetensors) are not seen; the
renames that publish them are.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# audit event -> which of its arguments are paths it changes (copyfile's source is only read)
_CHANGES = {
    "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,),
    "shutil.rmtree": (0,), "shutil.copyfile": (1,), "os.truncate": (0,), "os.symlink": (1,),
    "os.link": (1,), "shutil.move": (0, 1),
}  # fmt: skip
_PRELOAD = (
    "torch", "transformers", "trl", "peft", "datasets", "pyarrow.parquet", "pygit2",
    "repotune.cli", "repotune.mine", "repotune.build", "repotune.train.sft",
    "repotune.evaluate.run", "repotune.report.markdown", "repotune.report.html",
)  # fmt: skip


TIMEOUT = 300  # seconds a command may run before the test calls it hung


# -- the client (used by tests) ---------------------------------------------------------------
@dataclass
class Result:
    rc: int  # negative: killed by that signal
    # file-system changes under `root` (written RUN), in order: {"n", "pid", "op", "paths"}
    events: list[dict]
    output: str  # stdout and stderr

    @property
    def killed(self) -> bool:
        return self.rc == -signal.SIGKILL


class WarmCLI:
    """Start `repotune ...` commands; `kill_at=N` kills the command just before its Nth change
    under `root` (counted in its main process; workers' changes are logged too), or with
    `kill_on=TEXT` its Nth change whose description (see `describe`) contains TEXT. The whole
    process group is killed, or with `main_only` only the main process (as the OOM killer
    does), at the Nth change of any of its processes (each counts its own)."""

    def __init__(self, work: Path) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        self._buffer = b""
        assert self._reply(120) == {"ready": True}
        self.calls = 0
        self.pid: int | None = None

    def start(
        self,
        *args: str,
        root: Path,
        kill_at: int | None = None,
        kill_on: str | None = None,
        main_only: bool = False,
        cwd: Path | None = None,
        readonly: Path | None = None,
    ) -> int:
        """Start a command; `readonly`: a folder the command sees on a read-only mount (root
        only: the child gets its own mount namespace)."""
        self.calls += 1
        self.log = self.work / f"{self.calls}.events"
        self.out = self.work / f"{self.calls}.out"
        request = {
            "argv": [str(a) for a in args],
            "root": str(Path(root).resolve()),
            "kill_at": kill_at if kill_on is None else (kill_at or 1),
            "kill_on": kill_on,
            "main_only": main_only,
            "cwd": str(cwd or self.work),
            "events": str(self.log),
            "output": str(self.out),
            "readonly": str(readonly) if readonly else None,
        }
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.pid = self._reply(60)["pid"]
        return self.pid

    def wait(self, timeout: float = TIMEOUT) -> Result:
        """The command's exit; one that hangs is killed, and the test fails."""
        try:
            rc = self._reply(timeout)["rc"]
        except TimeoutError:
            self.kill()
            self._reply(60)
            raise
        events = [json.loads(x) for x in self.log.read_text().splitlines()]
        return Result(rc, events, self.out.read_text(errors="replace"))

    def run(self, *args: str, root: Path, **kill) -> Result:
        self.start(*args, root=root, **kill)
        return self.wait()

    def kill(self) -> None:
        """kill -9 the running command and every process it started."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def _reply(self, timeout: float) -> dict:
        """The server's next line, read unbuffered so select() sees what is not read yet."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"no reply from the CLI server in {timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError("the CLI server died: see its traceback on stderr")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


def describe(event: dict) -> str:
    """`op path...` with the watched folder written RUN, e.g. `os.rename RUN/.x.tmp RUN/x`."""
    return " ".join([event["op"], *(p for p in event["paths"] if p)])


# -- the server and its children --------------------------------------------------------------
def _hook(root: str, kill_at: int | None, kill_on: str | None, main_only: bool, log_fd: int):
    main_pid = os.getpid()
    state = {"pid": main_pid, "n": 0, "hits": 0, "rmtree": None}

    def inside(path) -> str | None:
        if isinstance(path, int):
            return None
        path = os.path.abspath(os.fsdecode(path))
        return path if path == root or path.startswith(root + os.sep) else None

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            if args[2] is None or not args[2] & _WRITE:
                return
            paths = [inside(args[0])]
        elif event in _CHANGES:
            dir_fd = args[1] if event in ("os.remove", "os.rmdir") else None
            if event == "shutil.rmtree":
                state["rmtree"] = inside(args[0])
            if dir_fd not in (None, -1):  # a file inside the tree shutil.rmtree is removing
                if state["rmtree"] is None:
                    return
                paths = [os.path.join(state["rmtree"], "...", os.fsdecode(args[0]))]
            else:
                paths = [inside(args[i]) for i in _CHANGES[event]]
        else:
            return
        if not any(paths):
            return
        paths = [p and "RUN" + p[len(root) :] for p in paths]
        pid = os.getpid()
        if state["pid"] != pid:  # a forked worker counts its own changes
            state.update(pid=pid, n=0, hits=0)
        state["n"] += 1
        line = {"n": state["n"], "pid": pid, "op": event, "paths": paths}
        os.write(log_fd, (json.dumps(line) + "\n").encode())
        if kill_at is None or (pid != main_pid and not main_only):
            return
        state["hits"] += kill_on is None or kill_on in describe(line)
        if state["hits"] != kill_at:
            return
        if main_only:
            os.kill(main_pid, signal.SIGKILL)
        else:
            os.killpg(0, signal.SIGKILL)

    return hook


NO_READ_ONLY = 3  # exit code of a child that could not get its read-only mount


def _read_only(folder: str) -> None:
    """Bind `folder` read-only over itself in a mount namespace of this process alone."""
    from repotune.sandbox import _jail

    _jail._unshare(_jail.CLONE_NEWNS)
    _jail._mount(None, "/", None, _jail.MS_REC | _jail.MS_PRIVATE)
    _jail._bind_fd(os.open(folder, os.O_PATH), folder, readonly=True)
    probe = os.path.join(folder, ".write-probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_EXCL))
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return
        raise
    os.remove(probe)
    raise OSError(f"{folder} is still writable")


def _child(request: dict) -> None:
    os.setpgid(0, 0)
    out = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(0)
    if request["readonly"]:
        try:
            _read_only(request["readonly"])
        except OSError:
            traceback.print_exc()
            os._exit(NO_READ_ONLY)
    os.chdir(request["cwd"])  # after the mount: a cwd inside the folder must see it read-only
    log_fd = os.open(request["events"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.argv = ["repotune", *request["argv"]]
    kill = request["kill_at"], request["kill_on"], request["main_only"]
    sys.addaudithook(_hook(request["root"], *kill, log_fd))
    code = 1
    try:
        from repotune.cli import main

        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a crash is reported as exit 1 with its traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _serve() -> None:
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                _child(request)
            finally:
                os._exit(1)  # never back into this loop
        try:
            os.setpgid(pid, pid)  # also here: a kill right after the reply must find the group
        except (PermissionError, ProcessLookupError):
            pass
        print(json.dumps({"pid": pid}), file=reply, flush=True)
        _, status = os.waitpid(pid, 0)
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        print(json.dumps({"rc": rc}), file=reply, flush=True)


if __name__ == "__main__":
    _serve()
