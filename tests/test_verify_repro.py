# SPDX-License-Identifier: MIT
"""``build.py verify-repro``: the image built again later, with a cache of its own, is the
same bytes (README "Reproducing an image")."""

from __future__ import annotations

import calendar
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ewindow_image.apt.resolver import AptResolver
from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.pipeline.cache import StageCache, default_cache_dir
from ewindow_image.pipeline.clockahead import clock_ahead
from ewindow_image.pipeline.rootfs import chroot_argv
from ewindow_image.runner import extra_environment, run

from .conftest import REPO, Built, requires_root, seeded_cache

pytestmark = [pytest.mark.slow, requires_root]


def test_two_builds_of_one_commit_give_the_same_bytes(built: Built, tmp_path: Path) -> None:
    """The first build's stages come from the session's image (built earlier); the second
    makes everything after 00-base itself, the source packages too."""
    cache = seeded_cache(tmp_path)
    started = time.time()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "build.py"),
            "verify-repro",
            "-c",
            str(built.site),
            "--cache-dir",
            str(cache),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # .img .img.zst .img.xz .bmap manifest build-info spdx.json icon; not the Imager list,
    # whose file:// URLs name each build's own folder (no release.base_url here)
    assert "reproducible: both builds gave the same 8 artifacts" in result.stderr
    seen = re.search(r"second build's clock: (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", result.stderr)
    assert seen, result.stderr[-2000:]
    second_clock = calendar.timegm(time.strptime(seen.group(1), "%Y-%m-%d %H:%M"))
    assert 3 * 86400 - 3600 < second_clock - started < 3 * 86400 + 3600  # 3 days ahead
    work = tmp_path / "out" / "verify-repro"
    image = f"{built.stem}.img"
    assert (work / "first" / image).read_bytes() == (work / "second" / image).read_bytes()

    def sums(build: str) -> list[str]:
        return [line for line in (work / build / "SHA256SUMS").read_text().splitlines()
                if not line.endswith(".rpi-imager.json")]

    assert sums("first") == sums("second") and len(sums("first")) == 8
    for build in ("first", "second"):  # GiBs; the later tests need the room
        for artifact in (work / build).glob(f"{built.stem}.img*"):
            artifact.unlink()


def test_the_clock_moved_ahead_reaches_host_and_emulated_commands(built: Built, tmp_path: Path) -> None:
    """What verify-repro's second build runs under: the host's commands through the host's
    libfaketime, emulated arm64 commands in the tree through the target's own."""
    cfg = load_config(ConfigLayers((built.site,)))
    cache = StageCache(default_cache_dir())
    base_key = next(s["key"] for s in built.info["stages"] if s["name"] == "00-base")  # type: ignore[attr-defined]
    tree = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", "--reflink=auto", str(cache.entry(base_key) / "rootfs"), str(tree)],
                   check=True)
    ahead = clock_ahead(3, AptResolver(cfg, cache.root), cache.root)
    assert ahead.guest_library_dir.joinpath("libfaketime.so.1").read_bytes()[18] == 183  # EM_AARCH64
    probe = "date +%s; python3 -c 'import time; print(int(time.time()))'"
    with extra_environment(ahead.env()):
        host = int(run(["date", "+%s"], capture=True))
        guest = [int(line) for line in run(chroot_argv(tree, probe), capture=True).split()]
    plain = [int(line) for line in run(chroot_argv(tree, probe), capture=True).split()]
    now = time.time()
    for seen in (host, *guest):
        assert abs(seen - (now + 3 * 86400)) < 600, (seen, now)
    for seen in plain:
        assert abs(seen - now) < 600
    assert "LD_PRELOAD" not in os.environ  # nothing leaked out of the with block
