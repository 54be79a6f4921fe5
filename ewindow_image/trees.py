# SPDX-License-Identifier: MIT
"""Deleting build trees safely: never through a mount an interrupted chroot left inside."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import EWindowError
from .runner import run


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (mountinfo escapes spaces as \\040)."""
    real = os.path.realpath(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == real or point.startswith(real + "/"):
            found.append(point)
    return found


def remove_tree(path: Path) -> None:
    """Delete a build tree, never through something still mounted in it: an interrupted
    chroot could have left the host's /dev or /sys bind-mounted inside."""
    if not path.exists() and not path.is_symlink():
        return
    for point in sorted(mounts_under(path), key=len):
        if point in mounts_under(path):
            run(["umount", "--recursive", "--lazy", point])
    if mounts_under(path):
        raise EWindowError(f"refusing to delete {path}: something is still mounted inside it")
    shutil.rmtree(path)
