# SPDX-License-Identifier: MIT
"""Packages from a folder of .deb files (``apt.local_debs``): for software Debian does not
carry, such as PeerVPN and cjdns. A stage package named X is installed from the newest
``X_*_arm64.deb`` or ``X_*_all.deb`` there when one exists, with apt resolving its
dependencies from the mirror; otherwise from the mirror as usual."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .config import Config
from .errors import EWindowError

CHROOT_DIR = "/var/cache/ewindow-local-debs"  # where the folder is bind-mounted while installing
# Packages no Debian mirror has: without a local .deb the build stops before it starts.
NOT_IN_DEBIAN = {"peervpn": "PeerVPN", "cjdns": "cjdns"}


def folder(cfg: Config) -> Path | None:
    if not cfg.apt.local_debs:
        return None
    return (cfg.base_dir / cfg.apt.local_debs).expanduser()


def find(cfg: Config, package: str) -> Path | None:
    where = folder(cfg)
    if where is None or not where.is_dir():
        return None
    found = [p for p in where.glob(f"{package}_*.deb") if p.name.endswith((f"_{cfg.arch}.deb", "_all.deb"))]
    return max(found, key=lambda p: p.name) if found else None


def check_available(cfg: Config, packages: tuple[str, ...]) -> None:
    for package in packages:
        if package in NOT_IN_DEBIAN and find(cfg, package) is None and not cfg.apt.extra_repos:
            where = folder(cfg)
            state = ("apt.local_debs is not set" if where is None
                     else f"{where} has no {package}_*_{cfg.arch}.deb")
            raise EWindowError(
                f"{NOT_IN_DEBIAN[package]} is not in Debian and {state}",
                hint=f"build a {package} .deb for {cfg.arch} (README 'PeerVPN and cjdns packages') and "
                     "set apt.local_debs to its folder (or name your repository in apt.extra_repos), "
                     "or remove it from vpn.backends")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
