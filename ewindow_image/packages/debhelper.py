# SPDX-License-Identifier: MIT
"""What debhelper would add to a package made from this checkout (checkout.py): the control
file, a DEP-5 copyright file, md5sums, and maintainer scripts that do what
``dh_installsysusers``, ``dh_installsystemd`` and ``dh_python3`` put into them.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import debian

if TYPE_CHECKING:
    from .checkout import CheckoutPackage

ARCH = "all"
LICENSE = "MIT"


def control(package: CheckoutPackage, version: str, installed_kib: int) -> str:
    fields = [("Package", package.name), ("Version", version), ("Architecture", ARCH),
              ("Maintainer", debian.MAINTAINER), ("Installed-Size", str(installed_kib)),
              ("Depends", ", ".join(package.depends)), ("Section", package.section),
              ("Priority", "optional")]
    return debian.control_text(fields, package.summary, package.description)


def copyright_file(package: CheckoutPackage) -> str:
    return ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            f"Upstream-Name: {package.name}\n"
            "Source: ewindow-image (this package is built from its checkout)\n\n"
            f"Files: *\nCopyright: the ewindow-image authors\nLicense: {LICENSE}\n")


def _words(values: Sequence[str]) -> str:
    return shlex.quote(" ".join(values))


def postinst(unit_names: Sequence[str], restart: Sequence[str], sysusers_files: Sequence[str],
             tmpfiles: Sequence[str] = (), package: str = "", python_dirs: Sequence[str] = ()) -> str:
    """What dh_installsysusers, dh_installtmpfiles, dh_python3 and dh_installsystemd put into a
    postinst. ``python_dirs``: folders of ``package``'s Python code, byte-compiled as
    dh_python3's py3compile does: firstboot's Python compiled its modules at every start
    (1-1.5 s of its 8.7 s start on an emulated Pi), and the units run with
    PYTHONDONTWRITEBYTECODE, so nothing else does."""
    return f"""#!/bin/sh
# Made by ewindow-image (ewindow_image/packages/checkout.py) as debhelper would.
set -e
UNITS={_words(unit_names)}
RESTART={_words(restart)}
SYSUSERS={_words(sysusers_files)}
TMPFILES={_words(tmpfiles)}
PACKAGE={shlex.quote(package)}
PYTHON_DIRS={_words(python_dirs)}
case "$1" in
configure|abort-upgrade|abort-deconfigure|abort-remove)
    if [ -n "$PYTHON_DIRS" ] && command -v py3compile >/dev/null 2>&1; then
        py3compile -p "$PACKAGE" $PYTHON_DIRS
    fi
    for conf in $SYSUSERS; do
        systemd-sysusers ${{DPKG_ROOT:+--root="$DPKG_ROOT"}} "$conf"
    done
    for unit in $UNITS; do
        deb-systemd-helper unmask "$unit" >/dev/null || true
        # was-enabled is true on a first installation: the unit is enabled then, and an
        # admin's disable is kept on upgrades
        if deb-systemd-helper --quiet was-enabled "$unit"; then
            deb-systemd-helper enable "$unit" >/dev/null || true
        else
            deb-systemd-helper update-state "$unit" >/dev/null || true
        fi
    done
    if [ -d /run/systemd/system ]; then
        for conf in $TMPFILES; do
            systemd-tmpfiles --create "$conf" || true
        done
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then
            for unit in $RESTART; do
                systemctl try-restart "$unit" || true
            done
        fi
    fi
    ;;
esac
exit 0
"""


def prerm(unit_names: Sequence[str], python_package: str = "") -> str:
    """``python_package``: its byte-code goes first, as dh_python3's py3clean does."""
    return f"""#!/bin/sh
set -e
UNITS={_words(unit_names)}
PYTHON_PACKAGE={shlex.quote(python_package)}
if [ -n "$PYTHON_PACKAGE" ] && command -v py3clean >/dev/null 2>&1; then
    py3clean -p "$PYTHON_PACKAGE"
fi
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    for unit in $UNITS; do
        deb-systemd-invoke stop "$unit" >/dev/null || true
    done
fi
exit 0
"""


def postrm(unit_names: Sequence[str]) -> str:
    return f"""#!/bin/sh
set -e
UNITS={_words(unit_names)}
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
    for unit in $UNITS; do
        deb-systemd-helper purge "$unit" >/dev/null || true
    done
fi
exit 0
"""


def md5sums(staging: Path, skip: Sequence[str]) -> str:
    """DEBIAN/md5sums as dh_md5sums writes it: every file but the conffiles (dpkg keeps their
    sums itself)."""
    lines = []
    for path in sorted(p for p in staging.rglob("*") if p.is_file() and not p.is_symlink()):
        inside = path.relative_to(staging).as_posix()
        if not inside.startswith("DEBIAN/") and "/" + inside not in skip:
            lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {inside}\n")
    return "".join(lines)
