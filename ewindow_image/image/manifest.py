# SPDX-License-Identifier: MIT
"""The image's package manifest: what dpkg says is installed in the finished tree."""

from __future__ import annotations

import os
from pathlib import Path


def dpkg_manifest_argv(rootfs: Path) -> list[str]:
    """Installed packages of the target, read by the host's dpkg-query."""
    return ["dpkg-query", f"--admindir={os.fspath(rootfs / 'var/lib/dpkg')}", "-W",
            "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"]


def parse_manifest(output: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and fields[0].startswith("ii"):
            rows.append((fields[1], fields[2], fields[3]))
    return sorted(rows)
