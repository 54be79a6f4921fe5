# SPDX-License-Identifier: MIT
"""Upstream source archives: fetched from the mirrors in order, then upstream, and verified.

The pin is what every archive of one commit shares: the commit id (``git archive`` writes it
into the tar's pax header; GitHub's archives are made the same way) and the unpacked tree.
The gzip bytes are not pinned, because two gzips of one tree differ. ``tree_digest`` hashes
each member's path (without the top folder), type, executable bit and content or link target.

A mismatch is a hard error: the file is deleted, nothing is cached and no other mirror is
tried, since a mirror that serves other bytes under the pinned name is a finding, not a miss.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ..errors import EWindowError
from ..log import log
from .recipe import Recipe

DOWNLOAD_TIMEOUT_S = 30  # each read of a mirror or upstream
DOWNLOAD_DEADLINE_S = 600.0  # one whole download
MAX_DOWNLOAD_BYTES = 256 << 20  # the pinned archives are 0.1 and 4 MB
# what an archive may unpack to (cjdns: 4,445 members, 21 MB from 4 MB)
MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 1 << 30
MAX_RATIO = 100
MIRRORS_ENV = "EWINDOW_SOURCE_MIRRORS"  # space-separated, tried before the config's
CHUNK = 1 << 20


class SourceError(EWindowError):
    pass


def _type_name(member: tarfile.TarInfo) -> str:
    names = {tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
             tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO"}
    return names.get(member.type, "an unknown type")


def _outside(path: str) -> bool:
    return path.startswith("/") or posixpath.normpath(path).split("/")[0] == ".."


def _members(archive: tarfile.TarFile, path: Path) -> list[tarfile.TarInfo]:
    """The archive's members, read one header at a time and refused at the first that is not
    a plain tree: only regular files, folders and relative symlinks that stay inside the tree
    and never go through another symlink of the archive (``l2 -> .``, ``l1 -> l2/..``), within
    the caps on members, unpacked size and ratio. Nothing is unpacked or read here."""
    where, compressed = path.name, max(1, path.stat().st_size)
    found: list[tarfile.TarInfo] = []
    total = 0
    for member in archive:
        if member.type in (tarfile.XGLTYPE, tarfile.XHDTYPE):
            continue
        if len(found) >= MAX_MEMBERS:
            raise SourceError(f"{where}: more than {MAX_MEMBERS} members")
        # as the kernel will see it: "top/l/" and "top/./l" are the link "top/l"
        name = posixpath.normpath(member.name)
        if _outside(name) or ".." in member.name.split("/"):
            raise SourceError(f"{where}: {member.name}: leaves the source tree")
        if not (member.isreg() or member.isdir() or member.issym()):
            raise SourceError(f"{where}: {member.name}: {_type_name(member)}; a source archive holds "
                              "files, folders and symlinks only")
        if member.issym():
            inner = name.split("/", 1)[1] if "/" in name else ""
            if member.linkname.startswith("/") or _outside(posixpath.join(posixpath.dirname(inner),
                                                                            member.linkname)):
                raise SourceError(f"{where}: {member.name}: leaves the source tree")
        total += member.size
        if total > MAX_UNPACKED_BYTES:
            raise SourceError(f"{where}: more than {MAX_UNPACKED_BYTES >> 20} MiB unpacked")
        if total > MAX_RATIO * compressed:
            raise SourceError(f"{where}: unpacks to more than {MAX_RATIO} times its size")
        found.append(member)
    # with every symlink known: no name and no link target may go through one (whatever
    # the order of the members), so the lexical checks above are what the kernel will do
    links = {posixpath.normpath(m.name) for m in found if m.issym()}

    def through_link(start: list[str], steps: list[str]) -> str | None:
        walked = start
        for part in steps:
            walked = walked[:-1] if part == ".." else walked if part in ("", ".") else [*walked, part]
            if "/".join(walked) in links:
                return "/".join(walked[1:])
        return None

    for member in found:
        parts = posixpath.normpath(member.name).split("/")
        link = through_link(parts[:1], parts[1:-1])
        if link is None and member.issym():
            link = through_link(parts[:-1], member.linkname.split("/"))
        if link is not None:
            raise SourceError(f"{where}: {member.name}: goes through the symlink {link}")
    return found


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(f"{path.name} is not a readable tar.gz ({exc})") from None


def tree_digest(path: Path) -> tuple[str, str]:
    """(digest of the unpacked tree, commit id from the pax header or "")."""
    h = hashlib.sha256()
    with _open(path) as archive:
        try:
            members = _members(archive, path)
            commit = str(archive.pax_headers.get("comment", ""))
            entries = []
            for member in members:
                name = member.name.split("/", 1)[1] if "/" in member.name else ""
                if not name:
                    continue  # the top folder (named differently by GitHub and by a mirror)
                if member.isdir():
                    entries.append((name.rstrip("/"), b"d"))
                elif member.issym():
                    entries.append((name, b"l" + member.linkname.encode()))
                else:
                    handle = archive.extractfile(member)
                    assert handle is not None
                    content = hashlib.sha256()
                    while chunk := handle.read(CHUNK):  # a large member is never held whole
                        content.update(chunk)
                    mode = b"x" if member.mode & 0o111 else b"f"
                    entries.append((name, mode + content.digest()))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{path.name} is not a readable tar.gz ({exc})") from None
    for name, blob in sorted(entries):
        h.update(name.encode() + b"\0" + blob + b"\0")
    return h.hexdigest(), commit


def commit_time(archive: Path) -> int:
    """The commit's time: ``git archive`` dates every member with it."""
    with _open(archive) as tar:
        return max(int(m.mtime) for m in _members(tar, archive))


