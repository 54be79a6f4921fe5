# SPDX-License-Identifier: MIT
"""Privileged actions from an unprivileged agent: the agent only creates a request file;
a root ``ewindow-<action>.path`` unit starts the matching service, which deletes it first."""

from __future__ import annotations

from pathlib import Path

from .button import Action

REQUEST_DIR = Path("/run/ewindow-agent/request")
PRIVILEGED = (Action.restart_vpn, Action.reboot)


def request(action: Action, directory: Path = REQUEST_DIR) -> Path:
    if action not in PRIVILEGED:
        raise ValueError(f"{action} is not a privileged action")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / action.value
    path.touch()
    return path
