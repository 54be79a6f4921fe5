# SPDX-License-Identifier: MIT
"""An image file or a card as the tools see it: one checked path, checked whole.

Every path handed to mtools, sfdisk, debugfs or bmaptool goes through :func:`tool_path`:

- mtools reads ``FILE@@OFFSET`` at the *first* ``@@`` (mtools(5), "Drive letters"), so an
  image in a folder named ``at@@0`` had its card settings written into a sibling file ``at``;
- mtools hands an image name holding ``$``, ``*``, ``(`` and the like to ``/bin/sh`` to expand
  it: a file named ``$(touch PWNED).img`` ran that command, as root;
- e2fsprogs' unix I/O manager reads ``FILE?OPTIONS`` (``?offset=``, used by personalise);
- a relative name that starts with ``-`` is an option to each of them (``Path("./-w.img")``
  is ``-w.img`` again), so the path is made absolute.

:func:`inspect` says what a path is before any tool opens it: a FIFO would hang sfdisk, and a
symlink loop or a dangling link gets its own line. :func:`check_whole` compares the file's
size with its partition table and its ``.bmap``: an image cut short (a half-finished
download) is refused before it is personalised or written.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import stat
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from .errors import CommandError, ConfigError, EWindowError
from .runner import run

# characters the tools give a meaning inside a file name, and who reads them
MEANINGFUL = (("@@", "mtools reads FILE@@OFFSET"), ("?", "debugfs reads FILE?OPTIONS"))
MTOOLS_SHELL = frozenset("$*?[]{}()`~\\|;&<>!'\"\n")
MAX_BMAP_BYTES = 16 << 20


class Kind(enum.Enum):
    FILE = "an image file"
    DEVICE = "a block device"


def tool_path(path: Path) -> Path:
    """``path`` made absolute (never an option), refused when a tool would read part of it
    as something else."""
    text = os.path.abspath(path)
    for mark, why in MEANINGFUL:
        # mtools splits FILE@@OFFSET at the first "@@": a name that ends in "@" ("a@" + "@@0")
        # would be split inside the name too (found by tests/test_hostile_files.py)
        if mark in text or (mark == "@@" and text.endswith("@")):
            holds = f"holds '{mark}'" if mark in text else "ends in '@'"
            raise EWindowError(f"{path}: the path {holds} ({why}), so a tool would open another file",
                               hint=f"rename the file or its folder without '{mark[0]}'")
    shell = sorted(set(text) & MTOOLS_SHELL)
    if shell:
        # mtools hands an image name with one of these to /bin/sh ("echo NAME") to expand it:
        # `$(…)` in a file name ran as root (found by tests/test_hostile_files.py)
        raise EWindowError(f"{path}: the path holds {' '.join(shell)}, which mtools hands to a shell",
                           hint="rename the file or its folder with letters, digits and . _ - + , : = @ /")
    return Path(text)


def mtools_drive(image: Path, offset: int) -> str:
    """mtools' ``-i`` argument for the FAT file system at ``offset`` bytes into ``image``."""
    return f"{tool_path(image)}@@{offset}"


def inspect(path: Path, *, devices: bool) -> Kind:
    """What ``path`` is: an image file, or (when ``devices``) a block device; anything else is
    refused with a line that says what it is."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise EWindowError(f"{path}: a symlink loop") from None
        if exc.errno == errno.ENOENT:
            dangling = os.path.islink(path)
            raise EWindowError(f"{path}: {'a dangling symlink' if dangling else 'no such file'}") from None
        raise EWindowError(f"{path}: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISBLK(mode) and devices:
        return Kind.DEVICE
    what = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "not a regular file")
    wanted = "an image file or a card's block device" if devices else "an image file"
    raise EWindowError(f"{path}: {what}, not {wanted}")


@dataclass(frozen=True)
class Partition:
    start: int  # bytes
    size: int  # bytes

    @property
    def end(self) -> int:
        return self.start + self.size


def size_of(path: Path, kind: Kind) -> int:
    if kind is Kind.FILE:
        return path.stat().st_size
    with path.open("rb") as device:
        return device.seek(0, os.SEEK_END)


def parse_sfdisk_json(text: str) -> list[Partition]:
    table = json.loads(text)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return [Partition(int(p["start"]) * sector, int(p["size"]) * sector) for p in table["partitions"]]


def partitions(path: Path) -> list[Partition]:
    """The partition table of a checked path (:func:`tool_path`)."""
    try:
        return parse_sfdisk_json(run(["sfdisk", "--json", os.fspath(path)], capture=True))
    except (CommandError, KeyError, TypeError, ValueError, AttributeError):
        raise EWindowError(f"{path}: no partition table; is this an EWindow image or card?") from None


def bmap_image_size(bmap: Path) -> int:
    """The ``ImageSize`` a .bmap file states."""
    if bmap.stat().st_size > MAX_BMAP_BYTES:
        raise ConfigError(str(bmap), "(file)", "larger than a bmap file can be")
    try:
        return int((ElementTree.fromstring(bmap.read_bytes()).findtext("ImageSize") or "").strip())
    except (ElementTree.ParseError, ValueError) as exc:
        raise ConfigError(str(bmap), "(file)", f"not a bmap file ({str(exc)[:80]})") from None


def check_whole(path: Path, *, devices: bool) -> tuple[Path, list[Partition]]:
    """The tool-safe path of an image (or card) and its partitions, once it is known to be
    whole: every partition inside the file, and the size its ``.bmap`` states, if it has one."""
    kind = inspect(path, devices=devices)
    safe = tool_path(path)
    found = partitions(safe)
    if not found:
        raise EWindowError(f"{path}: no partition table; is this an EWindow image or card?")
    size = size_of(safe, kind)
    needed = max(p.end for p in found)
    if size < needed:
        raise EWindowError(f"{path}: {size} bytes, but its partition table needs {needed}: "
                           f"{'a download or copy cut short' if kind is Kind.FILE else 'a card too small'}",
                           hint="fetch or build the image again")
    bmap = safe.with_name(safe.name + ".bmap")
    if kind is Kind.FILE and bmap.is_file():
        stated = bmap_image_size(bmap)
        if stated != size:
            raise ConfigError(str(bmap), "ImageSize", f"{stated} bytes, but {path.name} has {size}")
    return safe, found
