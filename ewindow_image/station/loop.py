# SPDX-License-Identifier: MIT
"""The station: watch for cards, write up to ``parallel`` at once, each with the next free
name, record each in the station log, until Ctrl-C or ``count`` cards have ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyudev

from ..log import log
from . import devices
from .devices import Card
from .display import Display, Line
from .inventory import Names
from .record import Entry, Result, StationLog, now
from .writing import Image, Job, Outcome, write

POLL_S = 0.2


@dataclass(frozen=True)
class Settings:
    image: Image
    parallel: int
    count: int  # 0: until Ctrl-C
    named_devices: tuple[Path, ...]  # cards already in their readers, named with --device
    accept_globs: tuple[str, ...]  # test-only: non-removable disks that may be written
    deployment: Callable[[str], dict[str, Any]]  # a name's deployment.json ("" without inventory)


class Station:
    def __init__(self, settings: Settings, names: Names | None, record: StationLog,
                 display: Display) -> None:
        self.settings = settings
        self.names = names
        self.record = record
        self.display = display
        self.cancel = threading.Event()
        self.entries: list[Entry] = []
        self._lock = threading.Lock()

    def run(self, context: pyudev.Context | None = None) -> list[Entry]:
        """Until ``count`` cards have ended, or Ctrl-C (then the cards being written are
        stopped, recorded as interrupted and their names given back, and KeyboardInterrupt
        goes on)."""
        context = context or pyudev.Context()
        source = devices.event_source()
        watcher = devices.monitor(context, source)  # listening before the snapshot: no card is missed
        present = devices.present(context)
        s = self.settings
        log.info("station: watching for cards (%s events); never writes the %s present now; "
                 "writing up to %d at once; Ctrl-C to stop", source,
                 "disk" if len(present) == 1 else f"{len(present)} disks", s.parallel)
        seen: set[tuple[str, str]] = set(present)
        submitted = 0
        running: list[Future[Entry]] = []
        pool = ThreadPoolExecutor(max_workers=s.parallel, thread_name_prefix="card")
        with pool, self.display.running():
            try:
                arrivals = []
                for path in s.named_devices:
                    card = devices.named_card(context, path)
                    if card is None:
                        log.info("%s: no card in it, or not a whole disk; not written", path)
                    arrivals.append(card)
                while not s.count or len(self.entries) < s.count:
                    for card in arrivals:
                        wanted = not s.count or submitted < s.count
                        if card is not None and card.key not in seen and wanted:
                            seen.add(card.key)
                            running.append(pool.submit(self._card, *self._arrived(card)))
                            submitted += 1
                    for future in [f for f in running if f.done()]:
                        future.result()  # a worker's bug ends the station, with its traceback
                    running = [f for f in running if not f.done()]
                    event = watcher.poll(timeout=POLL_S)
                    arrivals = [devices.card_of(event)] if event is not None else []
            except KeyboardInterrupt:
                self.cancel.set()
                log.info("station: stopping; the cards being written are incomplete")
                pool.shutdown(wait=True, cancel_futures=False)
                self.display.summary(self.entries)
                raise
        self.display.summary(self.entries)
        return self.entries

    def _arrived(self, card: Card) -> tuple[Card, str, Line, float]:
        """A new card: its name now (two cards at once never get one name), its line shown
        as waiting until a writer is free."""
        arrived = time.monotonic()
        name = (self.names.reserve() or "") if self.names is not None else ""
        line = Line(card.device, name, self.settings.image.mapped)
        self.display.add(line)
        return card, name, line, arrived

    def _card(self, card: Card, name: str, line: Line, arrived: float) -> Entry:
        if self.names is not None and not name:
            outcome = Outcome(Result.REFUSED, "no free name left in the inventory")
        elif self.cancel.is_set():
            outcome = Outcome(Result.INTERRUPTED, "the station stopped before it was written")
        else:
            s = self.settings
            job = Job(card, s.image, name, s.deployment(name), s.accept_globs, arrived)
            outcome = write(job, lambda phase, done: self.display.update(line, phase, done), self.cancel)
        image = self.settings.image
        entry = Entry(now(), card.device, card.diskseq, card.size, card.serial, card.reader,
                      card.backing_file, name, str(image.path), image.sha256, outcome.result, outcome.error,
                      round(outcome.seconds, 2), round(outcome.mb_per_s, 1),
                      _rounded(outcome.first_byte_s), _rounded(outcome.after_last_byte_s))
        self.record.append(entry)  # the log first: a name is taken when the log says so
        if self.names is not None and name:
            (self.names.take if outcome.result is Result.WRITTEN else self.names.give_back)(name)
        with self._lock:
            self.entries.append(entry)
        self.display.finish(line, entry)
        return entry


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
