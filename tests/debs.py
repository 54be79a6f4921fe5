# SPDX-License-Identifier: MIT
"""Small .deb files for the tests, made with the real dpkg-deb."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path


def small_deb(folder: Path, name: str, *, version: str = "1.0", arch: str = "all", depends: str = "",
              files: Mapping[str, str] = {}, control: Mapping[str, str] = {}) -> Path:
    """``folder/NAME_VERSION_ARCH.deb``: ``files`` (path in the package → text; under
    ``usr/sbin`` executable) and extra ``control`` files (e.g. shlibs) in DEBIAN/."""
    tree = folder / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    fields = (f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
              "Maintainer: tests <t@example.org>\n")
    if depends:
        fields += f"Depends: {depends}\n"
    (tree / "DEBIAN/control").write_text(fields + "Description: test package (ewindow-image tests)\n")
    for control_name, text in control.items():
        (tree / "DEBIAN" / control_name).write_text(text)
    for inner, text in files.items():
        path = tree / inner
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if inner.startswith("usr/sbin/"):
            path.chmod(0o755)
    deb = folder / f"{name}_{version}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True,
                   capture_output=True)
    shutil.rmtree(tree)
    return deb
