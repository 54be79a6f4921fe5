# SPDX-License-Identifier: MIT
"""Ctrl-C, SIGTERM and SIGHUP stop a command in order, even where Python would lose them.

The handlers raise KeyboardInterrupt wherever the main thread is. When that is inside a
weakref callback or a ``__del__``, Python cannot raise it there: it reports the exception as
"unraisable" and drops it (https://docs.python.org/3/library/sys.html#sys.unraisablehook). A
build meets such callbacks all the time: every command the runner starts (the sh library)
leaves Thread objects behind, and when the garbage collector frees them, the callback of
``threading._dangling`` (a WeakSet) runs. A SIGHUP that landed there was lost, and the build
went on to exit 0 (the storm test in CI: SIGHUP 0.2 s after an apt run ended).

:func:`install` sets the handlers and an unraisable hook that notes such a lost interrupt;
:func:`checkpoint` raises it again. The runner calls it before and after every command, and
``log.step`` at every step's start and end, so a lost interrupt stops the build within one
command; :func:`lost` tells the CLI that one was never raised again (exit 130, not 0).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

_lost = False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # `kill` and a dropped SSH session (SIGHUP) get the same orderly stop as Ctrl-C: running
    # commands are stopped, no unfinished stage or artifact is kept under a final name.
    raise KeyboardInterrupt


def _unraisable(unraisable: Any) -> None:
    global _lost
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _lost = True
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt like SIGINT; lost ones are noted."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    sys.unraisablehook = _unraisable


def checkpoint() -> None:
    """Raise the KeyboardInterrupt that Python dropped in a callback, once, in the main
    thread, which the signals interrupt (a background thread, pipeline/early.py, would take
    it from the main thread and end only itself)."""
    global _lost
    if _lost and threading.current_thread() is threading.main_thread():
        _lost = False
        raise KeyboardInterrupt


def lost() -> bool:
    """An interrupt was dropped and never raised again."""
    return _lost
