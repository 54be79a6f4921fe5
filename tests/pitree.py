# SPDX-License-Identifier: MIT
"""Fixture trees of a Pi's /sys, /proc and /etc: what firstboot reads on a real board."""

from __future__ import annotations

import json
from pathlib import Path

from .keys import ed25519_line

BUILT_KEY = ed25519_line("built", "admin@build")


def nic(root: Path, name: str, mac: str, driver: str, *, wireless: bool = False,
        assign: str = "0") -> None:
    entry = root / "sys/class/net" / name
    (entry / "device").mkdir(parents=True)
    drivers = root / "sys/bus/drivers" / driver
    drivers.mkdir(parents=True, exist_ok=True)
    (entry / "device/driver").symlink_to(drivers)
    (entry / "type").write_text("1\n")
    (entry / "address").write_text(mac + "\n")
    (entry / "addr_assign_type").write_text(assign + "\n")
    if wireless:
        (entry / "wireless").mkdir()


def virtual(root: Path, name: str, mac: str) -> None:
    entry = root / "sys/class/net" / name
    entry.mkdir(parents=True)
    (entry / "type").write_text("1\n")
    (entry / "address").write_text(mac + "\n")


def machine(tmp_path: Path, *, dt_serial: str | None = None, cpuinfo_serial: str | None = None,
            cmdline: str = "console=ttyS1,115200 root=PARTUUID=ee1d0c5e-02") -> Path:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/cmdline").write_text(cmdline + "\n")
    cpuinfo = "processor\t: 0\nBogoMIPS\t: 38.40\n"
    if cpuinfo_serial:
        cpuinfo += f"Serial\t\t: {cpuinfo_serial}\n"
    (root / "proc/cpuinfo").write_text(cpuinfo)
    if dt_serial:
        dt = root / "sys/firmware/devicetree/base"
        dt.mkdir(parents=True)
        (dt / "serial-number").write_bytes(dt_serial.encode() + b"\0")
    virtual(root, "lo", "00:00:00:00:00:00")
    return root


def pi_root(tmp_path: Path, *, dt_serial: str = "10000000a1b2c3d4", mac: str = "dc:a6:32:01:02:03",
            driver: str = "bcmgenet", nic_name: str = "end0") -> Path:
    """A Pi 4 as the image leaves it: admin user, no host keys, empty machine-id, the FAT
    partition at /boot/firmware and the image's firstboot settings."""
    root = machine(tmp_path, dt_serial=dt_serial)
    nic(root, nic_name, mac, driver)
    nic(root, "wlan0", "dc:a6:32:01:02:04", "brcmfmac", wireless=True)
    etc = root / "etc"
    (etc / "ssh").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                "ewindow:x:1000:1000::/home/ewindow:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\newindow:x:1000:\n")
    (etc / "hostname").write_text("ewindow\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tewindow\n::1\tlocalhost\n")
    (etc / "machine-id").write_text("")
    (etc / "ewindow").mkdir()
    (etc / "ewindow/firstboot.json").write_text(json.dumps({
        "boot_dir": "/boot/firmware", "admin_user": "ewindow", "tap": "tap0",
        "identity": {"prefix": "fde1:c0fe::/64", "hostname_template": "ewindow-{mac6}"},
        "vpn": {"backends": []}}))
    keys = root / "home/ewindow/.ssh"
    keys.mkdir(parents=True)
    (keys / "authorized_keys").write_text(BUILT_KEY + "\n")
    (root / "boot/firmware").mkdir(parents=True)
    return root
