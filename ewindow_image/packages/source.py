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
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..errors import EWindowError
from ..log import log
from .recipe import Recipe

DOWNLOAD_TIMEOUT_S = 30
MIRRORS_ENV = "EWINDOW_SOURCE_MIRRORS"  # space-separated, tried before the config's


class SourceError(EWindowError):
    pass


def _members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    return [m for m in archive.getmembers() if m.type not in (tarfile.XGLTYPE, tarfile.XHDTYPE)]


def tree_digest(path: Path) -> tuple[str, str]:
    """(digest of the unpacked tree, commit id from the pax header or "")."""
    h = hashlib.sha256()
    with tarfile.open(path) as archive:
        commit = str(archive.pax_headers.get("comment", ""))
        entries = []
        for member in _members(archive):
            name = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not name:
                continue  # the top folder (named differently by GitHub and by a mirror)
            if member.isdir():
                entries.append((name.rstrip("/"), b"d"))
            elif member.issym():
                entries.append((name, b"l" + member.linkname.encode()))
            elif member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                mode = b"x" if member.mode & 0o111 else b"f"
                entries.append((name, mode + hashlib.sha256(handle.read()).digest()))
            else:
                raise SourceError(f"{path.name}: {member.name}: unexpected member type")
    for name, blob in sorted(entries):
        h.update(name.encode() + b"\0" + blob + b"\0")
    return h.hexdigest(), commit


def commit_time(archive: Path) -> int:
    """The commit's time: ``git archive`` dates every member with it."""
    with tarfile.open(archive) as tar:
        return max(int(m.mtime) for m in _members(tar))


def verify(recipe: Recipe, archive: Path) -> None:
    name = recipe.source.file  # also while it is still a .partial download
    try:
        digest, commit = tree_digest(archive)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(f"{recipe.name}: {name} is not a readable tar.gz ({exc})") from None
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


def _download(url: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, target.open("wb") as out:
        shutil.copyfileobj(response, out)


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
        except (urllib.error.URLError, OSError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            tried.append(f"{url} ({getattr(exc, 'reason', exc)})")
            continue
        try:
            verify(recipe, partial)
        except SourceError:
            partial.unlink()
            raise
        partial.replace(target)
        log.info("    %s: %s from %s", recipe.name, recipe.source.file, url)
        return target
    raise SourceError(f"{recipe.name}: {recipe.source.file} is on no mirror and upstream cannot be "
                      f"reached; tried {'; '.join(tried)}",
                      hint=f"set {MIRRORS_ENV} or sources.mirrors to a folder or URL that has it")


def _leaves_tree(member: tarfile.TarInfo) -> bool:
    """A path, or a link's target, outside the unpacked tree (names without the top folder)."""
    def outside(path: str) -> bool:
        return path.startswith("/") or posixpath.normpath(path).split("/")[0] == ".."
    if outside(member.name):
        return True
    if member.issym():
        return outside(posixpath.join(posixpath.dirname(member.name), member.linkname))
    if member.islnk():  # hard links name a member of the archive
        return outside(member.linkname.split("/", 1)[-1])
    return False


def unpack(archive: Path, target: Path) -> None:
    """Unpack without the top folder; members may not leave ``target``."""
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in _members(tar):
            if "/" not in member.name:
                continue
            member.name = member.name.split("/", 1)[1]
            if _leaves_tree(member):
                raise SourceError(f"{archive.name}: {member.name}: leaves the source tree")
            members.append(member)
        # The "tar" filter where this Python has it (3.11.4+, and Debian's security updates).
        kwargs = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
        tar.extractall(target, members=members, **kwargs)  # type: ignore[arg-type]
