# SPDX-License-Identifier: MIT
"""Command builders for the root filesystem: mmdebstrap, chroot, offline systemctl.

Nothing here runs a command; :mod:`ewindow_image.pipeline.stages.run` hands these argv lists to
:func:`ewindow_image.runner.run`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from ..apt.sources import COMPONENTS, apt_options, apt_sources
from ..config import Config

# Generating the initramfs during package installation happens twice (kernel postinst and the
# initramfs-tools trigger), ~9 min each under qemu-user. It is diverted to /bin/true while
# packages install, and stage 10-boot undoes the diversion and generates it once.
DIVERT_INITRAMFS = (
    'chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs'
    ' && ln -s /bin/true "$1/usr/sbin/update-initramfs"'
)

# mmdebstrap writes every --aptopt into this file of the target; the proxy must not stay.
MMDEBSTRAP_APT_CONF = "/etc/apt/apt.conf.d/99mmdebstrap"

# The tree's .deb folder after sync-out: emptied and made anew as Debian's apt makes it
# (partial/ owned by _apt, mode 0700), so the tree does not depend on what the shared
# download cache held when sync-in copied it: its partial/ came in owned by root or by _apt
# depending on which build had made it (issue 24: one stage key, two trees).
RESET_ARCHIVES = (
    'set -e; A="$1/var/cache/apt/archives"; rm -rf "$A"; mkdir -m 0755 "$A"; '
    'mkdir -m 0700 "$A/partial"; '
    'chown "$(awk -F: \'$1 == "_apt" { print $3 }\' "$1/etc/passwd"):0" "$A/partial"'
)


def mmdebstrap_argv(cfg: Config, packages: Sequence[str], rootfs: Path,
                    deb_cache: Path) -> list[str]:
    """The bootstrap: minbase plus ``packages``, sharing a .deb cache across builds."""
    cache = os.fspath(deb_cache)
    argv = [
        "mmdebstrap", "--mode=root", "--variant=minbase",
        f"--architectures={cfg.arch}", f"--components={COMPONENTS}",
        f"--include={','.join(packages)}",
        # Keep downloaded .debs so sync-out can copy them to the shared cache.
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
        f"--setup-hook=sync-in {cache} /var/cache/apt/archives/",
        f"--essential-hook={DIVERT_INITRAMFS}",
        f"--customize-hook=sync-out /var/cache/apt/archives {cache}",
        f"--customize-hook={RESET_ARCHIVES}",
        f'--customize-hook=rm -f "$1{MMDEBSTRAP_APT_CONF}"',
    ]
    argv += [f"--aptopt={opt}" for opt in apt_options(cfg)]
    argv += [cfg.suite.value, os.fspath(rootfs), *apt_sources(cfg)]
    return argv


# Runs as: sh -ec SCRIPT chroot ROOTFS COMMAND [HOSTDIR TARGETDIR]... . unshare gives the
# helper its own mount namespace, so every mount vanishes with it even if the build is killed.
_CHROOT_SCRIPT = r"""
R="$1"; CMD="$2"; shift 2
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/tmp"
mount -t tmpfs tmpfs "$R/run"
while [ $# -ge 2 ]; do mkdir -p "$R$2"; mount --bind "$1" "$R$2"; shift 2; done
# Name resolution for apt: the target's resolv.conf points into /run (systemd-resolved).
mkdir -p "$R/run/systemd/resolve"
cp /etc/resolv.conf "$R/run/systemd/resolve/stub-resolv.conf"
if [ ! -e "$R/usr/sbin/policy-rc.d" ]; then
  trap 'rm -f "$R/usr/sbin/policy-rc.d"' EXIT
  printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
  chmod 755 "$R/usr/sbin/policy-rc.d"
fi
if [ -n "${EWINDOW_GUEST_FAKETIME:-}" ]; then
  # verify-repro's clock moved ahead: the target's own libfaketime for emulated programs
  # (the host's, in LD_PRELOAD, cannot load into them); see pipeline/clockahead.py.
  mkdir -p "$R/run/ewindow-faketime"
  mount --bind "$EWINDOW_GUEST_FAKETIME" "$R/run/ewindow-faketime"
  env -u LD_PRELOAD chroot "$R" /usr/bin/env LD_PRELOAD=/run/ewindow-faketime/libfaketime.so.1 \
    /bin/sh -ec "$CMD"
else
  chroot "$R" /bin/sh -ec "$CMD"
fi
"""


def chroot_argv(rootfs: Path, command: str,
                binds: Sequence[tuple[Path, str]] = ()) -> list[str]:
    """Run a shell command inside the target (emulated), with services kept from starting."""
    argv = ["unshare", "--mount", "--propagation", "private", "--fork", "--",
            "/bin/sh", "-ec", _CHROOT_SCRIPT, "chroot", os.fspath(rootfs), command]
    for host_dir, target_dir in binds:
        argv += [os.fspath(host_dir), target_dir]
    return argv


# apt and dpkg in a stage leave nothing that depends on when or after what the stage ran, so
# that the tree follows from the stage's key (issue 24): no logs (apt's history, term and
# planner logs and dpkg.log carry the wall clock), and afterwards no binary package caches
# (built from the day's package lists) and no ldconfig aux-cache (the libraries' inode
# numbers and ctimes).
QUIET_APT = ("Dir::Log::History=/dev/null", "Dir::Log::Terminal=/dev/null", "Dir::Log::Planner=/dev/null",
             "DPkg::Options::=--log=/dev/null")


def apt_install_script(cfg: Config, packages: Sequence[str]) -> str:
    """apt inside the target for a later stage's packages; options are not left behind.

    When every package is a local .deb (a path), the package lists are read only if the
    target lacks one of their dependencies: apt resolves local .debs against what is
    installed without any list, and ``apt-get update`` (reading the whole mirror's index,
    emulated) was most of stage 35-vpn's 12 s for PeerVPN and cjdns (issue 21). A failed
    simulation changes nothing; the install after ``update`` is then the usual one."""
    options = [o.replace(" ", "=", 1).replace(chr(34), "") for o in apt_options(cfg)] + list(QUIET_APT)
    opts = " ".join(f"-o {shlex.quote(o)}" for o in options)
    names = " ".join(shlex.quote(p) for p in packages)
    install = f"apt-get {opts} install -q -y --no-install-recommends {names}"
    update = f"apt-get {opts} update -q"
    if packages and all(p.startswith("/") for p in packages):
        update = (f"if apt-get {opts} install -s -qq --no-install-recommends {names} >/dev/null 2>&1; "
                  f"then echo 'local packages: every dependency installed, no package lists read'; "
                  f"else {update}; fi")
    return (f"{update} && {install} && "
            # The archive cache is a bind mount of the shared host cache: no apt-get clean.
            "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/ldconfig/aux-cache")


def systemctl_enable_argv(rootfs: Path, units: Sequence[str]) -> list[str]:
    """Enable units without running anything in the target (no emulation)."""
    return ["systemctl", f"--root={os.fspath(rootfs)}", "enable", *units]


def host_hook_argv(rootfs: Path, command: str) -> list[str]:
    return ["/bin/sh", "-ec", command, "host-hook", os.fspath(rootfs)]
