# SPDX-License-Identifier: MIT
"""One build at a time per cache: they share the work tree.

The lock is an flock(2) on ``build.lock`` in the cache, and every command the build runs
holds it too (runner.keep_open): a build killed with ``kill -9`` ends at once, but its
processes may take a moment more to go (a ``cp -a`` in the middle of a write). The lock file
names its owner (pid and start time), so the next build tells a live build, which it
refuses, from the remains of a dead one, which it waits for."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import runner
from ..errors import EWindowError
from ..log import log
from ..process_tree import processes_using, running, start_time

# How long a build waits for the processes of a killed one to end; the kernel kills them at
# once (their PID namespace is gone), so this is only for one stuck in I/O.
STRAY_WAIT = 60.0
INHERITED_FD = 100  # the lowest number the lock's descriptor may have (see exclusive)


def _owner_record() -> str:
    pid = int(os.readlink("/proc/self"))  # as the host numbers it, also inside a PID namespace
    return f"{pid} {start_time(pid)}\n"


def _owner_alive(record: str) -> tuple[int, bool] | None:
    """The recorded owner's pid and whether that very process still runs; None when the
    record is not one of ours."""
    fields = record.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return None
    pid, started = int(fields[0]), int(fields[1])
    return pid, running(pid, started)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def exclusive(lock_file: Path, *, wait: float = STRAY_WAIT) -> Iterator[None]:
    """Hold the cache's lock; refuse when a live build holds it, wait (up to ``wait``
    seconds) for the processes of a dead one that still hold it."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    opened = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    # Every command inherits the lock under this number: a high one, so that it takes none of
    # the low numbers a command's own files get. mmdebstrap hands apt a pipe by number for a
    # /bin/sh hook (`cat >&N`, https://gitlab.mister-muffin.de/josch/mmdebstrap, "Keep-Fds"),
    # and dash reads one digit only: an inherited fd 4 pushed that pipe to 10 under libfaketime
    # ("Syntax error: Bad fd number", verify-repro --cold).
    fd = fcntl.fcntl(opened, fcntl.F_DUPFD_CLOEXEC, INHERITED_FD)
    os.close(opened)
    try:
        if not _try_lock(fd):
            _wait_for_dead_owner(fd, lock_file, wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner_record().encode(), 0)
        with runner.keep_open(fd):
            yield
    finally:
        os.close(fd)


def _wait_for_dead_owner(fd: int, lock_file: Path, wait: float) -> None:
    owner = _owner_alive(os.pread(fd, 100, 0).decode(errors="replace"))
    if owner is None or owner[1]:
        named = f" (pid {owner[0]})" if owner else ""
        raise EWindowError(f"another build{named} is using {lock_file.parent}",
                           hint="wait for it, or pass a different --cache-dir")
    holders = processes_using([], [lock_file])
    log.warning("warning: build pid %d ended without stopping everything it started; waiting for "
                "its processes to end: %s", owner[0], ", ".join(map(str, holders)) or "(ending)")
    deadline = time.monotonic() + wait
    while not _try_lock(fd):
        if time.monotonic() > deadline:
            holders = processes_using([], [lock_file])
            raise EWindowError(f"processes of an earlier build still hold {lock_file} after {wait:.0f} s: "
                               f"{', '.join(map(str, holders)) or '(not found)'}",
                               hint="stop them (kill PID), then build again")
        time.sleep(0.2)


def wait_for_strays(folders: list[Path], wait: float = STRAY_WAIT) -> None:
    """With the lock held: wait until no process of an earlier build uses ``folders`` (its
    work tree, a half-stored snapshot); a killed build's processes are ending already."""
    strays = processes_using(folders)
    if not strays:
        return
    log.warning("warning: %d processes of an earlier build still use %s: waiting for them to end (%s)",
                len(strays), ", ".join(map(str, folders)), ", ".join(map(str, strays[:5])))
    deadline = time.monotonic() + wait
    while strays:
        if time.monotonic() > deadline:
            raise EWindowError(f"processes of an earlier build still use {folders[0].parent} after "
                               f"{wait:.0f} s: {', '.join(map(str, strays[:10]))}",
                               hint="stop them (kill PID), then build again")
        time.sleep(0.2)
        strays = processes_using(folders)
