# SPDX-License-Identifier: MIT
"""What the build host needs, checked before anything is written; binfmt set up when missing.

The Debian packages are installed by ``make host-deps`` (which ``make image`` runs); this
module only checks, so a missing tool is one clear line instead of a failure mid-build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import HostError
from .log import log
from .runner import run

# command -> Debian package providing it (the Makefile's HOST_PACKAGES installs them all)
BUILD_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "unshare": "util-linux",
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "fsck.vfat": "dosfstools",
    "mcopy": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "faketime": "faketime",
    "bmaptool": "bmap-tools",
    "zstd": "zstd",
    "xz": "xz-utils",
    "arch-test": "arch-test",
    "update-binfmts": "binfmt-support",
    "systemctl": "systemd",
    "dpkg-query": "dpkg",
    "dpkg-deb": "dpkg",
    "useradd": "passwd",
}
# The source packages (packages/): Debian's compilers for both architectures, git apply for
# the patches, mmdebstrap for the sysroots; cjdns' build runs on node and python3.
CROSS_GCC = ({"aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu"} if os.uname().machine == "x86_64"
             else {"x86_64-linux-gnu-gcc": "gcc-x86-64-linux-gnu"})
SOURCE_PACKAGE_TOOLS = {"gcc": "gcc", **CROSS_GCC, "make": "make", "git": "git", "node": "nodejs",
                        "python3": "python3", "mmdebstrap": "mmdebstrap", "dpkg-deb": "dpkg"}
BOOT_TEST_TOOLS = {"qemu-system-aarch64": "qemu-system-arm", "mcopy": "mtools",
                   "sfdisk": "fdisk"}
PERSONALISE_TOOLS = {"mcopy": "mtools", "mren": "mtools", "sfdisk": "fdisk", "debugfs": "e2fsprogs"}
FLASH_TOOLS = {**PERSONALISE_TOOLS, "bmaptool": "bmap-tools", "lsblk": "util-linux"}

SIGNING_TOOLS = {"gpg": "gpg"}
# network init's repository key and build.py repo (README "Updates")
KEY_TOOLS = {"gpg": "gpg", "gpgconf": "gpgconf"}
REPOSITORY_TOOLS = {**KEY_TOOLS, "reprepro": "reprepro", **SOURCE_PACKAGE_TOOLS}


def build_tools(*, signing: bool) -> dict[str, str]:
    """What a build runs on the host: gpg only to sign a release (``release.signing_key``)."""
    return {**BUILD_TOOLS, **(SIGNING_TOOLS if signing else {})}


BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_ENTRY = BINFMT_DIR / "qemu-aarch64"


def missing_tools(tools: dict[str, str]) -> list[str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [f"{cmd} ({pkg})" for cmd, pkg in tools.items() if shutil.which(cmd, path=path) is None]


def require_tools(tools: dict[str, str]) -> None:
    missing = missing_tools(tools)
    if missing:
        raise HostError(f"missing host tools: {', '.join(missing)}",
                        hint="run 'make host-deps' (apt-get install of the listed packages)")


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise HostError(f"{action} needs root (mmdebstrap --mode=root, file owners in the image)",
                        hint="run it through 'sudo', or use 'make image' which does")


def binfmt_flags(entry_text: str) -> str:
    for line in entry_text.splitlines():
        if line.startswith("flags:"):
            return line.split(":", 1)[1].strip()
    return ""


def ensure_binfmt() -> None:
    """Make arm64 binaries run on this x86 host through qemu-user, as chroots need it.

    The F flag makes the kernel open the interpreter at registration, so it works inside the
    target chroot where /usr/libexec/qemu-binfmt does not exist.
    """
    if os.uname().machine == "aarch64":
        return
    if not (BINFMT_DIR / "status").exists():
        log.info("    mounting binfmt_misc")
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", os.fspath(BINFMT_DIR)])
    text = BINFMT_ENTRY.read_text() if BINFMT_ENTRY.exists() else ""
    if not text.startswith("enabled") or "F" not in binfmt_flags(text):
        log.info("    enabling qemu-aarch64 in binfmt_misc")
        run(["update-binfmts", "--enable", "qemu-aarch64"])
        text = BINFMT_ENTRY.read_text() if BINFMT_ENTRY.exists() else ""
    if "F" not in binfmt_flags(text):
        raise HostError("qemu-aarch64 binfmt entry lacks the F (fix binary) flag",
                        hint="install Debian's qemu-user-static (not qemu-user-binfmt)")
    run(["arch-test", "arm64"])
