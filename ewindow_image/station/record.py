# SPDX-License-Identifier: MIT
"""The station log: one JSON object per line and per card, the admin's record of which card
became which window (README "Flashing many cards").

Each entry is one ``write(2)`` to a file opened with O_APPEND, then fsync'd: appends of other
writers (two stations, this station's threads) never interleave inside a line, and a crash
leaves whole lines. Reading back skips a line that is not an entry (a torn last line after a
power cut, a line added by hand) and says so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

log = logging.getLogger("ewindow")

LOG_NAME = "station-log.jsonl"


class Result(StrEnum):
    WRITTEN = "written"  # written, verified and personalised: the name is taken
    FAILED = "failed"  # bmaptool or personalising failed
    PULLED = "pulled"  # the card went away while it was written
    REFUSED = "refused"  # the checks refused it (read-only, too small, …)
    INTERRUPTED = "interrupted"  # the station was stopped while it was written


@dataclass(frozen=True)
class Entry:
    time: str
    device: str
    diskseq: str
    size: int
    serial: str  # the card's (mmc CID serial, USB serial) where the kernel or udev knows it
    reader: str  # the reader: udev's ID_PATH, or the sysfs path of its device
    backing_file: str  # loop devices only
    name: str  # "" when firstboot names the window from its MAC
    image: str
    image_sha256: str
    result: Result
    error: str
    seconds: float
    mb_per_s: float
    first_byte_s: float | None  # from the card's event to the first block on it
    after_last_byte_s: float | None  # from the last block bmaptool wrote to "done"

    def line(self) -> str:
        data = asdict(self)
        data["result"] = self.result.value
        return json.dumps(data, sort_keys=True, ensure_ascii=True) + "\n"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StationLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, entry: Entry) -> None:
        data = entry.line().encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"{self.path}: short write")
                os.fsync(fd)
            finally:
                os.close(fd)

    def entries(self) -> list[dict[str, object]]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        found = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                log.warning("warning: %s: line %d is not a station log entry; skipped", self.path, number)
                continue
            found.append(entry)
        return found

    def names_taken(self) -> set[str]:
        return {str(e["name"]) for e in self.entries()
                if e.get("result") == Result.WRITTEN.value and e["name"]}
