# SPDX-License-Identifier: MIT
"""Writing an image to an SD card with bmaptool, then personalising it.

The checks come first and are pure (they read ``lsblk --json``): the disk holding ``/`` is
always refused, a partition instead of a whole disk is refused, a mounted or non-removable
disk is refused unless ``--force``, and so is a card smaller than the image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EWindowError
from ..imagefiles import Kind, check_whole, inspect, tool_path
from ..runner import run

LSBLK_COLUMNS = "NAME,TYPE,RM,HOTPLUG,TRAN,SIZE,MODEL,RO,MOUNTPOINTS"


class FlashRefused(EWindowError):
    pass


@dataclass(frozen=True)
class Disk:
    path: str
    kind: str  # disk, part, loop, …
    removable: bool
    size: int
    model: str
    mountpoints: tuple[str, ...]  # of the disk and everything on it (partitions, LVM, …)
    read_only: bool = False  # the card's lock switch, or a read-only loop device
    mounted: tuple[tuple[str, str], ...] = ()  # (device, mount point) of each mount on it


def lsblk_argv(device: Path) -> list[str]:
    return ["lsblk", "--json", "--bytes", "--paths", "-o", LSBLK_COLUMNS, os.fspath(device)]


def _mounts(node: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(str(node["name"]), str(m)) for m in (node.get("mountpoints") or []) if m]
    for child in node.get("children") or []:
        found += _mounts(child)
    return found


def parse_lsblk(text: str) -> Disk:
    node = json.loads(text)["blockdevices"][0]
    name = str(node["name"])
    # SD slots wired to the SoC (mmcblkN) report RM=0; they are still cards.
    removable = (bool(node.get("rm")) or bool(node.get("hotplug")) or node.get("tran") in ("usb", "mmc")
                 or os.path.basename(name).startswith("mmcblk"))
    mounts = _mounts(node)
    return Disk(name, str(node.get("type")), removable, int(node.get("size") or 0),
                str(node.get("model") or "").strip(), tuple(m for _, m in mounts), bool(node.get("ro")),
                tuple(mounts))


def check_target(disk: Disk, image_size: int, *, force: bool) -> list[str]:
    """Raise FlashRefused for a target that must not be written; return warnings for the
    ones ``force`` let through."""
    if "/" in disk.mountpoints:
        raise FlashRefused(f"{disk.path} holds the running system's / — refusing, even with --force")
    if disk.kind == "part":
        raise FlashRefused(f"{disk.path} is a partition; give the whole card (e.g. /dev/sdb, not /dev/sdb1)")
    if disk.read_only:
        raise FlashRefused(f"{disk.path} is read-only: is the card's lock switch on?")
    warnings = []
    if disk.mountpoints:
        message = f"{disk.path} is mounted at {', '.join(disk.mountpoints)}"
        if not force:
            raise FlashRefused(message, hint="unmount it first (udisksctl unmount -b …), or --force")
        warnings.append(message)
    if not disk.removable:
        message = f"{disk.path} ({disk.model or disk.kind}) is not a removable disk"
        if not force:
            raise FlashRefused(message, hint="check DEVICE with lsblk; use --force if it really is the card")
        warnings.append(message)
    if disk.size and image_size and disk.size < image_size:
        raise FlashRefused(f"{disk.path} holds {disk.size / 2**30:.1f} GiB, the image needs "
                           f"{image_size / 2**30:.1f} GiB")
    return warnings


def bmaptool_argv(image: Path, bmap: Path, device: Path) -> list[str]:
    return ["bmaptool", "copy", "--bmap", os.fspath(bmap), os.fspath(image), os.fspath(device)]


def inspect_device(device: Path) -> Disk:
    """The disk at ``device``, which must be a block device (a symlink to one is fine)."""
    try:
        kind = inspect(device, devices=True)
    except EWindowError as exc:
        raise FlashRefused(str(exc)) from None
    if kind is not Kind.DEVICE:
        raise FlashRefused(f"{device} is not a block device")
    return parse_lsblk(run(lsblk_argv(tool_path(device)), capture=True))


def flash(image: Path, device: Path, *, force: bool) -> list[str]:
    """Check the target, then write ``image`` with its .bmap. Returns the warnings."""
    disk = inspect_device(device)
    warnings = check_target(disk, 0, force=force)  # the device first: it is the dangerous part
    bmap = image.with_name(image.name + ".bmap")
    if not os.path.lexists(image) or not bmap.is_file():
        raise EWindowError(f"{image} or its .bmap is missing", hint="build it first: make image")
    safe_image, _ = check_whole(image, devices=False)
    check_target(disk, safe_image.stat().st_size, force=True)  # the size, now that it is known
    run(bmaptool_argv(safe_image, tool_path(bmap), tool_path(device)))
    return warnings
