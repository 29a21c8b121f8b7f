"""Sandbox launcher: run as `python -I _jail.py SPEC_JSON`, it isolates itself, then execs.

Stdlib only and run as a script (not imported by the parent), so it starts fast, has no
threads (fork and namespace calls are safe) and can be read in one go. Steps, each applied where
the OS allows and reported in a status file the parent reads:

1. namespaces: mount + PID + network (root directly; others inside a new user namespace that
   maps only their own uid, so nothing gains privilege);
2. mounts: an empty tmpfs over hidden folders ($HOME) with a few kept paths (the Python
   install) bound back read-only, private size-limited tmpfs on /tmp, /var/tmp and /dev/shm,
   the scratch folder bound back writable, and the user's checkout bound read-only;
3. a PID-1 child that reaps, so when the command ends every process it left dies with the
   namespace, even ones that left the process group;
4. in the command's process: rlimits, no-new-privs, and as root a switch to an unprivileged uid
   (RLIMIT_NPROC is not enforced for root) inside its own user namespace, so parallel sandboxes
   sharing that uid each get their own process count.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
ST_RELATIME = 4096
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None):
    enc = [None if s is None else s.encode() for s in (src, dst, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {dst}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _bind_fd(fd: int, dst: str, readonly: bool) -> None:
    """Bind what `fd` points at onto `dst`; read-only keeps the flags a user namespace locks."""
    os.makedirs(dst, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", dst, None, MS_BIND | MS_REC)
    if readonly:
        f = os.statvfs(dst).f_flag
        kept = f & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
        kept |= MS_RELATIME if f & ST_RELATIME else 0
        _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _namespaces(spec: dict, applied: dict) -> None:
    flags = CLONE_NEWNS | CLONE_NEWPID | (0 if spec["network"] else CLONE_NEWNET)
    if os.geteuid() == 0:
        _unshare(flags)
    else:
        uid, gid = os.getuid(), os.getgid()
        _unshare(CLONE_NEWUSER | flags)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        applied["user_ns"] = True
    applied.update(mount_ns=True, pid_ns=True, net_ns=not spec["network"])


def _mounts(spec: dict, applied: dict) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    hidden = [p for p in spec["hide"] if os.path.isdir(p)]
    tmps = [p for p in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(p)]
    covered = hidden + tmps
    # Open what must stay reachable before it is covered; bind it back from the fd after.
    keep = [(os.open(p, os.O_PATH), p) for p in spec["keep"] if os.path.exists(p)]
    keep = [(fd, p) for fd, p in keep if any(_under(p, c) for c in covered)]
    writable = [(os.open(p, os.O_PATH), p) for p in spec["writable"]]
    for path in hidden:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path in tmps:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmp_mb']}m,mode=1777")
    for fd, path in keep:
        _bind_fd(fd, path, readonly=True)
    for fd, path in writable:
        _bind_fd(fd, path, readonly=False)
    readonly = []
    for path in spec["readonly"]:
        if os.path.isdir(path) and not any(_under(path, c) for c in covered):
            fd = os.open(path, os.O_PATH)
            _bind_fd(fd, path, readonly=True)
            readonly.append(path)
    applied.update(hidden=hidden, private_tmp=tmps, readonly=readonly)


def _limit(name: str, value: int | None, hard_extra: int = 0) -> None:
    if value is not None:
        resource.setrlimit(getattr(resource, name), (value, value + hard_extra))


def _exec_command(spec: dict) -> None:
    """In the command's own process: limits, identity, then exec (never returns)."""
    try:
        lim = spec["limits"]
        _limit("RLIMIT_CPU", lim["cpu"], hard_extra=1)  # SIGXCPU first, so logs say why
        _limit("RLIMIT_AS", lim["as"])
        _limit("RLIMIT_FSIZE", lim["fsize"])
        _limit("RLIMIT_NOFILE", lim["nofile"])
        _limit("RLIMIT_CORE", 0)
        if os.geteuid() == 0 and spec["uid"] is not None:
            os.setgroups([])
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])
            try:  # own process count, not shared with other sandboxes running as this uid
                _unshare(CLONE_NEWUSER)
            except OSError:
                pass
        nproc = lim["nproc"]
        if nproc is not None and spec["nproc_extra"]:
            nproc += spec["nproc_extra"]
        _limit("RLIMIT_NPROC", nproc)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.chdir(spec["cwd"])
        os.umask(0o022)
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except BaseException as exc:  # noqa: BLE001 - report any failure as the command's output
        print(f"[sandbox] could not start the command: {exc}", file=sys.stderr, flush=True)
        os._exit(126)


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = {
            signal.SIGXCPU: " (CPU time limit)",
            signal.SIGXFSZ: " (file size limit)",
            signal.SIGKILL: "",
        }.get(sig, "")
        print(f"[sandbox] killed by {signal.Signals(sig).name}{why}", file=sys.stderr, flush=True)
        return 128 + sig
    return os.WEXITSTATUS(status)


def _init(spec: dict, pid_ns: bool) -> None:
    """PID 1 of the namespace (or a plain parent without one): run the command, reap all."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if pid_ns:
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            pass  # the host's /proc stays; other users' processes are still not readable
    child = os.fork()
    if child == 0:
        _exec_command(spec)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            os._exit(_status_code(status))


def main() -> None:
    spec = json.loads(sys.argv[1])
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    status_fd = os.open(spec["status"], os.O_WRONLY | os.O_TRUNC)
    applied: dict = {"user_ns": False, "mount_ns": False, "pid_ns": False, "net_ns": False}
    if spec["namespaces"]:
        try:
            _namespaces(spec, applied)
        except OSError as exc:
            applied["ns_error"] = str(exc)
    if applied["mount_ns"]:
        try:
            _mounts(spec, applied)
        except OSError as exc:  # e.g. a user namespace without capabilities (AppArmor)
            applied.update(mount_ns=False, mount_error=str(exc), hidden=[], private_tmp=[])
    root = os.geteuid() == 0
    applied["uid"] = spec["uid"] if root and spec["uid"] is not None else os.getuid()
    if applied["user_ns"]:  # this launcher and PID 1 count against the limit too
        spec["nproc_extra"] = 2
    elif not applied["pid_ns"] and not root:
        # RLIMIT_NPROC counts every process of this uid on the machine: add what already runs.
        spec["nproc_extra"] = _count_own_processes()
    if spec.get("probe") and root and spec["uid"] is not None:
        applied["own_nproc"] = _can_unshare_user_as(spec["uid"], spec["gid"])
    os.write(status_fd, json.dumps(applied).encode())
    os.close(status_fd)
    child = os.fork()
    if child == 0:
        _init(spec, applied["pid_ns"])
    _, status = os.waitpid(child, 0)
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def _can_unshare_user_as(uid: int, gid: int) -> bool:
    """Whether the command's process will get its own user namespace (own process count)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            _unshare(CLONE_NEWUSER)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _count_own_processes() -> int:
    uid = os.getuid()
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                n += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return n


if __name__ == "__main__":
    main()
