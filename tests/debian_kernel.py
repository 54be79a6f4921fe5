# SPDX-License-Identifier: MIT
"""A newer Debian kernel than the image's, for the kernel upgrade test: the newest
self-contained ``linux-image-<ABI>-arm64`` of ``<suite>-backports`` (another ABI, so other
file names in /boot and on the FAT, like a security update of trixie's kernel).

"Self-contained": packaged like the release's own kernel, its modules inside. Newer kernels
in backports are split into linux-image, linux-modules, linux-base and linux-binary packages
that need backports' linux-base; the test installs one package, as a security update would.

Downloaded once into the cache by the builder's own resolver (:class:`AptResolver`): apt
checks each .deb against the mirror's signed index.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Packages
from debian.debian_support import Version

from ewindow_image.apt.resolver import KEYRING, AptResolver
from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.runner import run

# linux-image-6.17.13+deb13-arm64, not its -cloud-, -rt- or -16k- flavours
KERNEL_PACKAGE = re.compile(r"^linux-image-(\d[\w.+~]*)-arm64$")
# what a self-contained kernel depends on: nothing named linux-* but this alternative
INITRAMFS_TOOL = "linux-initramfs-tool"


@dataclass(frozen=True)
class Kernel:
    package: str  # linux-image-6.17.13+deb13-arm64
    release: str  # uname -r, e.g. 6.17.13+deb13-arm64
    version: str  # of the Debian package, e.g. 6.17.13-1~bpo13+1
    deb: Path


def newest_self_contained(available: str) -> tuple[str, str]:
    """``apt-cache dumpavail`` → (package, version) of the newest self-contained kernel."""
    found: list[tuple[Version, str]] = []
    for stanza in Packages.iter_paragraphs(available.splitlines(keepends=True), use_apt_pkg=False):
        needs = {alternative["name"] for relation in stanza.relations["depends"] or ()
                 for alternative in relation}
        if KERNEL_PACKAGE.match(stanza.get("Package", "")) and not any(
                name.startswith("linux-") and name != INITRAMFS_TOOL for name in needs):
            found.append((Version(stanza["Version"]), stanza["Package"]))
    assert found, "no self-contained arm64 kernel on the mirror"
    version, package = max(found)
    return package, str(version)


def backports_kernel(cache_root: Path, suite: str) -> Kernel:
    folder = cache_root / "test-kernel" / suite
    folder.mkdir(parents=True, exist_ok=True)
    site = folder / "site.yaml"
    site.write_text(json.dumps({"suite": suite, "apt": {"extra_repos": [
        {"uri": "http://deb.debian.org/debian", "suite": f"{suite}-backports", "key_file": KEYRING}]}}))
    apt = AptResolver(load_config(ConfigLayers(site_files=(site,))), cache_root)
    apt.update()
    package, version = newest_self_contained(run(["apt-cache", *apt.options(), "dumpavail"], capture=True))
    deb = folder / f"{package}_{version.replace(':', '%3a')}_arm64.deb"
    if not deb.is_file():
        run(["apt-get", "-q", *apt.options(), "-o", "APT::Sandbox::User=root", "download",
             f"{package}={version}"], cwd=folder)
    match = KERNEL_PACKAGE.match(package)
    assert match
    return Kernel(package, f"{match.group(1)}-arm64", version, deb)
