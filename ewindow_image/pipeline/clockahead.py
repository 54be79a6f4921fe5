# SPDX-License-Identifier: MIT
"""verify-repro's second build "on a later day": the wall clock moved ahead for its commands.

libfaketime (https://github.com/wolfcw/libfaketime) with a relative offset, ``FAKETIME=+3d``:
the host's copy in LD_PRELOAD for the host's commands. Emulated arm64 programs cannot load an
x86-64 library (ld.so would skip it with a warning), so the chroot helper
(:data:`ewindow_image.pipeline.rootfs._CHROOT_SCRIPT`) binds the target's own libfaketime, from
the Debian package of the target's suite and architecture fetched with the build's apt, into
``/run/ewindow-faketime`` and preloads that one instead: maintainer scripts, mkinitramfs and
apt inside the tree see the later day too.

``NO_FAKE_STAT``: file times read back are the real ones, as on a real later day (files from
.debs keep their times). ``FAKETIME_DONT_FAKE_MONOTONIC``: timeouts keep working.
Shared memory: libfaketime keeps a semaphore and a shared-memory object per process tree,
named after a pid and left behind by every process that exec's; only the "start at" modes
need them, not a relative offset. The target's library (trixie: a 2024 snapshot) takes
``FAKETIME_DISABLE_SHM`` and makes none; the host's (bookworm: 0.9.10) knows neither that nor
``FAKETIME_FLSHM`` (both came later, https://github.com/wolfcw/libfaketime/commits), so the
build's namespace gives its processes a /dev/shm of their own (process_tree.py): leftovers of
an earlier build, whose processes were numbered from 1 as well, can no longer make a
process whose inherited names went stale exit ("sem_open failed and recreation attempts
failed", src/libfaketime.c ``ft_shm_init``). Not moved:
the builder's own Python process (it writes no time into anything), mmdebstrap's chroot
(00-base is shared with the first build unless ``--share ''``), statically linked programs
and the times the kernel gives new files (the stage clock and the clamp rewrite those).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..apt.resolver import AptResolver
from ..image.clock import host_faketime_library
from ..runner import run

LIBRARY = "libfaketime.so.1"
GUEST_ENV = "EWINDOW_GUEST_FAKETIME"  # read by the chroot helper


@dataclass(frozen=True)
class ClockAhead:
    days: int
    host_library: Path
    guest_library_dir: Path  # holds the target architecture's libfaketime.so.1

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(self.host_library), "FAKETIME": f"+{self.days}d",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1", "FAKETIME_DISABLE_SHM": "1",
                GUEST_ENV: str(self.guest_library_dir)}


def download_argv(apt: AptResolver) -> list[str]:
    """``apt-get download`` of the target's libfaketime (into the current folder; apt checks
    it against the mirror's signed index)."""
    return ["apt-get", "-q", *apt.options(), "-o", "APT::Sandbox::User=root", "download", "libfaketime"]


def guest_library(apt: AptResolver, cache_root: Path) -> Path:
    """The folder with the target's libfaketime.so.1, fetched once per suite and architecture."""
    folder = cache_root / "faketime" / apt.root.name
    if (folder / LIBRARY).is_file():
        return folder
    apt.update()
    with tempfile.TemporaryDirectory(dir=cache_root) as tmp_name:
        tmp = Path(tmp_name)
        run(download_argv(apt), cwd=tmp)
        (deb,) = tmp.glob("libfaketime_*.deb")
        run(["dpkg-deb", "-x", deb, tmp / "unpacked"])
        (library,) = (tmp / "unpacked/usr/lib").glob(f"*/faketime/{LIBRARY}")
        staged = tmp / "library"
        staged.mkdir()
        shutil.copy2(library, staged / LIBRARY)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(folder)
    return folder


def clock_ahead(days: int, apt: AptResolver, cache_root: Path) -> ClockAhead:
    return ClockAhead(days, host_faketime_library(), guest_library(apt, cache_root))