def verify(recipe: Recipe, archive: Path) -> None:
    name = recipe.source.file  # also while it is still a .partial download
    try:
        digest, commit = tree_digest(archive)
    except SourceError as exc:
        raise SourceError(f"{recipe.name}: {exc}".replace(archive.name, name, 1)) from None
    if commit and commit != recipe.source.commit:
        raise SourceError(f"{recipe.name}: {name} is commit {commit}, the recipe pins "
                          f"{recipe.source.commit}")
    if digest != recipe.source.tree_sha256:
        raise SourceError(f"{recipe.name}: {name}: tree sha256 {digest}, the recipe pins "
                          f"{recipe.source.tree_sha256}",
                          hint="a mirror or upstream serves other source under the pinned name")


def mirror_urls(config_mirrors: Sequence[str]) -> list[str]:
    """The environment's mirrors (CI), then the config's; a plain path is a local folder."""
    mirrors = os.environ.get(MIRRORS_ENV, "").split() + list(config_mirrors)
    return [m if "://" in m else Path(m).resolve().as_uri() for m in mirrors]


def candidate_urls(recipe: Recipe, mirrors: Sequence[str]) -> list[str]:
    return [f"{m.rstrip('/')}/{recipe.source.file}" for m in mirrors] + [recipe.source.url]


class _Miss(Exception):
    """This mirror has no usable copy: try the next one."""


def _open_url(url: str) -> BinaryIO:
    """A mirror's or upstream's archive, opened for reading. A local mirror's entry must be a
    regular file: a symlink could hand out /dev/zero (endless) or /etc/shadow."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        path = urllib.request.url2pathname(parsed.path)
        try:
            mode = os.lstat(path).st_mode
        except OSError as exc:
            raise _Miss(exc.strerror or str(exc)) from None
        if not stat.S_ISREG(mode):
            raise SourceError(f"{url}: not a regular file; a mirror's entries must be plain files",
                              hint="copy the archive into the mirror folder instead of linking it")
        try:
            return open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NOFOLLOW))
        except OSError as exc:
            raise _Miss(exc.strerror or str(exc)) from None
    try:
        response: BinaryIO = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _Miss(str(getattr(exc, "reason", exc))) from None
    return response


def _download(url: str, target: Path) -> None:
    """``url`` into ``target`` (created 0600: nothing is world-readable before it is verified),
    at most MAX_DOWNLOAD_BYTES within DOWNLOAD_DEADLINE_S."""
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    target.unlink(missing_ok=True)
    with _open_url(url) as response:
        private = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(private, "wb") as out:
            size = 0
            while True:
                try:
                    chunk = response.read(CHUNK)
                except OSError as exc:
                    raise _Miss(str(exc)) from None
                if not chunk:
                    return
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise SourceError(f"{url}: larger than {MAX_DOWNLOAD_BYTES >> 20} MiB; a source archive "
                                      "is not that large")
                if time.monotonic() > deadline:
                    raise _Miss(f"took longer than {DOWNLOAD_DEADLINE_S:g} s")
                out.write(chunk)


def fetch(recipe: Recipe, mirrors: Sequence[str], downloads: Path) -> Path:
    """The verified archive in the download cache, fetched if it is not there yet."""
    target = downloads / recipe.source.file
    if target.exists():
        verify(recipe, target)  # a cache can be damaged too
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    tried = []
    for url in candidate_urls(recipe, mirrors):
        partial = target.with_name(target.name + ".partial")
        try:
            _download(url, partial)
            verify(recipe, partial)
        except _Miss as exc:
            partial.unlink(missing_ok=True)
            tried.append(f"{url} ({exc})")
            continue
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.chmod(0o644)
        partial.replace(target)
        log.info("    %s: %s from %s", recipe.name, recipe.source.file, url)
        return target
    raise SourceError(f"{recipe.name}: {recipe.source.file} is on no mirror and upstream cannot be "
                      f"reached; tried {'; '.join(tried)}",
                      hint=f"set {MIRRORS_ENV} or sources.mirrors to a folder or URL that has it")


def unpack(archive: Path, target: Path) -> None:
    """Unpack without the top folder: only what :func:`_members` allows, then tarfile's
    strictest filter ("data", PEP 706) as a second line (where this Python has it: 3.11.4+,
    and Debian's security updates)."""
    target.mkdir(parents=True)
    with _open(archive) as tar:
        try:
            members = []
            for member in _members(tar, archive):
                if "/" not in posixpath.normpath(member.name):
                    continue
                member.name = posixpath.normpath(member.name).split("/", 1)[1]
                members.append(member)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(target, members=members, **kwargs)  # type: ignore[arg-type]
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{archive.name}: not unpacked ({exc})") from None
