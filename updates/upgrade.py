# SPDX-License-Identifier: MIT
"""One unattended upgrade run, and what it leaves for the agent, the metrics and the boot report.

Debian's ``apt.systemd.daily install`` exits 0 when ``apt-get update`` or
``unattended-upgrade`` failed (it only writes a debug line), so a window could not say that
its repository was unreachable or its signature wrong. The window runs the two itself:

1. ``/run/ewindow/updating`` exists while the run lasts (the LED says "updating");
2. ``apt-get update``: the lists, Debian's and the deployment repository's; a failure (a
   repository unreachable, a signature that does not verify) is kept, and apt keeps the old
   lists, so nothing unverified is installed;
3. ``unattended-upgrade``: what its Origins-Pattern allows (Debian security, the deployment);
4. the result in ``/var/lib/ewindow/upgrade.json`` (time, result, what failed, reboot);
5. a reboot only when a package asked for one (``/run/reboot-required``), ``reboot`` is on,
   and the time is inside the window; otherwise it waits for the next run in the window.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from firstboot import checks

SETTINGS = Path("/etc/ewindow/updates.json")
STATE = Path("/var/lib/ewindow/upgrade.json")
RUNNING = Path("/run/ewindow/updating")
REBOOT_REQUIRED = Path("/run/reboot-required")

Run = Callable[[Sequence[str]], tuple[int, str]]  # argv → (exit status, what it said: its error)


@dataclass(frozen=True)
class Settings:
    window: tuple[int, int]  # minutes after local midnight: start, end (may wrap)
    reboot: bool


@dataclass(frozen=True)
class Outcome:
    started: int
    finished: int
    result: str  # ok | failed
    lists: str  # ok, or what apt-get update said when it failed
    upgrade: str  # ok, or what unattended-upgrade said when it failed
    reboot: str  # not needed | rebooting | outside the window | off


class SettingsError(ValueError):
    pass


def load_settings(path: Path = SETTINGS) -> Settings:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("reboot"), bool):
            raise SettingsError(f"{path}: reboot: expected true or false")
        if not isinstance(data.get("window"), str):
            raise SettingsError(f"{path}: window: expected HH:MM-HH:MM")
        return Settings(checks.time_window(data["window"]), data["reboot"])
    except checks.InvalidValue as exc:
        raise SettingsError(f"{path}: window: {exc}") from None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from None


def in_window(now: datetime.datetime, window: tuple[int, int]) -> bool:
    """``now`` (local time) is inside ``window``; a window may span midnight."""
    minute = now.hour * 60 + now.minute
    start, end = window
    return start <= minute < end if start < end else minute >= start or minute < end


# --error-on=any: a repository that cannot be reached is an error too (apt-get update exits 0
# with a "W: Failed to fetch" otherwise, and the run would look fine; apt(8) "--error-on")
LISTS_ARGV = ("apt-get", "-q", "--error-on=any", "update")
UPGRADE_ARGV = ("unattended-upgrade",)
REBOOT_ARGV = ("systemctl", "reboot")


def upgrade(settings: Settings, run: Run, now: Callable[[], datetime.datetime],
            reboot_required: Path = REBOOT_REQUIRED) -> Outcome:
    started = int(now().timestamp())
    status, said = run(LISTS_ARGV)
    lists = "ok" if status == 0 else f"apt-get update failed ({status}): {said}"
    status, said = run(UPGRADE_ARGV)
    upgraded = "ok" if status == 0 else f"unattended-upgrade failed ({status}): {said}"
    if not reboot_required.exists():
        reboot = "not needed"
    elif not settings.reboot:
        reboot = "off"
    elif in_window(now(), settings.window):
        reboot = "rebooting"
    else:
        reboot = "outside the window"
    result = "ok" if lists == "ok" and upgraded == "ok" else "failed"
    return Outcome(started, int(now().timestamp()), result, lists, upgraded, reboot)


def write_state(outcome: Outcome, path: Path = STATE) -> None:
    """The last run's outcome, whole or not at all (a power cut keeps the one before)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as stream:
        stream.write(json.dumps(asdict(outcome), sort_keys=True) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    tmp.chmod(0o644)
    tmp.replace(path)
