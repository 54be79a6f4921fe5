# SPDX-License-Identifier: MIT
"""What the admin sees: on a terminal, one live line per card (rich's progress display:
device, name, phase, bar, percent, MB/s, time left) and a table at the end; in a log or a
pipe, plain lines when a card changes phase, each quarter of a write, and at the end,
without escape sequences."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ..log import log
from .record import Entry, Result
from .writing import Phase


@dataclass(frozen=True)
class Line:
    device: str
    name: str
    total: int


class Display:
    """Plain lines (a log, a pipe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shown: dict[str, tuple[Phase, int]] = {}

    def add(self, line: Line) -> None:
        log.info("%s: card in (%s)", line.device, line.name or "named at first boot")

    def update(self, line: Line, phase: Phase, done: int) -> None:
        quarter = 4 * done // line.total if line.total else 0
        with self._lock:
            if self._shown.get(line.device) == (phase, quarter):
                return
            self._shown[line.device] = (phase, quarter)
        if phase is Phase.WRITING:
            log.info("%s: %s %d%%", line.device, phase.value, 25 * quarter)
        elif phase is not Phase.DONE:
            log.info("%s: %s", line.device, phase.value)

    def finish(self, line: Line, entry: Entry) -> None:
        with self._lock:
            self._shown.pop(line.device, None)
        log.info("%s: %s%s", line.device, describe(entry), f": {entry.error}" if entry.error else "")

    @contextmanager
    def running(self) -> Iterator[None]:
        yield

    def summary(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            log.info("  %-12s %-16s %-11s %6.1f MB/s %s", entry.device, entry.name or "-",
                     entry.result.value, entry.mb_per_s, entry.error)


def describe(entry: Entry) -> str:
    name = entry.name or "named at first boot"
    if entry.result is Result.WRITTEN:
        return (f"{name} written, verified and personalised in {entry.seconds:.1f} s "
                f"({entry.mb_per_s:.0f} MB/s)")
    if entry.name:
        return f"{entry.result.value}; {entry.name} given back"
    return entry.result.value


class LiveDisplay(Display):
    """One live line per card on a terminal (rich); log lines print above them."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.progress = Progress(
            TextColumn("{task.fields[device]:<12}"), TextColumn("{task.fields[name]:<16}"),
            TextColumn("{task.fields[phase]:<13}"), BarColumn(), TaskProgressColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self._tasks: dict[str, TaskID] = {}

    def add(self, line: Line) -> None:
        self._tasks[line.device] = self.progress.add_task(
            "", total=line.total or None, device=line.device, name=line.name or "-",
            phase=Phase.WAITING.value)

    def update(self, line: Line, phase: Phase, done: int) -> None:
        task = self._tasks.get(line.device)
        if task is not None:
            self.progress.update(task, completed=done, phase=phase.value)

    def finish(self, line: Line, entry: Entry) -> None:
        task = self._tasks.pop(line.device, None)
        if task is not None:
            if entry.result is Result.WRITTEN:
                self.progress.update(task, completed=line.total)
            self.progress.update(task, phase=entry.result.value)
            self.progress.stop_task(task)
        super().finish(line, entry)

    @contextmanager
    def running(self) -> Iterator[None]:
        original = sys.stderr
        handlers = [h for h in log.handlers if isinstance(h, logging.StreamHandler)
                    and getattr(h, "stream", None) is original]
        with self.progress:
            for handler in handlers:  # rich's stand-in for stderr prints above the live lines
                handler.setStream(sys.stderr)
            try:
                yield
            finally:
                for handler in handlers:
                    handler.setStream(original)

    def summary(self, entries: Sequence[Entry]) -> None:
        table = Table(title="cards")
        for column in ("device", "name", "result", "MB/s", "s", "note"):
            table.add_column(column)
        for entry in entries:
            table.add_row(entry.device, entry.name or "-", entry.result.value, f"{entry.mb_per_s:.0f}",
                          f"{entry.seconds:.1f}", entry.error)
        self.console.print(table)


def display_for(stream: object = None) -> Display:
    console = Console(file=stream or sys.stderr)  # type: ignore[arg-type]
    return LiveDisplay(console) if console.is_terminal else Display()
