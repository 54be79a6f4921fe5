# SPDX-License-Identifier: MIT
"""Boot the built image under qemu-system-aarch64 and read the serial console.

Two machines, both proven here (shared/reference/build-notes.md):

- ``virt``: a Cortex-A53 with the image as a virtio disk and a NIC whose MAC we choose; the
  kernel command line is the image's cmdline.txt with the console moved to ttyAMA0.
- ``raspi3b``: the real Pi 3 device tree and GPIO controller, the image as the SD card
  (rounded up to a power of two), cmdline.txt unchanged, console on the second UART
  (ttyS1, the mini UART). No working NIC.

The guest gets no route out: user networking with ``restrict=on``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EWindowError
from ..imagefiles import mtools_drive
from ..log import log
from ..runner import exit_status, run, spawn, stop, tail

MARKER = "EWINDOW-BOOT-OK"
MULTI_USER = re.compile(r"Reached target .*[Mm]ulti-[Uu]ser")
FAILURES = ("Kernel panic", "emergency mode", "Give root password for maintenance",
            "ALERT! ", "Failed to mount")
RASPI3_DTB = "bcm2837-rpi-3-b.dtb"


class BootTestError(EWindowError, AssertionError):
    pass


@dataclass(frozen=True)
class BootSpec:
    machine: str = "virt"  # virt | raspi3b
    timeout: int = 300
    mac: str = "52:54:00:e1:c0:fe"
    extra_cmdline: str = ""
    grow_bytes: int = 0  # make the disk copy larger, to see the root grow at first boot
    ssh_port: int = 0  # virt: forward 127.0.0.1:ssh_port to the guest's port 22
    # virt: a tap device (in ``netns``) instead of qemu's user network, e.g. to put several
    # VMs on one bridge; the tap must exist and be up
    tap: str = ""
    netns: str = ""  # run qemu inside this network namespace
    # virt, user network: one address the guest may reach although restrict=on, e.g.
    # "tcp:10.0.2.100:80-cmd:python3 relay.py 8080" (a repository served on this host)
    guestfwd: str = ""


@dataclass
class BootResult:
    seconds: float
    console: str
    report: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Partition:
    start: int  # bytes
    size: int


def partitions(image: Path) -> list[Partition]:
    table = json.loads(run(["sfdisk", "--json", os.fspath(image)], capture=True))
    sector = int(table["partitiontable"].get("sectorsize", 512))
    return [Partition(p["start"] * sector, p["size"] * sector)
            for p in table["partitiontable"]["partitions"]]


def firmware_boot_files(config_txt: str) -> tuple[str, str]:
    """The kernel and initrd the Pi's firmware loads: config.txt's ``kernel=NAME`` and
    ``initramfs NAME [followkernel]`` lines, the last of each (a later line overrides an
    earlier one). raspi-firmware's hook writes both for the newest kernel in /boot on every
    kernel install; a card whose config.txt names no kernel does not boot on a Pi.
    Conditional sections ([pi4], …) are not interpreted: the image writes none."""
    kernel = initrd = ""
    for line in config_txt.splitlines():
        words = line.split("#", 1)[0].strip().replace("=", " ", 1).split()
        if len(words) >= 2 and words[0] == "kernel":
            kernel = words[1]
        elif len(words) >= 2 and words[0] == "initramfs":
            initrd = words[1]
    return kernel, initrd


def boot_files(image: Path, target: Path) -> dict[str, Path]:
    """Copy kernel, initrd, cmdline.txt and the Pi 3 DTB out of the FAT partition: the
    kernel and initrd config.txt names, as the Pi's firmware would."""
    boot = partitions(image)[0]
    spec = mtools_drive(image, boot.start)
    names = run(["mdir", "-i", spec, "-b", "::/"], capture=True).split()
    names = [n.removeprefix("::/") for n in names]
    if "config.txt" not in names:
        raise BootTestError(f"{image}: boot partition has no config.txt")
    run(["mcopy", "-i", spec, "-n", "::/config.txt", os.fspath(target / "config.txt")])
    kernel, initrd = firmware_boot_files((target / "config.txt").read_text(errors="replace"))
    wanted = {"kernel": kernel, "initrd": initrd, "cmdline": "cmdline.txt", "dtb": RASPI3_DTB}
    found = {}
    for role, name in wanted.items():
        if not name or name not in names or "/" in name or name.startswith("-"):
            raise BootTestError(f"{image}: boot partition has no {name or role}"
                                + (" (config.txt names none)" if not name else ""))
        run(["mcopy", "-i", spec, "-n", f"::/{name}", os.fspath(target / name)])
        found[role] = target / name
    return found


def guest_cmdline(cmdline_txt: str, machine: str, extra: str) -> str:
    """cmdline.txt for the machine: on virt the console moves to the PL011 at ttyAMA0."""
    words = cmdline_txt.split()
    if machine == "virt":
        words = [w for w in words if not w.startswith("console=")] + ["console=ttyAMA0"]
    return " ".join(words + extra.split())


