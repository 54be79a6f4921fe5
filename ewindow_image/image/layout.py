# SPDX-License-Identifier: MIT
"""Disk image assembly without loop devices or mounts.

MBR with a FAT32 boot partition (the Pi firmware reads only FAT on MBR) and an ext4 root.
Both filesystems are written straight into the image file at their offsets: mkfs.vfat
``--offset`` + mcopy, and ``mkfs.ext4 -E offset=… -d ROOTFS``. PARTUUIDs are
``<disk_id>-01`` and ``<disk_id>-02`` because the MBR disk identifier is fixed by the config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..imagefiles import mtools_drive

SECTOR = 512
MIB = 1024 * 1024
ALIGN = 4 * MIB  # partitions start on 4 MiB boundaries (SD card erase blocks)
EXT4_BLOCK = 4096

# FAT32 needs at least 65525 clusters; stay well clear of the limit.
MIN_FAT32_CLUSTERS = 70_000


@dataclass(frozen=True)
class Layout:
    boot_offset: int  # bytes
    boot_size: int
    root_offset: int
    root_size: int

    @property
    def total_size(self) -> int:
        return self.root_offset + self.root_size

    def sfdisk_script(self, disk_id: str) -> str:
        return (
            "label: dos\n"
            f"label-id: 0x{disk_id}\n"
            "unit: sectors\n\n"
            f"start={self.boot_offset // SECTOR}, size={self.boot_size // SECTOR}, type=c, bootable\n"
            f"start={self.root_offset // SECTOR}, size={self.root_size // SECTOR}, type=83\n"
        )


def align_up(value: int, alignment: int = ALIGN) -> int:
    return -(-value // alignment) * alignment


def root_fs_size(used_bytes: int, inode_count: int, headroom_mib: int) -> int:
    """ext4 size for a tree: its content, per-inode overhead, journal and metadata, headroom."""
    metadata = inode_count * 256 + used_bytes // 20 + 64 * MIB  # inode tables, bitmaps, journal
    return align_up(used_bytes + metadata + headroom_mib * MIB)


def plan_layout(boot_size_mib: int, root_size: int) -> Layout:
    boot_offset = ALIGN
    boot_size = boot_size_mib * MIB
    root_offset = align_up(boot_offset + boot_size)
    return Layout(boot_offset, boot_size, root_offset, align_up(root_size))


def fat_sectors_per_cluster(size: int) -> int:
    """Largest cluster that still leaves a valid FAT32. Given explicitly: with --offset,
    mkfs.vfat sizes clusters for the whole file and can make an invalid FAT32."""
    sectors = 64
    while sectors > 1 and size // (sectors * SECTOR) < MIN_FAT32_CLUSTERS:
        sectors //= 2
    return sectors


def sfdisk_argv(image: Path) -> list[str]:
    return ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", os.fspath(image)]


def mkfs_vfat_argv(image: Path, layout: Layout, volume_id: str) -> list[str]:
    return ["mkfs.vfat", "-F", "32", "-n", "BOOT", "-i", volume_id,
            "-s", str(fat_sectors_per_cluster(layout.boot_size)),
            f"--offset={layout.boot_offset // SECTOR}",
            os.fspath(image), str(layout.boot_size // 1024)]


def fat_copy_argvs(image: Path, layout: Layout, bootfs: Path) -> list[list[str]]:
    """mmd and mcopy commands that copy ``bootfs`` into the FAT partition in sorted order
    (``mcopy -s`` would follow the order the host's filesystem lists them in), file times
    kept (-m)."""
    spec = mtools_drive(image, layout.boot_offset)
    argvs: list[list[str]] = []
    for dirpath, dirnames, filenames in os.walk(bootfs):
        dirnames.sort()
        here = Path(dirpath).relative_to(bootfs).as_posix()
        target = "::/" if here == "." else f"::/{here}/"
        if here != ".":
            argvs.append(["mmd", "-i", spec, target.rstrip("/")])
        if filenames:
            argvs.append(["mcopy", "-i", spec, "-p", "-m", "-Q",
                          *[os.path.join(dirpath, name) for name in sorted(filenames)], target])
    return argvs


def mkfs_ext4_argv(image: Path, layout: Layout, rootfs: Path, fs_uuid: str, hash_seed: str) -> list[str]:
    return ["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-U", fs_uuid, "-b", str(EXT4_BLOCK),
            "-E", f"offset={layout.root_offset},nodiscard,hash_seed={hash_seed}", "-d", os.fspath(rootfs),
            os.fspath(image), str(layout.root_size // EXT4_BLOCK)]


def debugfs_script_argv(image: Path, layout: Layout, script: Path) -> list[str]:
    """Run a debugfs command file on the root filesystem in place, writable."""
    return ["debugfs", "-w", "-f", os.fspath(script), f"{os.fspath(image)}?offset={layout.root_offset}"]


def e2fsck_argv(image: Path, layout: Layout) -> list[str]:
    """Read-only check of the root filesystem in place (unix_io's ``?offset=`` option)."""
    return ["e2fsck", "-f", "-n", f"{os.fspath(image)}?offset={layout.root_offset}"]


def fsck_vfat_argv(boot_copy: Path) -> list[str]:
    """fsck.vfat has no offset option; it checks a copy of the boot partition."""
    return ["fsck.vfat", "-n", os.fspath(boot_copy)]


def copy_range(source: Path, target: Path, offset: int, size: int) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        src.seek(offset)
        remaining = size
        while remaining:
            chunk = src.read(min(remaining, 8 * MIB))
            if not chunk:
                break
            dst.write(chunk)
            remaining -= len(chunk)


def tree_usage(root: Path) -> tuple[int, int]:
    """Allocated bytes (4 KiB granularity, as ext4 stores them) and inode count of a tree."""
    used = 0
    inodes = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        inodes += 1 + len(filenames)
        used += EXT4_BLOCK
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            used += align_up(st.st_size, EXT4_BLOCK) if st.st_size > 60 else 0
    return used, inodes
