# SPDX-License-Identifier: MIT
"""The compiler and libraries a package is built with, for its target architecture.

Debian's own toolchains, natively: ``gcc`` for the build host's architecture, the cross
compiler (``gcc-aarch64-linux-gnu`` on x86_64) for the other one; nothing is compiled under
emulation. The target's libraries come from a sysroot: the recipe's ``build_depends`` of the
target's suite and architecture, unpacked by ``mmdebstrap --variant=extract`` (no maintainer
scripts, no emulation, ~4 s), with their .debs kept for the shlibs that ``Depends`` is
computed from. The host's dpkg architectures are never changed.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import EWindowError

# Debian architecture → GNU triplet
GNU_TYPE = {"arm64": "aarch64-linux-gnu", "amd64": "x86_64-linux-gnu"}
MACHINE_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
SYSROOT_DEBS = "var/cache/apt/archives"
SUITE = re.compile(r"[a-z][a-z0-9-]{1,30}")
BUILD_TOOLS = ("node", "python3", "make")  # besides the compiler; their versions key a package


@dataclass(frozen=True)
class Target:
    arch: str  # Debian architecture
    suite: str  # Debian release whose libraries the binaries link against

    def __post_init__(self) -> None:
        if self.arch not in GNU_TYPE:
            raise EWindowError(f"unsupported architecture '{self.arch}' ({', '.join(GNU_TYPE)})")
        if not SUITE.fullmatch(self.suite):  # it names sysroot and log files
            raise EWindowError(f"'{self.suite[:40]}' is not a Debian release name (e.g. trixie)")

    @property
    def label(self) -> str:
        return f"{self.suite}-{self.arch}"


def host_arch() -> str:
    return MACHINE_ARCH.get(platform.machine(), platform.machine())


def host_suite() -> str:
    """This machine's Debian release (VERSION_CODENAME in /etc/os-release)."""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise EWindowError("cannot tell this machine's Debian release from /etc/os-release",
                       hint="give it with --suite")


def tool_prefix(target: Target) -> str:
    """'' for the build host's own architecture, else the cross toolchain's triplet prefix."""
    return "" if target.arch == host_arch() else f"{GNU_TYPE[target.arch]}-"


def version_argv(target: Target) -> list[str]:
    return [f"{tool_prefix(target)}gcc", "--version"]


def sysroot_argv(target: Target, packages: Sequence[str], sysroot: Path,
                 sources: Sequence[str]) -> list[str]:
    """Unpack ``packages`` (and their dependencies) of the target into ``sysroot``."""
    return ["mmdebstrap", "--quiet", "--mode=root", "--variant=extract",
            f"--architectures={target.arch}", f"--include={','.join(packages)}",
            "--skip=download/empty", "--skip=cleanup/apt/cache",
            target.suite, os.fspath(sysroot), *sources]


def merge_usr(sysroot: Path) -> None:
    """The merged-/usr links a real install has (Debian 12+), so that the dynamic loader
    path /lib/ld-linux-*.so and linker scripts resolve inside the sysroot."""
    for name in ("lib", "bin", "sbin"):
        link = sysroot / name
        if not link.exists() and not link.is_symlink() and (sysroot / "usr" / name).is_dir():
            link.symlink_to(f"usr/{name}")


def sysroot_flags(target: Target, sysroot: Path, source: Path) -> list[str]:
    """Compile and link against the sysroot's headers, start files and libraries first.

    ``--sysroot`` alone is not enough: Debian's cross gcc searches its own target folders
    (``/usr/aarch64-linux-gnu``, from libc6-dev-arm64-cross when installed) before the
    sysroot, and would link the host release's glibc under the target's libcrypto
    (``undefined reference to __isoc23_strtol@GLIBC_2.38``)."""
    root, triplet = os.fspath(sysroot), GNU_TYPE[target.arch]
    libdirs = [f"{root}/usr/lib/{triplet}", f"{root}/lib/{triplet}"]
    # Where the source and the sysroot lie (per cache folder) must not reach the binary: the
    # debug info holds both paths, and the linker's build ID hashes the debug info, so two
    # caches built binaries that differed in their build ID alone.
    path_maps = [f"-ffile-prefix-map={os.fspath(source)}=.", f"-ffile-prefix-map={root}="]
    return [f"--sysroot={root}", f"-isystem{root}/usr/include/{triplet}", f"-isystem{root}/usr/include",
            f"-B{libdirs[0]}/", *(f"-L{d}" for d in libdirs), f"-Wl,-rpath-link,{libdirs[0]}", *path_maps]


def compiler_wrapper(target: Target, sysroot: Path, source: Path) -> str:
    """A ``cc`` that compiles and links against the sysroot, for build systems that take
    CC as one word (cjdns spawns it directly)."""
    gcc = shlex.quote(f"{tool_prefix(target)}gcc")
    flags = " ".join(shlex.quote(f) for f in sysroot_flags(target, sysroot, source))
    # -g0 last, over the build's own -g: the installed binaries are stripped anyway, and the
    # linker's build ID hashes the debug sections too, which differed between two build
    # folders (cjdns; build.py verify-repro found it) while the stripped code was the same.
    return f"#!/bin/sh\nexec {gcc} {flags} \"$@\" -g0\n"


def strip_argv(target: Target, binary: Path) -> list[str]:
    return [f"{tool_prefix(target)}strip", "--strip-unneeded", os.fspath(binary)]


def build_env(target: Target, wrapper: Path, source: Path, epoch: int) -> dict[str, str]:
    """What a recipe's build steps see. The source path is mapped away so that the binary
    does not depend on where it was built."""
    prefix = tool_prefix(target)
    return {
        "CC": os.fspath(wrapper), "AR": f"{prefix}ar", "RANLIB": f"{prefix}ranlib",
        "STRIP": f"{prefix}strip", "CFLAGS": "",
        "LDFLAGS": "-Wl,--as-needed",
        # Debian's names (dpkg-architecture); not TARGET_ARCH, which make's built-in rules use
        "DEB_HOST_ARCH": target.arch, "DEB_HOST_GNU_TYPE": GNU_TYPE[target.arch],
        "SOURCE_DATE_EPOCH": str(epoch), "HOME": os.fspath(source.parent),
    }