def qemu_argv(spec: BootSpec, files: dict[str, Path], disk: Path, console_log: Path,
              cmdline: str) -> list[str]:
    common = ["-kernel", os.fspath(files["kernel"]), "-initrd", os.fspath(files["initrd"]),
              "-append", cmdline, "-display", "none", "-monitor", "none", "-no-reboot"]
    if spec.machine == "virt":
        netdev = (f"tap,id=n0,ifname={spec.tap},script=no,downscript=no" if spec.tap else
                  "user,id=n0,restrict=on" + (f",hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22"
                                              if spec.ssh_port else "")
                  + (f",guestfwd={spec.guestfwd}" if spec.guestfwd else ""))
        netns = ["ip", "netns", "exec", spec.netns] if spec.netns else []
        return [*netns, "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1G",
                *common,
                "-drive", f"file={os.fspath(disk)},if=none,id=d0,format=raw",
                "-device", "virtio-blk-pci,drive=d0",
                "-netdev", netdev,
                # romfile= : no iPXE option ROM (efi-virtio.rom comes from ipxe-qemu, a mere
                # Recommends of qemu-system-arm); a direct kernel boot never runs it.
                "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac},romfile=",
                "-serial", f"file:{os.fspath(console_log)}"]
    if spec.machine == "raspi3b":
        return ["qemu-system-aarch64", "-M", "raspi3b", "-m", "1G", "-smp", "4", *common,
                "-dtb", os.fspath(files["dtb"]),
                "-drive", f"file={os.fspath(disk)},if=sd,format=raw",
                "-serial", "null", "-serial", f"file:{os.fspath(console_log)}"]
    raise BootTestError(f"unknown machine '{spec.machine}' (virt or raspi3b)")


def sd_card_size(size: int) -> int:
    """qemu's SD card model needs a power-of-two size."""
    power = 1
    while power < size:
        power *= 2
    return power


def parse_report(console: str) -> dict[str, str]:
    for line in console.splitlines():
        if MARKER in line:
            words = line[line.index(MARKER) + len(MARKER):].split()
            return dict(w.split("=", 1) for w in words if "=" in w)
    return {}


def boot(image: Path, spec: BootSpec, while_up: Callable[[], None] | None = None, *,
         in_place: bool = False) -> BootResult:
    """Boot a copy of ``image`` (or, ``in_place``, the file itself, like a card booted twice);
    return once the boot report appeared, or raise.

    ``while_up`` runs after the report appeared and before the VM is stopped (e.g. to log in
    over the forwarded SSH port)."""
    with tempfile.TemporaryDirectory(prefix="ewindow-boot-") as tmp_name:
        tmp = Path(tmp_name)
        disk = image if in_place else tmp / "disk.img"
        if not in_place:
            run(["cp", "--sparse=always", os.fspath(image), os.fspath(disk)])
        size = disk.stat().st_size + spec.grow_bytes
        if spec.machine == "raspi3b":
            size = sd_card_size(size)
        if size > disk.stat().st_size:
            os.truncate(disk, size)
        files = boot_files(disk, tmp)
        cmdline = guest_cmdline(files["cmdline"].read_text(), spec.machine, spec.extra_cmdline)
        console_log = tmp / "console.log"
        console_log.touch()
        qemu_stderr = tmp / "qemu.stderr"
        log.info("    booting %s (%s), waiting up to %d s", image.name, spec.machine, spec.timeout)
        start = time.monotonic()
        vm = spawn(qemu_argv(spec, files, disk, console_log, cmdline), stderr=qemu_stderr)
        console = ""
        early_exit: int | None = None
        try:
            while time.monotonic() - start < spec.timeout:
                console = console_log.read_text(errors="replace")
                if MARKER in console and "\n" in console[console.index(MARKER):]:
                    break
                if any(f in console for f in FAILURES):
                    break
                early_exit = exit_status(vm)
                if early_exit is not None:
                    console = console_log.read_text(errors="replace")
                    break
                time.sleep(1)
            if while_up is not None and MARKER in console:
                while_up()
        finally:
            stop(vm, "qemu", grace=10)
        seconds = time.monotonic() - start
        console = console_log.read_text(errors="replace")
        name = f"{spec.machine}-{spec.tap}" if spec.tap else spec.machine  # two VMs at once
        saved = Path(tempfile.gettempdir()) / f"ewindow-boot-{name}.log"
        shutil.copyfile(console_log, saved)
        if early_exit is not None and MARKER not in console:
            raise BootTestError(early_exit_message(spec.machine, early_exit, seconds,
                                                   tail(qemu_stderr), saved))
    return check_console(console, seconds, spec, saved)


def early_exit_message(machine: str, status: int, seconds: float, stderr_tail: str,
                       saved: Path) -> str:
    """qemu ended by itself before the boot report: say so, with what it said, instead of
    a timeout it never reached."""
    said = stderr_tail or "nothing on stderr"
    return (f"{machine}: qemu exited with status {status} after {seconds:.1f} s, before the "
            f"boot report: {said} (console in {saved})")


def check_console(console: str, seconds: float, spec: BootSpec, saved: Path) -> BootResult:
    failure = next((f for f in FAILURES if f in console), None)
    if failure:
        raise BootTestError(f"{spec.machine}: boot failed ('{failure.strip()}'), console in {saved}")
    if MARKER not in console:
        raise BootTestError(f"{spec.machine}: no boot report within {spec.timeout} s, "
                            f"console in {saved}")
    report = parse_report(console)
    # systemd prints "Reached target … Multi-User" on the console only while no getty owns it
    # (bookworm's systemd 252 stops before); the report, ordered after the target, asks it.
    if not (MULTI_USER.search(console) or report.get("multi_user") == "active"):
        raise BootTestError(f"{spec.machine}: multi-user.target never reached, console in {saved}")
    return BootResult(seconds, console, report)
