# SPDX-License-Identifier: MIT
"""The image's package manifest: what dpkg says is installed in the finished tree, with the
sha256 of each .deb and where it came from, and the differences between two package sets.

The manifest (``NAME.manifest``) has one line per package, tab-separated:
``package  version  architecture  sha256-of-the-.deb  origin``; the origin is the mirror URL
of the .deb, ``built from URL (commit C)`` for a package built from source, or
``local .deb FILE`` for an admin's own. Manifests of releases before the sha256 column
(three or four columns) are still read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstboot import checks

from ..config import yamlfile

UNKNOWN_SHA256 = "-"


@dataclass(frozen=True)
class DpkgRow:
    """One installed package as the target's dpkg database has it."""

    name: str
    version: str
    arch: str
    source: str  # the Debian source package it was built from
    source_version: str


@dataclass(frozen=True)
class InstalledPackage:
    row: DpkgRow
    sha256: str  # of the .deb that was installed; UNKNOWN_SHA256 when nothing says
    origin: str  # mirror URL, "built from …" or "local .deb …"

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def version(self) -> str:
        return self.row.version


def dpkg_manifest_argv(rootfs: Path) -> list[str]:
    """Installed packages of the target, read by the host's dpkg-query."""
    return ["dpkg-query", f"--admindir={os.fspath(rootfs / 'var/lib/dpkg')}", "-W", "-f",
            "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${source:Package}"
            "\t${source:Version}\n"]


def parse_manifest(output: str) -> list[DpkgRow]:
    """dpkg-query's lines → the installed packages (not removed or half-configured), sorted."""
    rows = []
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 6 and fields[0].startswith("ii"):
            rows.append(DpkgRow(*fields[1:]))
    return sorted(rows, key=lambda r: (r.name, r.arch))


def manifest_text(packages: Iterable[InstalledPackage]) -> str:
    return "".join(f"{p.name}\t{p.version}\t{p.row.arch}\t{p.sha256}\t{p.origin}\n" for p in packages)


# A Debian version (policy 5.6.12): what a manifest line may carry before it is printed.
DEBIAN_VERSION = re.compile(r"[0-9][A-Za-z0-9.+~:-]{0,127}")


def read_versions(text: str) -> dict[str, str]:
    """package → version from a manifest, of this or an earlier format. A manifest may come
    from anywhere (``plan --manifest``): lines without a Debian package name and version are
    skipped, so nothing else reaches the output."""
    versions = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or not DEBIAN_VERSION.fullmatch(fields[1]):
            continue
        try:
            versions[checks.debian_package(fields[0])] = fields[1]
        except checks.InvalidValue:
            continue
    return versions


MAX_MANIFEST_BYTES = 8 << 20  # an image's manifest is ~50 KB


def load_versions(path: Path) -> dict[str, str]:
    """:func:`read_versions` of a manifest file (``plan --manifest`` may name anything): read
    as every user file is, a regular file of UTF-8 text of at most MAX_MANIFEST_BYTES."""
    return read_versions(yamlfile.read_text(path, max_bytes=MAX_MANIFEST_BYTES))


def changed(before: Mapping[str, str], after: Mapping[str, str],
            order: Callable[[str], Any] = str) -> Iterator[tuple[str, str | None, str | None]]:
    """The names whose values differ between two maps, in ``order``, with the value before
    and after (None: not there)."""
    for name in sorted(set(before) | set(after), key=order):
        old, new = before.get(name), after.get(name)
        if old != new:
            yield name, old, new


def package_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What differs between two package → version maps: "systemd 257.1 → 257.2", "tmux
    added", "nano removed"; sorted by package."""
    return [f"{name} {new} added" if old is None else f"{name} {old} removed" if new is None
            else f"{name} {old} → {new}" for name, old, new in changed(before, after)]
