# SPDX-License-Identifier: MIT
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.image import clock
from ewindow_image.image import layout as image
from ewindow_image.image.artifacts import ArtifactPaths, partial
from ewindow_image.image.assemble import assemble_image
from ewindow_image.pipeline.clockahead import ClockAhead
from ewindow_image.runner import extra_environment

from .conftest import requires_root

MIB = 1024 * 1024


def test_layout_is_aligned_and_contiguous() -> None:
    layout = image.plan_layout(256, 700 * MIB + 5)
    assert layout.boot_offset == 4 * MIB
    assert layout.boot_size == 256 * MIB
    assert layout.root_offset % (4 * MIB) == 0
    assert layout.root_offset >= layout.boot_offset + layout.boot_size
    assert layout.root_size % (4 * MIB) == 0 and layout.root_size >= 700 * MIB
    script = layout.sfdisk_script("ee1d0c5e")
    assert "label-id: 0xee1d0c5e" in script
    assert f"start={4 * MIB // 512}, size={256 * MIB // 512}, type=c, bootable" in script


@pytest.mark.parametrize("size_mib", [64, 100, 256, 512, 2048])
def test_fat32_clusters_stay_valid(size_mib: int) -> None:
    sectors = image.fat_sectors_per_cluster(size_mib * MIB)
    clusters = size_mib * MIB // (sectors * 512)
    assert clusters >= 65525
    assert sectors == 1 or clusters // 2 < image.MIN_FAT32_CLUSTERS  # the largest that fits


def test_root_size_covers_content_and_headroom() -> None:
    size = image.root_fs_size(800 * MIB, 30000, headroom_mib=512)
    assert size >= 800 * MIB + 512 * MIB
    assert size % (4 * MIB) == 0


EPOCH = 1767225600  # 2026-01-01


def small_tree(tmp_path: Path, seed: bytes = b"") -> Path:
    tree = tmp_path / "tree"
    (tree / "boot/firmware/overlays").mkdir(parents=True)
    (tree / "boot/firmware/cmdline.txt").write_text("root=PARTUUID=ee1d0c5e-02 rw\n")
    (tree / "boot/firmware/overlays/README").write_text("dtbo files go here\n")
    (tree / "etc").mkdir()
    (tree / "etc/fstab").write_text("PARTUUID=ee1d0c5e-02 / ext4 defaults 0 1\n")
    (tree / "etc/shadow").write_text("root:*:1::::::\n")
    (tree / "etc/shadow").chmod(0o640)
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/big").write_bytes(seed * (3 * MIB // len(seed)) if seed else os.urandom(3 * MIB))
    return tree


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@requires_root
def test_assembled_image_has_both_filesystems(tmp_path: Path) -> None:
    cfg = load_config(ConfigLayers((), ("image.boot_size_mib=64", "image.headroom_mib=64")))
    tree = small_tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    paths = ArtifactPaths(out, "test")
    info = assemble_image(cfg, tree, tmp_path / "bootfs", paths, EPOCH)
    img = partial(paths.image)
    assert not paths.image.exists()  # only the finished artifact gets the final name
    assert img.stat().st_size == info["size"]
    table = json.loads(sh("sfdisk", "--json", str(img)))["partitiontable"]
    assert table["id"] == "0xee1d0c5e"
    boot, root = table["partitions"]
    assert (boot["type"], root["type"]) == ("c", "83")
    assert boot["start"] * 512 == 4 * MIB
    # FAT: the boot files, recursively
    listing = sh("mdir", "-i", f"{img}@@{boot['start'] * 512}", "-/", "-b", "::/")
    assert "::/cmdline.txt" in listing and "::/overlays/README" in listing
    # ext4: content, modes, and an empty mount point for the boot partition
    fs = f"{img}?offset={root['start'] * 512}"
    assert sh("debugfs", "-R", "cat /etc/fstab", fs).startswith("PARTUUID=ee1d0c5e-02")
    stat = sh("debugfs", "-R", "stat /etc/shadow", fs)
    assert "Mode:  0640" in stat
    listing = sh("debugfs", "-R", "ls -p /boot/firmware", fs)
    entries = {line.strip("/").split("/")[4] for line in listing.split()}
    assert entries == {".", ".."}  # an empty mount point: the boot files are on the FAT
    # the tree keeps its empty mount point; the boot files moved to bootfs
    assert (tree / "boot/firmware").is_dir() and not any((tree / "boot/firmware").iterdir())
    assert (tmp_path / "bootfs/cmdline.txt").exists()
    assert info["root_partuuid"] == "ee1d0c5e-02"


