# SPDX-License-Identifier: MIT
"""The sysroot's ``shlibs`` files, read from real .debs built with dpkg-deb: a package with
one gives its sonames, a package without one gives none, and a .deb that cannot be read is
an error naming the file (it once passed for "no shlibs" and lost libc6's entry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ewindow_image.packages.debian import DebError, depends, shlibs_file, shlibs_of_debs

from .debs import small_deb

LIBC_SHLIBS = "libc 6 libc6 (>= 2.41)\nudeb: libc 6 libc6-udeb (>= 2.41)\n"


def make_deb(tmp_path: Path, name: str, shlibs: str | None) -> Path:
    return small_deb(tmp_path, name, control={} if shlibs is None else {"shlibs": shlibs})


def test_shlibs_of_real_debs(tmp_path: Path) -> None:
    libc = make_deb(tmp_path, "libc6", LIBC_SHLIBS)
    headers = make_deb(tmp_path, "linux-libc-dev", None)
    assert shlibs_file(headers) == ""
    assert shlibs_of_debs([headers, libc]) == {"libc.so.6": "libc6 (>= 2.41)"}
    assert shlibs_of_debs([headers]) == {}


@pytest.mark.parametrize("damage", ["truncated", "not an archive", "empty"])
def test_an_unreadable_deb_is_an_error_naming_it(tmp_path: Path, damage: str) -> None:
    deb = make_deb(tmp_path, "libc6", LIBC_SHLIBS)
    data = deb.read_bytes()
    deb.write_bytes({"truncated": data[:200], "not an archive": b"hello\n" * 50, "empty": b""}[damage])
    with pytest.raises(DebError, match=rf"^{deb}: not a readable Debian package"):
        shlibs_of_debs([make_deb(tmp_path, "other", None), deb])


def test_a_library_no_package_provides_is_an_error(tmp_path: Path) -> None:
    binary = Path("/bin/true")  # a dynamic ELF of the host, needing libc.so.6
    assert depends([binary], {"libc.so.6": "libc6 (>= 2.41)"}, "t") == "libc6 (>= 2.41)"
    with pytest.raises(DebError, match="true needs libc.so.6, which no package of the sysroot provides"):
        depends([binary], {}, "t")
