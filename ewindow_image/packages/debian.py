# SPDX-License-Identifier: MIT
"""The .deb of a built package: computed Depends, control file, copyright, dpkg-deb.

``Depends`` is computed the way dpkg-shlibdeps does it, without needing the target's dpkg
database: every shared library a binary needs (ELF ``DT_NEEDED``, read with pyelftools) is
looked up in the ``shlibs`` files of the sysroot's .debs (``libcrypto 3 libssl3t64 (>=
3.0.0)``), read in-process with python-debian. A library that no sysroot package provides is
an error, not a guess, and so is a sysroot .deb that cannot be read: an earlier version ran
``dpkg-deb --info DEB shlibs`` and took every failure for "no shlibs file", so one failed
dpkg-deb (seen once in CI, under verify-repro's libfaketime) silently lost libc6's entry.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path

from debian.arfile import ArError
from debian.debfile import DebError as DebFileError
from debian.debfile import DebFile
from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from ..errors import EWindowError
from .recipe import Recipe

SONAME = re.compile(r"^(?P<name>.+)\.so\.(?P<version>[0-9.]+)$")
MAINTAINER = "ewindow-image <ewindow-image@localhost>"


class DebError(EWindowError):
    pass


def needed_libraries(binary: Path) -> list[str]:
    """The sonames a binary needs; [] for a file that is not a dynamic ELF."""
    try:
        with binary.open("rb") as handle:
            elf = ELFFile(handle)
            return [str(tag.needed) for section in elf.iter_sections()  # type: ignore[attr-defined]
                    if isinstance(section, DynamicSection)
                    for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    except ELFError:
        return []


def parse_shlibs(text: str) -> dict[str, str]:
    """A shlibs control file: ``[type:] library version dependency`` lines → soname → dep."""
    found = {}
    for line in text.splitlines():
        fields = line.split(None, 3)
        if not fields or line.startswith("#"):
            continue
        if fields[0].endswith(":"):  # udeb: lines are for the installer
            continue
        if len(fields) >= 3:
            found[f"{fields[0]}.so.{fields[1]}"] = " ".join(fields[2:])
    return found


def shlibs_file(deb: Path) -> str:
    """The ``shlibs`` control file of ``deb``; "" for a package without one (headers, data)."""
    try:
        control = DebFile(os.fspath(deb)).control
        if not control.has_file("shlibs"):
            return ""
        content = control.get_content("shlibs", encoding="utf-8")
    except (ArError, DebFileError, OSError, EOFError, UnicodeDecodeError, tarfile.TarError) as error:
        raise DebError(f"{deb}: not a readable Debian package ({error})") from error
    return str(content or "")


def shlibs_of_debs(debs: Iterable[Path]) -> dict[str, str]:
    """soname → dependency, from the ``shlibs`` control files of ``debs``."""
    found: dict[str, str] = {}
    for deb in sorted(debs):
        found.update(parse_shlibs(shlibs_file(deb)))
    return found


def depends(binaries: Iterable[Path], shlibs: dict[str, str], what: str) -> str:
    deps = set()
    for binary in binaries:
        for soname in needed_libraries(binary):
            if soname not in shlibs:
                raise DebError(f"{what}: {binary.name} needs {soname}, which no package of the "
                               "sysroot provides (add it to the recipe's build_depends)")
            deps.add(shlibs[soname])
    return ", ".join(sorted(deps))


def control_text(fields: list[tuple[str, str]], summary: str, description: str) -> str:
    """A DEBIAN/control file: the fields that have a value, then the description, its long
    part folded as deb-control(5) wants (a blank line is " .")."""
    long = "\n".join(f" {line}" if line.strip() else " ." for line in description.splitlines())
    fields = [*fields, ("Description", f"{summary}\n{long}")]
    return "".join(f"{name}: {value}\n" for name, value in fields if value)


def control(recipe: Recipe, arch: str, depends_line: str, installed_kib: int) -> str:
    fields = [
        ("Package", recipe.name), ("Source", recipe.name), ("Version", recipe.deb_version),
        ("Architecture", arch), ("Maintainer", MAINTAINER), ("Installed-Size", str(installed_kib)),
        ("Depends", depends_line), ("Section", "net"), ("Priority", "optional"),
        ("Homepage", recipe.homepage),
        ("X-Ewindow-Source", f"{recipe.source.url} commit {recipe.source.commit} tree-sha256 "
                             f"{recipe.source.tree_sha256}"),
    ]
    return control_text(fields, recipe.summary, recipe.description)


LICENSE_FILES = {"GPL-3.0-or-later": "/usr/share/common-licenses/GPL-3"}


def copyright_file(recipe: Recipe) -> str:
    """debian/copyright in the machine-readable format (DEP-5)."""
    licence_file = LICENSE_FILES.get(recipe.license, "")
    copyright_lines = "\n".join(f" {line}" for line in recipe.copyright.splitlines())
    return (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {recipe.name}\nSource: {recipe.homepage}\n"
        f"Comment: built by ewindow-image from {recipe.source.url}\n"
        f" (commit {recipe.source.commit}) with the patches in packages/{recipe.name}/patches.\n\n"
        f"Files: *\nCopyright:{copyright_lines}\nLicense: {recipe.license}\n"
        + (f" On Debian systems the full text of the GNU General Public License version 3\n"
           f" is in {licence_file}.\n" if licence_file else "")
    )


def installed_kib(staging: Path) -> int:
    return sum((p.stat().st_size + 1023) // 1024 for p in staging.rglob("*") if p.is_file())


def dpkg_deb_argv(staging: Path, deb: Path) -> list[str]:
    return ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", os.fspath(staging), os.fspath(deb)]


def clamp_mtimes(tree: Path, epoch: int) -> None:
    """Every file and folder dated ``epoch`` (the upstream commit's time): the same .deb
    from the same input, whenever it is built."""
    for path in sorted(tree.rglob("*"), reverse=True) + [tree]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)
