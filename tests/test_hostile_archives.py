# SPDX-License-Identifier: MIT
"""Issue 22: source archives and the mirrors they come from. Unpacking allows regular files,
folders and relative symlinks that stay in the tree (never through another symlink), within
caps on members, size and ratio; a download is capped by size and time, and a mirror entry
must be a regular file. Everything else is a SourceError, with nothing outside the target."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import io
import os
import stat
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ewindow_image.packages import source
from ewindow_image.packages.recipe import Recipe, load_recipe
from ewindow_image.packages.source import SourceError, fetch, tree_digest, unpack

from .budget import examples

REPO = Path(__file__).resolve().parent.parent
PEERVPN = load_recipe(REPO / "packages/peervpn")

Member = tuple[str, bytes, str, bytes]  # name, type, link target, content


def make_archive(path: Path, members: list[Member], *, top: str = "top") -> Path:
    """A tar.gz like git archive's: everything under one top folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_dir(top))
        for name, kind, link, content in members:
            info = tarfile.TarInfo(f"{top}/{name}" if not name.startswith("/") else name)
            info.type = kind
            info.linkname = link
            info.mode = 0o644
            if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


def outside_listing(tmp_path: Path) -> set[str]:
    return {os.fspath(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "unpacked" not in p.parts}


@pytest.mark.parametrize(("members", "expected"), [
    ([("hard", tarfile.LNKTYPE, "/etc/passwd", b"")], "hard link"),  # an absolute hard link
    ([("dev", tarfile.CHRTYPE, "", b"")], "character device"),
    ([("dev", tarfile.BLKTYPE, "", b"")], "block device"),
    ([("fifo", tarfile.FIFOTYPE, "", b"")], "FIFO"),
    ([("l2", tarfile.SYMTYPE, ".", b""), ("l1", tarfile.SYMTYPE, "l2/..", b"")], "through the symlink l2"),
    ([("l2", tarfile.SYMTYPE, ".", b""), ("l2/../../x", tarfile.REGTYPE, "", b"x")],
     "leaves the source tree"),
    ([("link", tarfile.SYMTYPE, "../../etc", b"")], "leaves the source tree"),
    ([("abs", tarfile.SYMTYPE, "/etc/passwd", b"")], "leaves the source tree"),
    ([("bb/", tarfile.SYMTYPE, "..", b"")], "leaves the source tree"),  # found by Hypothesis
    ([("d", tarfile.SYMTYPE, "sub", b""), ("sub", tarfile.DIRTYPE, "", b""),
      ("d/x", tarfile.REGTYPE, "", b"x")], "through the symlink d"),
    ([("l1", tarfile.SYMTYPE, "l2/..", b""), ("l2", tarfile.SYMTYPE, ".", b"")], "through the symlink l2"),
])
def test_members_that_are_no_plain_tree_are_refused_before_anything_is_written(
        tmp_path: Path, members: list[Member], expected: str) -> None:
    archive = make_archive(tmp_path / "a.tar.gz", members)
    before = outside_listing(tmp_path)
    with pytest.raises(SourceError, match=expected):
        unpack(archive, tmp_path / "unpacked")
    with pytest.raises(SourceError):
        tree_digest(archive)
    assert not any((tmp_path / "unpacked").iterdir()) if (tmp_path / "unpacked").exists() else True
    assert outside_listing(tmp_path) == before


def test_the_real_archives_unpack_with_their_in_tree_links(tmp_path: Path) -> None:
    shared = REPO.parent / "shared/sources"
    for archive in sorted(shared.glob("*.tar.gz")):
        target = tmp_path / archive.name
        unpack(archive, target)
        links = [p for p in target.rglob("*") if p.is_symlink()]
        for link in links:  # cjdns' README links into doc/
            assert link.resolve().is_relative_to(target.resolve()), link


def test_caps_on_members_size_and_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = make_archive(tmp_path / "many.tar.gz", [(f"f{i}", tarfile.REGTYPE, "", b"") for i in range(30)])
    monkeypatch.setattr(source, "MAX_MEMBERS", 20)
    with pytest.raises(SourceError, match="more than 20 members"):
        unpack(many, tmp_path / "unpacked-many")
    monkeypatch.setattr(source, "MAX_MEMBERS", 100_000)
    big = make_archive(tmp_path / "big.tar.gz", [("zeros", tarfile.REGTYPE, "", bytes(3 << 20))])
    monkeypatch.setattr(source, "MAX_UNPACKED_BYTES", 2 << 20)
    with pytest.raises(SourceError, match="more than 2 MiB unpacked"):
        tree_digest(big)
    monkeypatch.setattr(source, "MAX_UNPACKED_BYTES", 1 << 30)
    with pytest.raises(SourceError, match=r"unpacks to more than 100 times its size"):
        unpack(big, tmp_path / "unpacked-big")  # 3 MiB of zeros gzip to ~3 KiB


def test_a_header_claiming_gigabytes_is_refused_without_reading_them(tmp_path: Path) -> None:
    info = tarfile.TarInfo("top/huge")
    info.size = 7 << 30
    header = _dir("top").tobuf(tarfile.PAX_FORMAT) + info.tobuf(tarfile.PAX_FORMAT)
    archive = tmp_path / "claims.tar.gz"
    archive.write_bytes(gzip.compress(header + bytes(1 << 16), mtime=0))
    with pytest.raises(SourceError, match="unpacked"):
        tree_digest(archive)


NAMES = st.text(st.sampled_from("ab./-@"), min_size=1, max_size=8)
KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
         tarfile.FIFOTYPE]
