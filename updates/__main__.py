# SPDX-License-Identifier: MIT
"""``python3 -m updates``: one unattended upgrade run (see upgrade.py). Exit 0 when the lists
and the upgrade succeeded, 1 when either failed (the state file and the journal say which)."""

from __future__ import annotations

import datetime
import logging
import subprocess
import sys
from collections.abc import Sequence

from .upgrade import REBOOT_ARGV, RUNNING, SettingsError, load_settings, upgrade, write_state

log = logging.getLogger("ewindow-upgrade")


def run(argv: Sequence[str]) -> tuple[int, str]:
    """Run a command with its output in the journal; its exit status and its first error
    line (apt's ``E: …``), else its last line."""
    log.info("+ %s", " ".join(argv))
    process = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace", check=False)
    lines = [line for line in process.stdout.splitlines() if line.strip()]
    for line in lines:
        log.info("  %s", line)
    said = next((line for line in lines if line.startswith("E:")), lines[-1] if lines else "")
    return process.returncode, said.strip()[:300]


def now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        settings = load_settings()
    except SettingsError as exc:
        log.error("ewindow-upgrade: %s", exc)
        return 2
    RUNNING.parent.mkdir(parents=True, exist_ok=True)
    RUNNING.touch()
    try:
        outcome = upgrade(settings, run, now)
        write_state(outcome)
    finally:
        RUNNING.unlink(missing_ok=True)
    log.info("upgrade %s; lists: %s; upgrade: %s; reboot: %s", outcome.result, outcome.lists,
             outcome.upgrade, outcome.reboot)
    if outcome.reboot == "rebooting":
        run(REBOOT_ARGV)
    return 0 if outcome.result == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
