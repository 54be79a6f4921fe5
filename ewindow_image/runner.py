# SPDX-License-Identifier: MIT
"""The one place that runs external commands.

Logic elsewhere builds argv lists (``list[str]``) and hands them here; this keeps command
construction testable without running anything. Built on the ``sh`` library, whose
per-line output callbacks stream into the build log as the command runs.
"""

from __future__ import annotations

import os
import shlex
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

import sh

from .errors import CommandError, HostError
from .log import OUTPUT, log

Argv = Sequence[str | os.PathLike[str]]

BASE_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def run(argv: Argv, *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        input_text: str | None = None, capture: bool = False) -> str:
    """Run ``argv``; log it and stream its output to the log; raise CommandError on failure.

    Returns the captured stdout when ``capture`` is true (then stdout is not logged).
    """
    args = [os.fspath(a) for a in argv]
    log.debug("+ %s", shlex.join(args))
    full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **BASE_ENV}
    if "TERM" in os.environ:
        full_env["TERM"] = os.environ["TERM"]
    full_env.update(env or {})
    tail: deque[str] = deque(maxlen=5)
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

    try:
        command = sh.Command(args[0])
    except sh.CommandNotFound:
        raise HostError(f"command not found: {args[0]}",
                        hint="run 'make host-deps' to install the build host's tools") from None
    try:
        command(*args[1:], _env=full_env, _cwd=os.fspath(cwd) if cwd else None,
                _in=input_text, _out=on_stdout, _err=on_line, _tee=False)
    except sh.ErrorReturnCode as exc:
        last = next((ln for ln in reversed(tail) if ln.strip()), "")
        log.debug("'%s' exited with %d", args[0], exc.exit_code)
        raise CommandError(args, exc.exit_code, last) from None
    except sh.SignalException as exc:
        raise CommandError(args, -abs(exc.exit_code), "killed by a signal") from None
    return "".join(captured)


def spawn(argv: Argv, *, env: Mapping[str, str] | None = None) -> sh.RunningCommand:
    """Start ``argv`` in the background (for a VM); the caller stops it with ``.terminate()``."""
    args = [os.fspath(a) for a in argv]
    log.debug("+ %s &", shlex.join(args))
    full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **BASE_ENV,
                **(env or {})}
    try:
        command = sh.Command(args[0])
    except sh.CommandNotFound:
        raise HostError(f"command not found: {args[0]}",
                        hint="run 'make host-deps' to install the build host's tools") from None
    running: sh.RunningCommand = command(*args[1:], _env=full_env, _bg=True,
                                         _bg_exc=False, _out=os.devnull, _err=os.devnull)
    return running
