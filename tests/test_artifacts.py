# SPDX-License-Identifier: MIT
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from ewindow_image.config import Compression
from ewindow_image.image import artifacts as art
from ewindow_image.runner import run


def test_sums_keep_other_images_and_drop_vanished_files(tmp_path: Path) -> None:
    other = tmp_path / "other-bookworm-arm64.img"
    other.write_bytes(b"old image")
    gone = tmp_path / "gone.img"
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {other.name}\n{'1' * 64}  {gone.name}\n")
    mine = tmp_path / "ewindow-trixie-arm64.img"
    mine.write_bytes(b"new image")
    art.write_sums(tmp_path / "SHA256SUMS", [mine])
    lines = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert lines == [f"{hashlib.sha256(b'new image').hexdigest()}  {mine.name}",
                     f"{'0' * 64}  {other.name}"]
    check = subprocess.run(["sha256sum", "--check", "--ignore-missing", "--quiet", "SHA256SUMS"],
                           cwd=tmp_path, capture_output=True, text=True, check=False)
    assert "FAILED" in check.stdout + check.stderr  # the old entry really is checked


def test_publish_is_a_rename_of_the_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "x.img.bmap"
    art.partial(target).write_text("done")
    assert not target.exists()
    art.publish(target)
    assert target.read_text() == "done" and not art.partial(target).exists()


def test_stale_artifacts_of_the_same_image_are_removed(tmp_path: Path) -> None:
    paths = art.ArtifactPaths(tmp_path, "ewindow-trixie-arm64")
    for suffix in (".img", ".img.xz", ".img.zst", ".img.bmap"):
        paths.path(suffix).write_text(suffix)
    neighbour = tmp_path / "ewindow-bookworm-arm64.img.xz"
    neighbour.write_text("keep")
    keep = paths.all_for([Compression.zstd])
    removed = art.remove_stale(paths, keep)
    assert removed == [paths.path(".img.xz")]
    assert neighbour.exists() and paths.path(".img.zst").exists()


@pytest.mark.parametrize("kind", list(Compression))
def test_compression_round_trip(tmp_path: Path, kind: Compression) -> None:
    source = tmp_path / "data.img"
    source.write_bytes(b"\0" * 1_000_000 + b"EWindow" * 1000)
    target = tmp_path / ("data.img." + ("zst" if kind is Compression.zstd else "xz"))
    run(art.compress_argv(kind, 3, source, target))
    tool = ["zstd", "-dc"] if kind is Compression.zstd else ["xz", "-dc"]
    restored = subprocess.run([*tool, str(target)], capture_output=True, check=True).stdout
    assert restored == source.read_bytes()
    assert target.stat().st_size < 100_000