MEMBER = st.tuples(NAMES, st.sampled_from(KINDS),
                   st.one_of(NAMES, st.sampled_from(["..", "/etc", ".", "../..", "a/../.."])),
                   st.binary(max_size=8))


@settings(max_examples=examples(200), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.lists(MEMBER, max_size=6))
def test_generated_archives_unpack_inside_or_are_refused(tmp_path: Path, members: list[Member]) -> None:
    folder = Path(os.path.realpath(tempfile.mkdtemp(dir=tmp_path)))
    archive = make_archive(folder / "a.tar.gz", members)
    target = folder / "unpacked"
    try:
        unpack(archive, target)
    except SourceError:
        pass
    else:
        for path in target.rglob("*"):
            mode = path.lstat().st_mode
            assert stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode), path
            if stat.S_ISLNK(mode):
                assert os.path.realpath(path).startswith(os.fspath(target)), (path, os.readlink(path))
    assert {p.name for p in folder.iterdir()} <= {"a.tar.gz", "unpacked"}


# --- downloads -----------------------------------------------------------------------------


def recipe_named(file: str, url: str = "http://127.0.0.1:9/none.tar.gz") -> Recipe:
    return dataclasses.replace(PEERVPN, source=dataclasses.replace(PEERVPN.source, file=file, url=url))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["/dev/zero", "/etc/shadow"])
def test_a_mirror_entry_that_is_a_link_is_refused_and_nothing_is_copied(tmp_path: Path, target: str) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    recipe = recipe_named("x.tar.gz")
    (mirror / "x.tar.gz").symlink_to(target)
    with pytest.raises(SourceError, match="not a regular file"):
        fetch(recipe, [mirror.as_uri()], tmp_path / "downloads")
    assert not list((tmp_path / "downloads").glob("*")) if (tmp_path / "downloads").exists() else True


def test_a_download_is_capped_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "x.tar.gz").write_bytes(bytes(3 << 20))
    monkeypatch.setattr(source, "MAX_DOWNLOAD_BYTES", 1 << 20)
    with pytest.raises(SourceError, match="larger than 1 MiB"):
        fetch(recipe_named("x.tar.gz"), [mirror.as_uri()], tmp_path / "downloads")
    assert not list((tmp_path / "downloads").glob("*"))


class Endless(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(bytes(1 << 16))
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.timeout(60)
def test_an_endless_http_mirror_is_cut_off(tmp_path: Path, endless_server: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_DOWNLOAD_BYTES", 8 << 20)
    with pytest.raises(SourceError, match="larger than 8 MiB"):
        fetch(recipe_named("x.tar.gz"), [endless_server], tmp_path / "downloads")
    monkeypatch.setattr(source, "MAX_DOWNLOAD_BYTES", 1 << 40)
    monkeypatch.setattr(source, "DOWNLOAD_DEADLINE_S", 1.0)
    with pytest.raises(SourceError, match="took longer than 1 s"):
        fetch(recipe_named("x.tar.gz"), [endless_server], tmp_path / "downloads")
    assert not list((tmp_path / "downloads").glob("*"))


def test_a_partial_download_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While it is not verified yet, the download cache's copy is readable by its owner only."""
    modes = []
    original = source.verify

    def spy(recipe: Recipe, archive: Path) -> None:
        modes.append(archive.stat().st_mode & 0o777)
        original(recipe, archive)

    monkeypatch.setattr(source, "verify", spy)
    fetch(PEERVPN, [(REPO.parent / "shared/sources").as_uri()], tmp_path / "downloads")
    assert modes == [0o600]
