# SPDX-License-Identifier: MIT
"""Source packages compiled while the emulated stages run (issue 21).

Stage 00-base is emulated dpkg under qemu-user: one busy core for ~4 minutes. PeerVPN and
cjdns are cross-compiled natively (~50 s with their sysroots), and were built one after the
other just before stage 35-vpn, which installs them: +26 % on a cold build while a core
idled. They now build in a background thread from the start of the stages; the stage that
installs them waits for it (most often it has long finished).

- One thread, one package at a time, in plan order: the second core, not more.
- A failure is raised in the main thread at the next stage boundary, as the build's own
  error (exit status and one-line message as before), after the thread's log said it.
- Interrupts stay the main thread's (:func:`interrupts.checkpoint` does nothing elsewhere).
  A build that stops for any reason stops the thread's command with every other process it
  started (:func:`process_tree.stop_descendants`); the thread is a daemon, so it never holds
  the builder's exit, and a package it had not finished stays a ``.partial`` that the next
  build replaces.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from .. import interrupts
from ..log import log
from ..packages.service import PlannedPackage, SourcePackages

WAIT_SLICE_S = 0.5  # the main thread's wait, in slices, so an interrupt is seen at once


class EarlyPackages:
    """Builds ``planned`` packages the cache lacks in one background thread."""

    def __init__(self, sources: SourcePackages, planned: Iterable[PlannedPackage]) -> None:
        self.sources = sources
        self.todo: Sequence[PlannedPackage] = [p for p in planned if not p.cached]
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.todo:
            self.done.set()
            return
        log.info("    building %s in the background", ", ".join(p.label for p in self.todo))
        self.thread = threading.Thread(target=self._build, name="source-packages", daemon=True)
        self.thread.start()

    def _build(self) -> None:
        try:
            for planned in self.todo:
                self.sources.ensure(planned)
        except BaseException as exc:  # handed to the main thread: check() and wait() raise it
            self.error = exc
        finally:
            self.done.set()

    def check(self) -> None:
        """Raise the background build's error, if it has failed (between stages)."""
        if self.done.is_set() and self.error is not None:
            raise self.error

    def wait(self) -> None:
        """Until every package is built; raises its error."""
        while not self.done.wait(WAIT_SLICE_S):
            interrupts.checkpoint()
        self.check()