@requires_root
def test_one_tree_gives_the_same_image_bytes_whenever_it_is_assembled(tmp_path: Path) -> None:
    """Two trees with the same content made at different times (so different ctimes, atimes
    and mtimes newer than the epoch, and on different days) give one image; the second is
    assembled with every command's clock three days ahead (as in verify-repro)."""
    cfg = load_config(ConfigLayers((), ("image.boot_size_mib=64", "image.headroom_mib=64")))
    images = []
    for run in ("first", "second"):
        folder = tmp_path / run
        tree = small_tree(folder, seed=b"same content")
        os.utime(tree / "etc/fstab", (EPOCH - 86400 * 400, EPOCH - 86400 * 400))  # older: kept
        os.utime(tree / "boot/firmware/cmdline.txt", (EPOCH - 86400 * 9, EPOCH - 86400 * 9))  # on the FAT
        if run == "second":
            time.sleep(1.1)
            (tree / "etc/fstab").chmod(0o644)  # a ctime change only
            os.utime(tree / "etc/shadow", (EPOCH + 86400 * 3, EPOCH + 86400 * 3))
        out = folder / "out"
        out.mkdir()
        later = ClockAhead(3, clock.host_faketime_library(), tmp_path).env() if run == "second" else {}
        with extra_environment(later):
            assemble_image(cfg, tree, folder / "bootfs", ArtifactPaths(out, "test"), EPOCH)
        images.append(partial(ArtifactPaths(out, "test").image))
    assert images[0].read_bytes() == images[1].read_bytes()
    root = json.loads(sh("sfdisk", "--json", str(images[0])))["partitiontable"]["partitions"][1]
    fs = f"{images[0]}?offset={root['start'] * 512}"
    old = sh("debugfs", "-R", "stat /etc/fstab", fs)
    assert f"mtime: 0x{EPOCH - 86400 * 400:08x}:00000000" in old and f"ctime: 0x{EPOCH:08x}:00000000" in old
    assert f"mtime: 0x{EPOCH:08x}:00000000" in sh("debugfs", "-R", "stat /usr/bin/big", fs)


@requires_root
def test_the_order_a_host_lists_files_in_does_not_reach_the_image(tmp_path: Path) -> None:
    """Another host lists a folder in another order (ext4 in its own hash order, tmpfs newest
    first). mke2fs -d (1.47) adds entries by name and the FAT copy is sorted, so two trees on
    tmpfs whose files were made in opposite orders give one image."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        shm = tmp_path  # (no tmpfs: both listings follow the same hash order; still a check)
    cfg = load_config(ConfigLayers((), ("image.boot_size_mib=64", "image.headroom_mib=64")))
    names = [f"file-{n:02d}-{'xyzabc'[n % 6]}" for n in range(40)]
    images = []
    with tempfile.TemporaryDirectory(dir=shm) as scratch:
        for run, order in (("forward", names), ("backward", names[::-1])):
            tree = small_tree(Path(scratch) / run, seed=b"listing order")
            for folder in (tree / "usr/share/many", tree / "boot/firmware/many"):
                folder.mkdir(parents=True)
                for name in order:
                    (folder / name).write_text(name)
            listed = os.listdir(tree / "usr/share/many")
            assert shm == tmp_path or listed in (order, order[::-1])  # tmpfs: creation order
            out = tmp_path / run
            out.mkdir()
            assemble_image(cfg, tree, Path(scratch) / f"{run}-bootfs", ArtifactPaths(out, "t"), EPOCH)
            images.append(hashlib.sha256(partial(ArtifactPaths(out, "t").image).read_bytes()).hexdigest())
    assert images[0] == images[1]


@requires_root
def test_another_epoch_gives_other_bytes(tmp_path: Path) -> None:
    cfg = load_config(ConfigLayers((), ("image.boot_size_mib=64", "image.headroom_mib=64")))
    digests = set()
    for epoch in (EPOCH, EPOCH + 86400):
        folder = tmp_path / str(epoch)
        out = folder / "out"
        out.mkdir(parents=True)
        tree = small_tree(folder, seed=b"same")
        assemble_image(cfg, tree, folder / "bootfs", ArtifactPaths(out, "t"), epoch)
        digests.add(hashlib.sha256(partial(ArtifactPaths(out, "t").image).read_bytes()).hexdigest())
    assert len(digests) == 2
