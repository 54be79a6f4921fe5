# SPDX-License-Identifier: MIT
"""Cards arriving and leaving, from the kernel's block device events (pyudev).

Where udevd runs (a desktop), the station listens to udev's events, which carry udev's
names for the card and its reader (ID_SERIAL, ID_PATH); where it does not (a container, a CI
root), to the kernel's own uevents (``source='kernel'``), and reads the same facts from sysfs.

A card is a whole disk with a medium: a card pushed into a USB reader is a ``change`` of the
reader's disk from size 0 to its size, a USB stick an ``add``, a loop device attached to a
file a ``change``. Every medium the kernel sees gets a new disk sequence number (DISKSEQ,
https://docs.kernel.org/admin-guide/abi-stable.html "/sys/block/<disk>/diskseq"), so a disk
is the pair (name, diskseq): the disks present when the station starts are remembered and
never written, even when an event names them again (a partition rescan, a second ``change``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyudev

SECTOR = 512  # /sys/block/*/size counts 512-byte sectors whatever the device's own size
UDEV_CONTROL = Path("/run/udev/control")  # udevd's socket: udevd runs


@dataclass(frozen=True)
class Card:
    device: str  # /dev/sdb
    name: str  # sdb
    diskseq: str
    size: int  # bytes
    serial: str
    reader: str
    backing_file: str  # a loop device's file (the tests' cards)

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.diskseq


def event_source() -> str:
    return "udev" if UDEV_CONTROL.exists() else "kernel"


def _attribute(device: pyudev.Device, name: str) -> str:
    try:
        value = device.attributes.get(name)
    except (OSError, KeyError):
        return ""
    return value.decode(errors="replace").strip() if isinstance(value, bytes) else ""


def _serial_and_reader(device: pyudev.Device) -> tuple[str, str]:
    serial = device.properties.get("ID_SERIAL_SHORT") or device.properties.get("ID_SERIAL") or ""
    reader = device.properties.get("ID_PATH") or ""
    for parent in device.ancestors:
        if not serial and parent.subsystem == "mmc":  # the card's own CID serial
            serial = _attribute(parent, "serial")
        if parent.device_type == "usb_device":
            serial = serial or _attribute(parent, "serial")
            reader = reader or parent.sys_path
            break
    if not reader and device.parent is not None:
        reader = device.parent.sys_path
    return serial, reader


def card_of(device: pyudev.Device) -> Card | None:
    """The card in ``device`` (a whole disk with a medium), or None."""
    if device.subsystem != "block" or device.device_type != "disk" or device.action == "remove":
        return None
    sectors = _attribute(device, "size")
    size = int(sectors) * SECTOR if sectors.isdigit() else 0
    if size == 0:
        return None
    serial, reader = _serial_and_reader(device)
    node = device.device_node or f"/dev/{device.sys_name}"
    return Card(node, device.sys_name, _attribute(device, "diskseq") or device.properties.get("DISKSEQ", ""),
                size, serial, reader, _attribute(device, "loop/backing_file"))


def named_card(context: pyudev.Context, path: Path) -> Card | None:
    """The card in the disk ``path`` names (``--device``), or None: gone, a partition, empty."""
    try:
        return card_of(pyudev.Devices.from_device_file(context, str(path)))
    except (pyudev.DeviceNotFoundError, ValueError, OSError):
        return None


def disks(context: pyudev.Context) -> list[pyudev.Device]:
    return list(context.list_devices(subsystem="block", DEVTYPE="disk"))


def present(context: pyudev.Context) -> set[tuple[str, str]]:
    """(name, diskseq) of every disk holding a medium now: never to be written."""
    return {card.key for card in (card_of(d) for d in disks(context)) if card is not None}


def readers(context: pyudev.Context) -> int:
    """Removable disks, with or without a card: the default number of cards written at once."""
    return sum(1 for d in disks(context) if _attribute(d, "removable") == "1")


def still_there(card: Card) -> bool:
    """The same medium is still in: the disk exists, has a size, and its sequence number is
    the card's (a pulled and re-inserted card, or another file on a loop device, has a new one)."""
    sysfs = Path("/sys/class/block") / card.name
    try:
        size = int((sysfs / "size").read_text())
        diskseq = (sysfs / "diskseq").read_text().strip() if (sysfs / "diskseq").exists() else card.diskseq
    except (OSError, ValueError):
        return False
    return size > 0 and diskseq == card.diskseq


def sectors_written(card: Card) -> int:
    """The disk's written-sectors counter (/sys/block/<disk>/stat, field 7,
    https://docs.kernel.org/block/stat.html): how far a write has come, whatever writes."""
    try:
        return int((Path("/sys/class/block") / card.name / "stat").read_text().split()[6])
    except (OSError, ValueError, IndexError):
        return 0


def monitor(context: pyudev.Context, source: str) -> pyudev.Monitor:
    watcher = pyudev.Monitor.from_netlink(context, source=source)
    if source == "udev":  # udev's messages carry the subsystem for an in-kernel filter
        watcher.filter_by("block")
    watcher.start()
    return watcher
