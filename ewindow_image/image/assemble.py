# SPDX-License-Identifier: MIT
"""Turning the finished tree into the disk image and the artifacts around it."""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Compression, Config
from ..errors import CommandError, EWindowError
from ..log import log
from ..runner import run
from ..trees import remove_tree
from . import artifacts as art
from . import clock, imager, signing
from . import layout as image
from .manifest import InstalledPackage, manifest_text
from .sbom import sbom


def split_boot_partition(tree: Path, bootfs: Path) -> None:
    """Move /boot/firmware out of the tree (it becomes the FAT partition), leaving the
    empty mount point behind for mkfs.ext4 -d."""
    remove_tree(bootfs)
    firmware = tree / "boot/firmware"
    firmware.rename(bootfs)
    firmware.mkdir(mode=0o755)


def fs_uuid(cfg: Config) -> str:
    """A root filesystem UUID derived from the disk id: stable for one config."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ewindow-image:{cfg.image.disk_id}:root"))


def hash_seed(cfg: Config) -> str:
    """The ext4 directory hash seed, from the config (mke2fs would draw a random one)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ewindow-image:{cfg.image_digest()}:hash-seed"))


def assemble_image(cfg: Config, tree: Path, bootfs: Path, paths: art.ArtifactPaths,
                   epoch: int) -> dict[str, Any]:
    split_boot_partition(tree, bootfs)
    newer = clock.clamp_times(tree, epoch) + clock.clamp_times(bootfs, epoch)
    log.info("    %d file times clamped to SOURCE_DATE_EPOCH %d", newer, epoch)
    used, inodes = image.tree_usage(tree)
    boot_used, _ = image.tree_usage(bootfs)
    if boot_used > cfg.image.boot_size_mib * image.MIB * 0.9:
        raise EWindowError(f"boot files need {boot_used // image.MIB} MiB, more than 90 % of "
                           f"image.boot_size_mib ({cfg.image.boot_size_mib})",
                           hint="raise image.boot_size_mib")
    layout = image.plan_layout(cfg.image.boot_size_mib,
                               image.root_fs_size(used, inodes, cfg.image.headroom_mib))
    target = art.partial(paths.image)
    target.unlink(missing_ok=True)
    with target.open("wb") as f:
        f.truncate(layout.total_size)
    run(image.sfdisk_argv(target), input_text=layout.sfdisk_script(cfg.image.disk_id))
    run(image.mkfs_vfat_argv(target, layout, cfg.image.disk_id), env=clock.fat_env(epoch))
    for argv in image.fat_copy_argvs(target, layout, bootfs):
        run(argv, env={**clock.fat_env(epoch), "MTOOLS_SKIP_CHECK": "1"})
    run(image.mkfs_ext4_argv(target, layout, tree, fs_uuid(cfg), hash_seed(cfg)), env=clock.ext4_env(epoch))
    with tempfile.TemporaryDirectory(dir=paths.out_dir) as tmp:
        script = Path(tmp) / "times.debugfs"
        script.write_text(clock.debugfs_times_script(tree, epoch))
        run(image.debugfs_script_argv(target, layout, script), env=clock.ext4_env(epoch), capture=True)
    run(image.e2fsck_argv(target, layout), env=clock.ext4_env(epoch))
    with tempfile.TemporaryDirectory(dir=paths.out_dir) as tmp:
        boot_copy = Path(tmp) / "boot.vfat"
        image.copy_range(target, boot_copy, layout.boot_offset, layout.boot_size)
        run(image.fsck_vfat_argv(boot_copy))
    log.info("    image %d MiB: boot %d MiB, root %d MiB (%d MiB used)", layout.total_size // image.MIB,
             layout.boot_size // image.MIB, layout.root_size // image.MIB, used // image.MIB)
    return {
        "size": layout.total_size,
        "disk_id": cfg.image.disk_id,
        "boot_partuuid": f"{cfg.image.disk_id}-01",
        "root_partuuid": f"{cfg.image.disk_id}-02",
        "root_fs_uuid": fs_uuid(cfg),
        "root_used": used,
        "kernel": kernel_version(tree),
    }


def kernel_version(tree: Path) -> str:
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    return kernels[-1].name.removeprefix("vmlinuz-") if kernels else "none"


@dataclass(frozen=True)
class ReleaseInputs:
    """What the release files say besides the image itself."""

    packages: list[InstalledPackage]
    epoch: int  # SOURCE_DATE_EPOCH: the SBOM's creation time, Imager's release date
    version: str  # the git revision the image was built from
    tool: str  # "ewindow-image 0.x"


def publish_artifacts(cfg: Config, tree: Path, paths: art.ArtifactPaths, info: dict[str, Any],
                      timings: dict[str, float], release: ReleaseInputs) -> None:
    def timed(name: str, argv: list[str]) -> None:
        start = time.monotonic()
        run(argv)
        timings[name] = time.monotonic() - start

    timed("bmap", art.bmap_argv(art.partial(paths.image), art.partial(paths.bmap)))
    art.publish(paths.image)
    art.publish(paths.bmap)
    digests = {paths.image: art.sha256_file(paths.image)}
    for kind in cfg.image.compression:
        level = cfg.image.zstd_level if kind.value == "zstd" else cfg.image.xz_level
        target = paths.compressed(kind)
        timed(f"compress {kind}", art.compress_argv(kind, level, paths.image, art.partial(target)))
        art.publish(target)
        digests[target] = art.sha256_file(target)
    art.write_text_artifact(paths.manifest, manifest_text(release.packages))
    write_release_files(cfg, tree, paths, info, release, digests)
    produced = paths.all_for(cfg.image.compression)
    info["packages"] = len(release.packages)
    log.info("    timings: %s", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    # Not the Imager list: without release.base_url its file:// URLs (and so its size) name
    # the out folder, and build-info must not differ between two folders (verify-repro).
    info["artifacts"] = {p.name: p.stat().st_size for p in produced if p.exists() and p != paths.imager_list}
    art.write_json_artifact(paths.build_info, info)
    art.write_sums(paths.sums, produced, digests)
    sign_sums(cfg, paths)
    for stale in art.remove_stale(paths, keep=produced):
        log.info("    removed stale %s", stale.name)


def write_release_files(cfg: Config, tree: Path, paths: art.ArtifactPaths, info: dict[str, Any],
                        release: ReleaseInputs, digests: dict[Path, str]) -> None:
    """The SPDX SBOM, the Raspberry Pi Imager list and its icon."""
    document = sbom(image_name=paths.image.name, image_sha256=digests[paths.image],
                    image_version=release.version,
                    suite=f"debian-{cfg.suite.value}", epoch=release.epoch, tool=release.tool,
                    packages=release.packages, tree=tree, source_pins=info.get("source_packages", []))
    art.write_json_artifact(paths.sbom, document)
    art.write_text_artifact(paths.icon, imager.ICON_SVG)
    # Imager reads .xz everywhere and .zst since 1.7: the .xz when the build makes one.
    kinds = sorted(cfg.image.compression, key=lambda kind: kind is not Compression.xz)
    if not kinds:
        log.warning("warning: no compressed image (image.compression is empty): no Raspberry Pi Imager list")
        paths.imager_list.unlink(missing_ok=True)  # an older one would name a download not made now
        return
    download = paths.compressed(kinds[0])
    listing = imager.os_list(title=cfg.release.title, description=cfg.release.description, arch=cfg.arch,
                             epoch=release.epoch, image_size=paths.image.stat().st_size,
                             image_sha256=digests[paths.image], download=download,
                             download_sha256=digests[download], icon=paths.icon,
                             base_url=cfg.release.base_url, icon_url=cfg.release.icon_url)
    art.write_json_artifact(paths.imager_list, listing)


def sign_sums(cfg: Config, paths: art.ArtifactPaths) -> None:
    """SHA256SUMS.asc with ``release.signing_key``; without one, no signature at all."""
    signature = paths.sums_signature
    if not cfg.release.signing_key:
        if signature.exists():
            signature.unlink()
            log.info("    removed %s: SHA256SUMS changed and release.signing_key is not set", signature.name)
        return
    home = cfg.release.gnupg_home and str((cfg.base_dir / cfg.release.gnupg_home).expanduser())
    target = art.partial(signature)
    try:
        run(signing.sign_argv(paths.sums, target, cfg.release.signing_key, home))
        run(signing.verify_argv(paths.sums, target, home))
    except CommandError as exc:
        target.unlink(missing_ok=True)
        signature.unlink(missing_ok=True)
        raise EWindowError(f"release.signing_key: gpg could not sign SHA256SUMS with "
                           f"{cfg.release.signing_key!r}: {exc}",
                           hint="gpg --list-secret-keys (with release.gnupg_home as --homedir) shows the "
                                "keys; the key must sign without a passphrase prompt") from None
    art.publish(signature)
    log.info("    signed SHA256SUMS with %s", cfg.release.signing_key)
