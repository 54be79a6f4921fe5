# SPDX-License-Identifier: MIT
"""The one place that runs external commands.

Logic elsewhere builds argv lists (``list[str]``) and hands them here; this keeps command
construction testable without running anything. Built on the ``sh`` library, whose
per-line output callbacks stream into the build log as the command runs.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import sh

from . import interrupts
from .errors import CommandError, HostError
from .log import OUTPUT, log

Argv = Sequence[str | os.PathLike[str]]

TAIL_LINES = 40

BASE_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def run(argv: Argv, *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        input_text: str | None = None, capture: bool = False, ok_codes: Sequence[int] = (0,)) -> str:
    """Run ``argv``; log it and stream its output to the log; raise CommandError when it
    exits with a status not in ``ok_codes``.

    Returns the captured stdout when ``capture`` is true (then stdout is not logged). The
    command runs in its own session: when the build is interrupted (Ctrl-C, SIGTERM), its
    whole process group gets SIGTERM, then SIGKILL, before the interruption propagates, so
    nothing keeps writing into a tree the next build is about to reuse.
    """
    args = [os.fspath(a) for a in argv]
    interrupts.checkpoint()
    log.debug("+ %s", shlex.join(args))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    captured: list[str] = []

    def on_line(line: str) -> None:
        line = line.rstrip("\n")
        tail.append(line)
        log.log(OUTPUT, "  %s", line)

    def on_stdout(line: str) -> None:
        if capture:
            captured.append(line)
        else:
            on_line(line)

    command = _command(args[0])
    process = command(*args[1:], _env=_environment(env), _cwd=os.fspath(cwd) if cwd else None,
                      _in=input_text, _out=on_stdout, _err=on_line, _tee=False, _bg=True,
                      _bg_exc=False, _new_session=True, _ok_code=list(ok_codes),
                      _pass_fds=set(_KEPT_OPEN))
    try:
        process.wait()
    except sh.ErrorReturnCode as exc:
        last = next((ln for ln in reversed(tail) if ln.strip()), "")
        log.debug("'%s' exited with %d", args[0], exc.exit_code)
        raise CommandError(args, exc.exit_code, last, output="\n".join(tail)) from None
    except sh.SignalException as exc:
        raise CommandError(args, -abs(exc.exit_code), "killed by a signal",
                           output="\n".join(tail)) from None
    except BaseException:
        stop(process, args[0])
        raise
    interrupts.checkpoint()
    return "".join(captured)


def stop(process: sh.RunningCommand, name: str, grace: float = 30.0) -> None:
    """Stop a command's whole process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if not process.is_alive():
        return
    log.info("    stopping %s", name)
    try:
        process.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.is_alive():
            process.signal_group(signal.SIGKILL)
    except ProcessLookupError:
        pass


def _command(name: str) -> sh.Command:
    try:
        return sh.Command(name)
    except sh.CommandNotFound:
        raise HostError(f"command not found: {name}",
                        hint="run 'make host-deps' to install the build host's tools") from None


# Open in every command (the build lock, see pipeline/lock.py) while :func:`keep_open` is active.
_KEPT_OPEN: set[int] = set()


@contextmanager
def keep_open(fd: int) -> Iterator[None]:
    """Every command run inside the ``with`` inherits ``fd`` (and keeps it until it ends)."""
    os.set_inheritable(fd, True)
    _KEPT_OPEN.add(fd)
    try:
        yield
    finally:
        _KEPT_OPEN.discard(fd)
        os.set_inheritable(fd, False)


# Added to every command's environment while :func:`extra_environment` is active (the clock
# moved ahead for verify-repro's second build).
_EXTRA_ENV: dict[str, str] = {}


@contextmanager
def extra_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Give every command run inside the ``with`` these variables as well."""
    saved = dict(_EXTRA_ENV)
    _EXTRA_ENV.update(env)
    try:
        yield
    finally:
        _EXTRA_ENV.clear()
        _EXTRA_ENV.update(saved)


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **BASE_ENV}
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    env.update(_EXTRA_ENV)
    env.update(extra or {})
    return env


def spawn(argv: Argv, *, env: Mapping[str, str] | None = None,
          stderr: Path | None = None) -> sh.RunningCommand:
    """Start ``argv`` in the background (for a VM); the caller stops it with :func:`stop`.

    ``stderr`` keeps what the command says on its standard error in that file, so a caller
    can show it when the command ends before it should (:func:`exit_status`, :func:`tail`)."""
    args = [os.fspath(a) for a in argv]
    interrupts.checkpoint()
    log.debug("+ %s &", shlex.join(args))
    err: str | int = os.fspath(stderr) if stderr is not None else os.devnull
    running: sh.RunningCommand = _command(args[0])(
        *args[1:], _env=_environment(env), _bg=True, _bg_exc=False, _new_session=True,
        _out=os.devnull, _err=err, _pass_fds=set(_KEPT_OPEN))
    return running


def exit_status(process: sh.RunningCommand) -> int | None:
    """A background command's exit status once it has ended (negative: the signal that
    killed it), or None while it runs."""
    if process.is_alive():
        return None
    status: int | None = process.process.exit_code
    return status


def tail(path: Path, lines: int = 5) -> str:
    """The last non-empty ``lines`` of a command's output file, joined with ' | '."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][-lines:])
