# SPDX-License-Identifier: MIT
"""Power-safe file changes under a root directory ("/" on the device, a fixture in tests).

Every change is atomic: a file is written under a temporary name in the same directory,
fsynced, renamed over the target, and the directory is fsynced. A power cut leaves either the
old or the new file, never half of one. That holds on ext4 and, for a rename within one
directory, on FAT as Linux's vfat driver does it (it rewrites one directory entry).

FAT needs more: fsync on a vfat file or directory did not make a rename durable (a test boot
killed afterwards found the new name with size 0), because vfat keeps directory entries in
buffers of the block device, not of the directory. Changes on FAT (``plain``) end with a
syncfs(2) of that file system on the device; firstboot makes a handful, once. (On a fixture
root there is no power to lose: a SIGKILL keeps the page cache.)

``crash_after`` is fault injection for tests: the process SIGKILLs itself after that many
changes, which is as abrupt as a power cut for everything already fsynced.
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path


class Root:
    def __init__(self, path: Path, crash_after: int | None = None) -> None:
        self.path = path
        self.crash_after = crash_after
        self.changes = 0

    @property
    def live(self) -> bool:
        """True on the device itself: live actions (sethostname, reloads) are allowed."""
        return self.path.resolve() == Path("/")

    def __truediv__(self, inner: str) -> Path:
        return self.path / inner.lstrip("/")

    def write(self, inner: str, data: bytes | str, *, mode: int = 0o644,
              owner: tuple[int, int] = (0, 0), plain: bool = False) -> bool:
        """Write ``data`` to ``inner`` atomically; False (and nothing done) if it is already so.
        ``plain``: a file system without owners and modes (FAT), where fchmod fails."""
        target = self / inner
        content = data.encode() if isinstance(data, str) else data
        if _same(target, content, None if plain else (mode, owner)):
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, content)
            if not plain:
                _chown(fd, owner)
                os.fchmod(fd, mode)  # the umask must not widen or narrow it
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        if plain and self.live:
            syncfs(target.parent)
        self.count_change()
        return True

    def remove(self, inner: str, *, plain: bool = False) -> bool:
        target = self / inner
        if not target.exists() and not target.is_symlink():
            return False
        target.unlink()
        fsync_dir(target.parent)
        if plain and self.live:
            syncfs(target.parent)  # a deletion from FAT that did not last would leave secrets on the card
        self.count_change()
        return True

    def count_change(self) -> None:
        """Called after every change, including those external programs make."""
        self.changes += 1
        if self.crash_after is not None and self.changes >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)


def syncfs(path: Path) -> None:
    """syncfs(2) of the file system holding ``path`` (glibc has it; Python has no wrapper)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


def _same(target: Path, content: bytes, meta: tuple[int, tuple[int, int]] | None) -> bool:
    try:
        st = target.stat()
        if target.read_bytes() != content:
            return False
        return meta is None or ((st.st_mode & 0o7777) == meta[0] and (st.st_uid, st.st_gid) == meta[1])
    except OSError:
        return False


def _chown(fd: int, owner: tuple[int, int]) -> None:
    try:
        os.fchown(fd, *owner)
    except PermissionError:
        if owner != (os.getuid(), os.getgid()):
            raise  # unprivileged test runs can only write their own files


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (FAT on old kernels) refuse fsync on a directory
    finally:
        os.close(fd)


def ids(root: Root, user: str) -> tuple[int, int]:
    """uid and gid of ``user`` in the root's own /etc/passwd (a fixture is not the host)."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise KeyError(user)
