# SPDX-License-Identifier: MIT
"""What the finished tree holds, package by package, and which .deb each one came from.

dpkg's database names the packages and versions; the sha256 of each .deb comes from where
it was installed from: the mirror's signed index for Debian's (``apt-get --print-uris
download``, the hash apt checked when it installed it), the file itself for a package built
from source or an admin's own .deb. A version the mirror no longer has (a stage cached
before a point release) is looked up in the build's .deb cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..apt.resolver import AptResolver
from ..image.artifacts import sha256_file
from ..image.manifest import UNKNOWN_SHA256, DpkgRow, InstalledPackage, dpkg_manifest_argv, parse_manifest
from ..log import log
from ..runner import run
from .localdebs import LocalDeb


def cached_deb_name(row: DpkgRow) -> str:
    """apt's name for the .deb in /var/cache/apt/archives: the epoch's colon as %3a."""
    return f"{row.name}_{row.version.replace(':', '%3a')}_{row.arch}.deb"


def installed_packages(tree: Path, apt: AptResolver | None, local_debs: Mapping[str, LocalDeb],
                       deb_cache: Path, built_from_source: Mapping[str, str]) -> list[InstalledPackage]:
    rows = parse_manifest(run(dpkg_manifest_argv(tree), capture=True))
    from_mirror = [(r.name, r.version) for r in rows if r.name not in local_debs]
    mirror = apt.mirror_debs(from_mirror) if apt is not None else {}
    packages = []
    unknown = []
    for row in rows:
        local = local_debs.get(row.name)
        found = mirror.get((row.name, row.version))
        cached = deb_cache / cached_deb_name(row)
        if local is not None:
            origin = built_from_source.get(row.name, f"local .deb {local.path.name}")
            packages.append(InstalledPackage(row, sha256_file(local.path), origin))
        elif found is not None:
            packages.append(InstalledPackage(row, found.sha256, found.url))
        elif cached.is_file():
            origin = f"the build's .deb cache ({cached.name}; not on the mirror today)"
            packages.append(InstalledPackage(row, sha256_file(cached), origin))
        else:
            unknown.append(row.name)
            packages.append(InstalledPackage(row, UNKNOWN_SHA256, "unknown: not on the mirror today"))
    if unknown:
        log.warning("warning: no sha256 for %d installed packages (neither on the mirror nor in the "
                    ".deb cache): %s", len(unknown), ", ".join(unknown[:10]))
    return packages
