# SPDX-License-Identifier: MIT
"""The export gate: the golden image must hold no machine identity and no secret.

Run on the finished tree before the image is assembled; any finding stops the build. The
original EWindow published its VPN key and an SSH private key in its repository; the image
builders' own history has host keys baked into every card (rpi-image-gen#289).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Where text files worth reading live; binaries under /usr are not read for secrets.
SCANNED_DIRS = ("etc", "root", "home", "var/lib", "usr/local", "boot/firmware", "opt", "srv")
MAX_SCANNED_SIZE = 256 * 1024
MIN_SECRET_LENGTH = 8
PRIVATE_KEY_MARKERS = (b"PRIVATE KEY-----", b"BEGIN OPENSSH PRIVATE KEY")
PROXY_SETTINGS = (b"acquire::http::proxy", b"acquire::https::proxy", b"acquire::ftp::proxy")
# What firstboot makes for one window; in the image it would make every card the same window.
PER_WINDOW_FILES = ("var/lib/ewindow/identity.json", "var/lib/ewindow/firstboot.done",
                    "etc/ewindow/deployment.json", "etc/wpa_supplicant/wpa_supplicant-wlan0.conf",
                    "etc/ewindow/tap", "etc/systemd/network/10-ewindow-tap0.netdev",
                    "etc/systemd/network/10-ewindow-tap0.link",
                    "boot/firmware/ewindow",
                    "etc/yggdrasil/yggdrasil.conf", "etc/cjdroute.conf", "etc/peervpn/ewindow.conf",
                    "var/lib/ewindow/vpn")


@dataclass(frozen=True)
class Finding:
    path: str  # inside the image, e.g. /etc/ssh/ssh_host_ed25519_key
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _inside(tree: Path, path: Path) -> str:
    return "/" + path.relative_to(tree).as_posix()


def _scanned_files(tree: Path) -> Iterator[Path]:
    for top in SCANNED_DIRS:
        for dirpath, _dirs, files in os.walk(tree / top):
            for name in files:
                path = Path(dirpath) / name
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_SCANNED_SIZE:
                    yield path


def lint_tree(tree: Path, secrets: Sequence[str] = ()) -> list[Finding]:
    """Everything in ``tree`` that must not ship in a golden image."""
    findings = [Finding(_inside(tree, key), "SSH host key: made on each window at first boot")
                for key in sorted((tree / "etc/ssh").glob("ssh_host_*"))]
    machine_id = tree / "etc/machine-id"
    if machine_id.exists() and machine_id.read_text().strip() not in ("", "uninitialized"):
        findings.append(Finding("/etc/machine-id", "not empty: every window would share it"))
    findings += [Finding("/" + inner, "per-window state: firstboot makes it on each card")
                 for inner in PER_WINDOW_FILES if (tree / inner).exists()]
    findings += [Finding(_inside(tree, key), "VPN private key: made on each window at first boot")
                 for key in sorted(tree.glob("etc/tinc/*/rsa_key.priv"))]
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            if name.startswith("qemu-") and name.endswith("-static"):
                findings.append(Finding(_inside(tree, Path(dirpath) / name), "qemu-user build helper"))
    wanted = [s.encode() for s in secrets if len(s) >= MIN_SECRET_LENGTH]
    for path in _scanned_files(tree):
        content = path.read_bytes()
        where = _inside(tree, path)
        if any(marker in content for marker in PRIVATE_KEY_MARKERS) and path.stat().st_mode & 0o004:
            findings.append(Finding(where, "private key readable by everyone"))
        if where.startswith("/etc/apt/") and any(p in content.lower() for p in PROXY_SETTINGS):
            findings.append(Finding(where, "apt proxy setting from the build"))
        if any(secret in content for secret in wanted):
            findings.append(Finding(where, "contains a secret value from the site config"))
    return findings
