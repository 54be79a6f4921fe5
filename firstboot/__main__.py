# SPDX-License-Identifier: MIT
"""``python3 -m firstboot [--root DIR]``: run the firstboot steps (ewindow-firstboot.service).

Progress goes to the journal and to /run/ewindow/firstboot.json, which the status agent reads:
``{"state": "running" | "done" | "failed", "step": …, "error": …}``. Exit 0 when done, 1 when a
step failed (the message names the file and field, or the program, that failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .fsops import Root
from .identity import IdentityError
from .settings import SETTINGS_FILE, STATUS_FILE, SettingsError, load_image_settings
from .steps import STEPS, Context, StepError, log

# Fault injection for the power-loss test: SIGKILL after this many changes.
CRASH_AFTER_ENV = "EWINDOW_FIRSTBOOT_CRASH_AFTER"


def write_status(root: Root, state: str, step: str, error: str = "") -> None:
    """The status for the agent; /run is a tmpfs, so no fsync and no change counted."""
    path = root / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"state": state, "step": step, "error": error}) + "\n")
    tmp.chmod(0o644)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ewindow-firstboot", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/"), help="the system to set up (default /)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    crash_after = os.environ.get(CRASH_AFTER_ENV)
    root = Root(args.root, int(crash_after) if crash_after else None)
    step_name = "settings"
    try:
        ctx = Context(root, load_image_settings(root / SETTINGS_FILE))
        for step_name, step in STEPS:
            write_status(root, "running", step_name)
            log.info("step %s", step_name)  # the journal's time stamps time each step
            step(ctx)
    except (SettingsError, IdentityError, StepError, OSError) as exc:
        message = str(exc)
        log.error("firstboot failed in step %s: %s", step_name, message)
        write_status(root, "failed", step_name, message)
        return 1
    write_status(root, "done", "")
    log.info("firstboot done: %s is %s, tap MAC %s, ULA %s", ctx.hostname,
             ctx.identity.base_mac if ctx.identity else "?",
             ctx.identity.tap_mac if ctx.identity else "?", ctx.identity.ula if ctx.identity else "?")
    return 0


if __name__ == "__main__":
    sys.exit(main())
