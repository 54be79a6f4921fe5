# SPDX-License-Identifier: MIT
"""One card, start to end: check it as ``flash`` does, unmount what a desktop mounted of
it, write the image with ``bmaptool copy`` (which checks every block it writes against the
bmap's checksums), personalise it. Runs in a worker thread; what it does is reported through
``report(phase, bytes_done)``, and how it ended is an :class:`Outcome`, never an exception.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..cards.flash import FlashRefused, bmaptool_argv, check_target, inspect_device
from ..cards.personalise import personalise
from ..errors import EWindowError
from ..log import log
from ..runner import exit_status, run, spawn, stop, tail
from .devices import SECTOR, Card, sectors_written, still_there
from .record import Result

POLL_S = 0.1
STOP_GRACE_S = 5.0


class Phase(StrEnum):
    WAITING = "waiting"
    CHECKING = "checking"
    WRITING = "writing"
    PERSONALISING = "personalising"
    DONE = "done"


@dataclass(frozen=True)
class Image:
    path: Path
    bmap: Path
    size: int  # bytes of the whole image: the card must hold them
    mapped: int  # bytes bmaptool writes (the bmap's mapped blocks)
    sha256: str


@dataclass(frozen=True)
class Job:
    card: Card
    image: Image
    hostname: str
    deployment: dict[str, Any]  # the card's deployment.json (checked when the station started)
    accept_globs: tuple[str, ...]  # test-only: non-removable disks that may be written
    arrived: float  # time.monotonic() when its event came


@dataclass(frozen=True)
class Outcome:
    result: Result
    error: str = ""
    seconds: float = 0.0
    written: int = 0
    first_byte_s: float | None = None  # from the card's event to its first written block
    after_last_byte_s: float | None = None  # from the last block bmaptool wrote to done

    @property
    def mb_per_s(self) -> float:
        return self.written / 1e6 / self.seconds if self.seconds > 0 else 0.0


Report = Callable[[Phase, int], None]


class Gone(EWindowError):
    """The card went away."""


class Interrupted(EWindowError):
    """The station was stopped (Ctrl-C)."""


def unmount_argv(mountpoint: str) -> list[str]:
    return ["umount", "--", mountpoint]


def check_and_unmount(job: Job) -> None:
    """flash's checks, with the station's one difference: a desktop's automounts of this
    card's partitions are unmounted (and said), never refused. Raises FlashRefused or Gone."""
    card = job.card
    if not still_there(card):
        raise Gone(f"{card.device} went away before it was written")
    disk = inspect_device(Path(card.device))
    accepted = any(fnmatch.fnmatchcase(card.device, glob) for glob in job.accept_globs)
    if accepted and disk.kind in ("disk", "loop"):
        disk = dataclasses.replace(disk, removable=True)
    if "/" not in disk.mountpoints:
        for partition, mountpoint in disk.mounted:
            log.info("%s: unmounting %s (%s) before writing", card.device, mountpoint, partition)
            run(unmount_argv(mountpoint))
        disk = dataclasses.replace(disk, mountpoints=(), mounted=()) if disk.mounted else disk
    check_target(disk, job.image.size, force=False)
    if inspect_device(Path(card.device)).mountpoints:
        raise FlashRefused(f"{card.device} was mounted again while the station unmounted it")


def write(job: Job, report: Report, cancel: threading.Event) -> Outcome:
    started = time.monotonic()
    card = job.card
    try:
        report(Phase.CHECKING, 0)
        check_and_unmount(job)
        report(Phase.WRITING, 0)
        first_byte, last_byte = copy(job, report, cancel)
        report(Phase.PERSONALISING, job.image.mapped)
        personalise(Path(card.device), job.deployment)
        if not still_there(card):
            raise Gone(f"{card.device} was pulled while it was personalised")
    except Interrupted:
        return Outcome(Result.INTERRUPTED, "stopped while it was written", time.monotonic() - started)
    except FlashRefused as exc:
        return Outcome(Result.REFUSED, str(exc), time.monotonic() - started)
    except Gone as exc:
        return Outcome(Result.PULLED, str(exc), time.monotonic() - started)
    except EWindowError as exc:  # bmaptool or mtools failed: because the card went, or not
        if not still_there(card):
            return Outcome(Result.PULLED, f"{card.device} was pulled while it was written",
                           time.monotonic() - started)
        return Outcome(Result.FAILED, str(exc), time.monotonic() - started)
    report(Phase.DONE, job.image.mapped)
    done = time.monotonic()
    return Outcome(Result.WRITTEN, "", done - started, job.image.mapped, first_byte - job.arrived,
                   done - last_byte)


def copy(job: Job, report: Report, cancel: threading.Event) -> tuple[float, float]:
    """bmaptool copy, followed by the disk's written-sectors counter; stopped when the card
    goes away or the station stops. Returns when the first and the last block were seen
    written (time.monotonic(), to a poll interval)."""
    card = job.card
    baseline = last = sectors_written(card)
    first_byte = last_byte = 0.0
    with tempfile.NamedTemporaryFile(prefix="ewindow-bmaptool-", suffix=".log") as errors:
        process = spawn(bmaptool_argv(job.image.path, job.image.bmap, Path(card.device)),
                        stderr=Path(errors.name))
        while (status := exit_status(process)) is None:
            sectors = sectors_written(card)
            if sectors != last:
                first_byte, last_byte, last = first_byte or time.monotonic(), time.monotonic(), sectors
            report(Phase.WRITING, min((sectors - baseline) * SECTOR, job.image.mapped))
            if cancel.is_set():
                stop(process, "bmaptool", grace=STOP_GRACE_S)
                raise Interrupted("stopped")
            if not still_there(card):
                stop(process, "bmaptool", grace=STOP_GRACE_S)
                raise Gone(f"{card.device} was pulled while it was written")
            time.sleep(POLL_S)
        if status != 0:
            message = tail(Path(errors.name), 1).removeprefix("bmaptool: ERROR: ")
            raise EWindowError(f"{card.device}: bmaptool failed (exit status {status}): "
                               f"{message or 'no message'}")
    if sectors_written(card) != last:  # its last blocks, between the last poll and its end
        last_byte = time.monotonic()
    return first_byte or last_byte, last_byte
