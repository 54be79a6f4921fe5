# SPDX-License-Identifier: MIT
"""``build.py verify-repro``: the image built again later, with a cache of its own, is the
same bytes (README "Reproducing an image")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, Built, requires_root, seeded_cache

pytestmark = [pytest.mark.slow, requires_root]


def test_two_builds_of_one_commit_give_the_same_bytes(built: Built, tmp_path: Path) -> None:
    """The first build's stages come from the session's image (built earlier); the second
    makes everything after 00-base itself, the source packages too."""
    cache = seeded_cache(tmp_path)
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
    assert "reproducible: both builds gave the same 6 artifacts" in result.stderr
    work = tmp_path / "out" / "verify-repro"
    image = f"{built.stem}.img"
    assert (work / "first" / image).read_bytes() == (work / "second" / image).read_bytes()
    assert (work / "first" / "SHA256SUMS").read_text() == (work / "second" / "SHA256SUMS").read_text()
    for build in ("first", "second"):  # GiBs; the later tests need the room
        for artifact in (work / build).glob(f"{built.stem}.img*"):
            artifact.unlink()
