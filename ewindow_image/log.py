# SPDX-License-Identifier: MIT
"""Console progress and the per-build log file.

The console gets one line per stage start/end; ``--verbose`` adds every command and its
output. The log file always gets everything, so a failed build can be read afterwards.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .interrupts import checkpoint

log = logging.getLogger("ewindow")

# Level for command output lines: below INFO so the console shows them only with --verbose.
OUTPUT = 15
logging.addLevelName(OUTPUT, "OUTPUT")


# What a terminal acts on instead of showing: C0 and C1 controls (escape sequences, a newline
# that makes one error two), line separators and bidirectional overrides ("Trojan Source").
# A file name, a manifest's entry or a tool's output may hold any of them.
TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f"
                               "\u202a-\u202e\u2066-\u2069]")


COLOURS = re.compile("\x1b\\[[0-9;]*m")  # SGR: bmaptool colours its "ERROR"


def terminal_safe(text: str) -> str:
    """``text`` without colours and with every other terminal control shown as its Python
    escape (a tab is kept)."""
    return TERMINAL_CONTROLS.sub(lambda m: repr(m.group())[1:-1], COLOURS.sub("", text))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record))


def setup_logging(verbose: bool, log_file: Path | None = None) -> None:
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    log.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(ConsoleFormatter("%(message)s"))
    log.addHandler(console)
    if log_file is not None:
        add_log_file(log_file)


def add_log_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Log start, end and duration of one unit of work."""
    checkpoint()
    log.info("==> %s", title)
    start = time.monotonic()
    try:
        yield
        checkpoint()
    except BaseException:
        log.info("<== %s failed after %.1f s", title, time.monotonic() - start)
        raise
    log.info("<== %s done in %.1f s", title, time.monotonic() - start)
