# SPDX-License-Identifier: MIT
"""Nothing a build starts outlives it, however it ends (README "Rebuilding only what changed").

A command that builds runs in a PID namespace of its own::

    build.py            the host's process: waits, passes SIGINT, SIGTERM, SIGHUP on
      └─ init           pid 1 of the namespace: reaps orphans, passes the signals on
           └─ builder   runs the command; everything it starts is in the namespace

When pid 1 of a namespace ends, the kernel kills every process in it (pid_namespaces(7),
https://man7.org/linux/man-pages/man7/pid_namespaces.7.html), grandchildren included, and
whatever session or process group they made for themselves. init ends when the builder ends,
by any means (a crash, the OOM killer), and is killed with the host's process
(PR_SET_PDEATHSIG, prctl(2)), so ``kill -9`` of build.py stops mmdebstrap, the emulated
dpkg under it and a half-done ``cp -a`` at once. A signal to the whole process tree is not
enough: the builder starts each command in a session of its own (so that Ctrl-C reaches the
builder first), and those sessions would survive it.

The namespace has a mount namespace of its own too, with a private /dev/shm: what its
processes leave there (libfaketime's pid-named objects, pipeline/clockahead.py says why that
matters) goes with it, and the mounts the build makes stay private to it.

Also here: which processes use a folder (an earlier build's that are still ending), read
from /proc like fuser(1).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWPID = 0x20000000  # sched.h
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000  # sys/mount.h
PR_SET_PDEATHSIG = 1  # prctl.h
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
INSIDE = "EWINDOW_PID_NAMESPACE"  # set in the namespace: a nested build.py stays in it


def exit_status(wait_status: int) -> int:
    """A shell's exit status for a wait status: the code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


def run_isolated(body: Callable[[], int]) -> int:
    """Run ``body`` in a PID namespace of its own and return its exit status.

    Needs root (CAP_SYS_ADMIN); without it, or inside such a namespace already, ``body`` runs
    here as it is."""
    if os.geteuid() != 0 or os.environ.get(INSIDE):
        return body()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWPID) != 0:  # e.g. a container that forbids it
        _debug("no PID namespace: %s", os.strerror(ctypes.get_errno()))
        return body()
    alive_read, alive_write = os.pipe()  # EOF for init when this process is gone
    sys.stdout.flush()
    sys.stderr.flush()
    init = os.fork()  # pid 1 of the new namespace
    if init == 0:
        os.close(alive_write)
        _init(libc, alive_read, body)
    os.close(alive_read)
    # After unshare, a fork from here would land in the namespace, which is gone once init
    # ends: this process only waits.
    for signum in FORWARDED:
        signal.signal(signum, lambda signum, frame: _send(init, signum))
    _, wait_status = os.waitpid(init, 0)
    _say_if_killed(wait_status)
    return exit_status(wait_status)


def _say_if_killed(wait_status: int) -> None:
    if os.WIFSIGNALED(wait_status):
        with contextlib.suppress(OSError):
            print(f"error: the builder was killed ({signal.Signals(os.WTERMSIG(wait_status)).name}), "
                  "and every process it had started with it; nothing unfinished is kept",
                  file=sys.stderr, flush=True)


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _init(libc: ctypes.CDLL, alive: int, body: Callable[[], int]) -> None:
    """pid 1: start the builder, pass signals on, reap every child, end with the builder."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if select.select([alive], [], [], 0)[0]:  # the host's process died before prctl
        os._exit(137)
    _private_shm(libc)
    # Its own process group: a Ctrl-C on the terminal reaches the host's process alone,
    # which passes it on once.
    os.setpgid(0, 0)
    os.environ[INSIDE] = "1"
    builder = 0
    pending: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if builder:
            _send(builder, signum)
        else:
            pending.append(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    builder = os.fork()
    if builder == 0:
        _builder(alive, body)
    for waiting in pending:
        _send(builder, waiting)
    while True:
        try:
            pid, wait_status = os.wait()  # orphans are reparented to pid 1: reap them too
        except ChildProcessError:
            os._exit(70)
        if pid == builder:
            _say_if_killed(wait_status)
            os._exit(exit_status(wait_status))


def _private_shm(libc: ctypes.CDLL) -> None:
    """A mount namespace whose mounts stay in it, with an empty tmpfs on /dev/shm; where that
    cannot be had (a container that forbids it), the host's, as before."""
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        _debug("no mount namespace: %s", os.strerror(ctypes.get_errno()))
        return
    if libc.mount(b"shm", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=1777") != 0:
        _debug("no private /dev/shm: %s", os.strerror(ctypes.get_errno()))


def _debug(message: str, *args: object) -> None:
    logging.getLogger("ewindow").debug(message, *args)


def _builder(alive: int, body: Callable[[], int]) -> None:
    os.close(alive)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    status = 70
    try:
        status = body()
    finally:
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # the terminal went away (SIGHUP)
            pass
        os._exit(status)


@dataclass(frozen=True)
class Process:
    pid: int
    name: str

    def __str__(self) -> str:
        return f"{self.pid} {self.name}"


def processes_using(folders: Sequence[Path], files: Sequence[Path] = ()) -> list[Process]:
    """Processes (other than this one) whose root, working folder or an open file is under
    one of ``folders``, or that hold one of ``files`` open: fuser(1), from /proc (the pids as
    /proc's namespace numbers them)."""
    prefixes = tuple(os.fspath(f).rstrip("/") + "/" for f in folders)
    wanted = {(s.st_dev, s.st_ino) for s in (_stat(f) for f in files) if s is not None}
    me = os.readlink("/proc/self")
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or entry.name == me:
            continue
        if _uses(Path(entry.path), prefixes, wanted):
            found.append(Process(int(entry.name), _name(Path(entry.path))))
    return sorted(found, key=lambda p: p.pid)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _uses(proc: Path, prefixes: tuple[str, ...], wanted: set[tuple[int, int]]) -> bool:
    links = [proc / "root", proc / "cwd"]
    try:
        links += [proc / "fd" / fd for fd in os.listdir(proc / "fd")]
    except OSError:  # gone, or a kernel thread
        pass
    for link in links:
        try:
            target = os.readlink(link)
        except OSError:
            continue
        if (target + "/").startswith(prefixes):
            return True
        if wanted and link.parent.name == "fd":
            found = _stat(link)
            if found is not None and (found.st_dev, found.st_ino) in wanted:
                return True
    return False


def _name(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return "?"


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses): field 3
    (the state) is item 0."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, /proc/PID/stat field 22): with
    the pid, it names one process, not a later one given the same pid."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def running(pid: int, started: int | None = None) -> bool:
    """``pid`` exists and has not ended (a zombie has); with ``started`` (its
    :func:`start_time`), it is still that process, not a later one given its pid."""
    fields = _stat_fields(pid)
    if not fields or fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, …), by /proc's parent ids."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def stop_descendants(grace: float = 5.0) -> list[int]:
    """SIGTERM every process this one started that still runs, SIGKILL what is left after
    ``grace`` seconds; returns their pids. For the clean-up of an interrupted step: a signal
    that came while a command was being started (``runner.run`` had no handle on it yet) left
    that command running, and mke2fs then created the .img.partial the clean-up had just
    deleted (the storm test, CI of 2026-12-03)."""
    stopped = descendants(os.getpid())
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(running(pid) for pid in stopped):
        time.sleep(0.05)
    for pid in stopped:
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    while any(running(pid) for pid in stopped) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    return stopped
