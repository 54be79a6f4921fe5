# SPDX-License-Identifier: MIT
""".deb files installed in place of a mirror's package of the same name: the ones built from
source (``packages/``: PeerVPN, cjdns) and, overriding them, an admin's own in
``apt.local_debs`` (the newest ``X_*_arm64.deb`` or ``X_*_all.deb`` there). apt resolves
their dependencies from the mirror. A stage's key records each one's identity: the file's
hash for an admin's .deb, the package key for one built from source (known before it is
built, so ``plan`` changes nothing)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import EWindowError

CHROOT_DIR = "/var/cache/ewindow-local-debs"  # where they are bind-mounted while installing
# Packages no Debian mirror has: without a recipe or a local .deb the build stops before it starts.
NOT_IN_DEBIAN = {"peervpn": "PeerVPN", "cjdns": "cjdns"}


@dataclass(frozen=True)
class LocalDeb:
    path: Path
    identity: str  # what the stage key records


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


def from_folder(cfg: Config, packages: Iterable[str]) -> dict[str, LocalDeb]:
    """The admin's .debs for ``packages``, from ``apt.local_debs``."""
    found = {}
    for name in packages:
        deb = find(cfg, name)
        if deb is not None:
            found[name] = LocalDeb(deb, f"{deb.name} {digest(deb)[:16]}")
    return found


def check_available(cfg: Config, packages: Iterable[str], local: Mapping[str, LocalDeb]) -> None:
    for package in packages:
        if package in NOT_IN_DEBIAN and package not in local and not cfg.apt.extra_repos:
            where = folder(cfg)
            state = ("apt.local_debs is not set" if where is None
                     else f"{where} has no {package}_*_{cfg.arch}.deb")
            raise EWindowError(
                f"{NOT_IN_DEBIAN[package]} is not in Debian, has no recipe in packages/ and {state}",
                hint=f"restore packages/{package}, or set apt.local_debs to a folder with a {package} "
                     ".deb, or remove it from vpn.backends")


def stage_folder(debs: Iterable[LocalDeb], target: Path) -> Path:
    """One folder with the .debs a stage installs, to bind into the tree."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for deb in debs:
        shutil.copyfile(deb.path, target / deb.path.name)
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
