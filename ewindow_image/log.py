# SPDX-License-Identifier: MIT
"""Console progress and the per-build log file.

The console gets one line per stage start/end; ``--verbose`` adds every command and its
output. The log file always gets everything, so a failed build can be read afterwards.
"""

from __future__ import annotations

import logging
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


def setup_logging(verbose: bool, log_file: Path | None = None) -> None:
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    log.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
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
