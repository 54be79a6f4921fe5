# SPDX-License-Identifier: MIT
"""Every time the image holds, set to the release epoch (pipeline/epoch.py), so two builds of one
commit give the same bytes on any day (README "Reproducing an image").

- file times in the trees: mtime clamped to the epoch, atime made equal to mtime;
- ext4: ``mke2fs -d`` copies each file's ctime, which no program can set, so the inodes'
  ctimes are rewritten with debugfs after the filesystem is made; E2FSPROGS_FAKE_TIME gives
  the superblock and the inodes' creation times (lib/ext2fs/initialize.c), ``hash_seed`` the
  directory hash;
- FAT: mkfs.fat (4.2, bookworm) stamps the volume label and mtools the directories it makes
  with the wall clock, and neither reads SOURCE_DATE_EPOCH, so both run under faketime with
  the clock stopped at the epoch; files are copied in sorted order, not in the order the
  host's filesystem lists them.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import EWindowError, HostError


def walk(root: Path) -> Iterator[Path]:
    """Every path below ``root``, sorted, parents before children."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield here / name


def clamp_times(root: Path, epoch: int) -> int:
    """mtime = min(mtime, epoch), atime = mtime, for ``root`` and everything below it (links
    themselves, not their targets). Returns how many paths were newer than the epoch."""
    newer = 0
    limit = epoch * 10**9
    for path in [root, *walk(root)]:
        mtime = os.lstat(path).st_mtime_ns
        if mtime > limit:
            newer += 1
            mtime = limit
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
    return newer


def stamp_changed(root: Path, since_ns: int, epoch: int) -> int:
    """Paths changed at or after ``since_ns`` (wall clock) get ``epoch`` as mtime and atime:
    what a stage wrote is dated the same whenever it ran, what it unpacked from a .deb keeps
    the package's times. Returns how many paths were stamped."""
    stamped = 0
    for path in [root, *walk(root)]:
        if os.lstat(path).st_mtime_ns >= since_ns:
            os.utime(path, (epoch, epoch), follow_symlinks=False)
            stamped += 1
    return stamped


def debugfs_times_script(root: Path, epoch: int) -> str:
    """debugfs commands that set every inode's ctime and atime (and their nanoseconds) to
    ``epoch``: mke2fs copies both from the tree, and reading the tree to copy it moves the
    atimes again (relatime)."""
    lines = [f"sif / {field} @{epoch}" for field in ("ctime", "atime")]
    for path in walk(root):
        inside = "/" + path.relative_to(root).as_posix()
        if '"' in inside or "\n" in inside or "\\" in inside:
            raise EWindowError(f"{inside!r}: a file name debugfs cannot quote; the image cannot be "
                               "made reproducible with it")
        lines += [f'sif "{inside}" ctime @{epoch}', f'sif "{inside}" atime @{epoch}']
    return "\n".join(lines) + "\n"


def ext4_env(epoch: int) -> dict[str, str]:
    return {"E2FSPROGS_FAKE_TIME": str(epoch), "TZ": "UTC"}


def fat_env(epoch: int) -> dict[str, str]:
    """mkfs.fat and mcopy with the wall clock stopped at ``epoch``: libfaketime preloaded
    (mtools has no option for the time), an absolute FAKETIME stops the clock. It is read in
    TZ, UTC here, as FAT times are local times: the bytes do not depend on the host's zone.
    The library is preloaded directly, not through the ``faketime`` wrapper, which refuses to
    run where libfaketime is preloaded already (verify-repro's second build). NO_FAKE_STAT:
    mcopy -m keeps the tree's (clamped) file times; with faked stat() the files would read as
    made at the stopped time, and whether that happened would depend on the environment the
    build inherited (verify-repro found it: its second build sets NO_FAKE_STAT)."""
    stopped = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))
    return {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC", "LD_PRELOAD": str(host_faketime_library()),
            "FAKETIME": stopped, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1"}


FAKETIME_LIBRARY_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"


def host_faketime_library() -> Path:
    """The build host's libfaketime (Debian package libfaketime, which faketime pulls in)."""
    found = sorted(glob.glob(FAKETIME_LIBRARY_GLOB))
    if not found:
        raise HostError(f"no {FAKETIME_LIBRARY_GLOB} on this host", hint="make host-deps installs faketime")
    return Path(found[0])
