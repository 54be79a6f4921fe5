# SPDX-License-Identifier: MIT
"""``build.py verify-repro``: build the image twice and compare the bytes.

The first build uses the normal cache (its stages may come from earlier days); the second a
cache of its own, which shares only the downloads, the source archives and the stages named
in ``share`` (the base, so the check takes minutes, not a full cold build). Everything else
the second build makes itself, later, and with the wall clock of its commands moved ahead by
``clock_ahead_days`` (pipeline/clockahead.py): the remaining stages, the source packages, the image.
On a difference the two root and boot filesystems are unpacked (debugfs rdump, mcopy;
nothing is mounted) and the files that differ are named.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..apt.resolver import AptResolver
from ..config import Config
from ..image.artifacts import sha256_file
from ..image.manifest import package_changes, read_versions
from ..imagefiles import mtools_drive
from ..log import log, step
from ..runner import extra_environment, run
from ..trees import remove_tree
from .cache import StageCache
from .clockahead import clock_ahead
from .driver import BuildResult, RepoPaths, build

# What the second build shares with the first: downloaded files (verified or keyed by what
# they are), and by default the sysroots the source packages build against, which are
# unpacked from downloaded .debs. --cold shares downloads alone.
SHARED_DOWNLOADS = ("debs", "apt", "sources")
SHARED_INPUTS = (*SHARED_DOWNLOADS, "sysroots")
MAX_NAMED = 40


@dataclass(frozen=True)
class ReproResult:
    artifacts: dict[str, tuple[str, str]]  # name → (sha256 of the first, of the second)
    differing_files: tuple[str, ...]  # inside the partitions, when the images differ
    package_changes: tuple[str, ...] = ()  # the mirror changed between the builds
    second_clock: str = "not moved"  # the date the second build's commands saw
    # --cold: stage name → what differs between the two caches' trees of its key
    stage_trees: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return all(a == b for a, b in self.artifacts.values()) and not any(self.stage_trees.values())


def second_cache(first: StageCache, folder: Path, shared_keys: list[str], *,
                 cold: bool = False) -> StageCache:
    """A cache of its own for the second build: links to the first's downloads, to its
    sysroots unless ``cold``, and to the snapshots of the shared stages, nothing else."""
    remove_tree(folder)
    (folder / "stages").mkdir(parents=True)
    for name in SHARED_DOWNLOADS if cold else SHARED_INPUTS:
        (first.root / name).mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(first.root / name)
    for key in shared_keys:
        (folder / "stages" / key).symlink_to(first.entry(key))
    return StageCache(folder)


def verify(cfg: Config, repo: RepoPaths, cache: StageCache, work: Path,
           share: tuple[str, ...] = ("00-base",), clock_ahead_days: int = 3,
           cold: bool = False) -> ReproResult:
    """Build twice and compare. ``cold``: the second build shares downloaded files only (no
    stage, no sysroot, no source package build), so the whole chain is compared."""
    share = () if cold else share
    with step("first build (the normal cache)"):
        first = build(cfg, repo, cache, work / "first")
    shared = [stage["key"] for stage in first.info["stages"] if stage["name"] in share]
    other = second_cache(cache, work / "cache", shared, cold=cold)
    moved = {}
    second_clock = "not moved"
    if clock_ahead_days:
        moved = clock_ahead(clock_ahead_days, AptResolver(cfg, cache.root), cache.root).env()
        with extra_environment(moved):
            second_clock = run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture=True).strip()
    shared_what = "downloads only" if cold else ", ".join(share) or "no stage"
    with step(f"second build (its own cache; shared: {shared_what}; "
              f"its commands' clock: {second_clock})"), extra_environment(moved):
        second = build(cfg, repo, other, work / "second")
    stage_trees: dict[str, tuple[str, ...]] = {}
    if cold:
        with step("compare the stage trees of the two caches, key by key"):
            stage_trees = compared_stage_trees(first.info["stages"], cache, other)
    remove_tree(other.root)  # its snapshots (GiBs) serve no later build
    artifacts = compared_artifacts(cfg, first, second)
    packages = tuple(package_changes(read_versions(first.artifacts.manifest.read_text()),
                                     read_versions(second.artifacts.manifest.read_text())))
    differing: tuple[str, ...] = ()
    if any(a != b for a, b in artifacts.values()):
        with step("name the files that differ"):
            differing = tuple(differing_files(first.artifacts.image, second.artifacts.image,
                                              work / "unpacked"))
            (work / "differences.txt").write_text("".join(f"{line}\n" for line in differing))
    return ReproResult(artifacts, differing, packages, second_clock, stage_trees)


def compared_stage_trees(stages: list[dict[str, str]], first: StageCache,
                         second: StageCache) -> dict[str, tuple[str, ...]]:
    """For each stage that both caches hold under one key, the paths whose content, type,
    mode, owner, times, extended attributes or hard links differ: one key must name one tree,
    not only one image after 90-finalise has removed what differed."""
    found = {}
    for stage in stages:
        key = stage["key"]
        if first.has(key) and second.has(key) and not second.entry(key).is_symlink():
            found[stage["name"]] = tuple(tree_differences(first.entry(key) / "rootfs",
                                                          second.entry(key) / "rootfs", "", exact=True))
    return found


def compared_artifacts(cfg: Config, first: BuildResult, second: BuildResult) -> dict[str, tuple[str, str]]:
    """Every artifact of the two builds by sha256 (the image, compressed images, bmap,
    manifest, build-info, SBOM, icon; SHA256SUMS follows from them). The Imager list only
    with ``release.base_url``: without it its URLs name each build's own out folder."""
    found = {}
    for path in first.artifacts.all_for(cfg.image.compression):
        if path == first.artifacts.imager_list and not cfg.release.base_url:
            continue
        twin = second.artifacts.out_dir / path.name
        if path.is_file() and twin.is_file():
            found[path.name] = (sha256_file(path), sha256_file(twin))
    return found


def partition_offsets(image: Path) -> tuple[int, int]:
    table = json.loads(run(["sfdisk", "--json", os.fspath(image)], capture=True))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    boot, root = table["partitions"][:2]
    return int(boot["start"]) * sector, int(root["start"]) * sector


def unpack(image: Path, target: Path) -> None:
    """The root filesystem into ``target/root`` and the boot partition into ``target/boot``."""
    boot_offset, root_offset = partition_offsets(image)
    (target / "root").mkdir(parents=True)
    (target / "boot").mkdir()
    run(["debugfs", "-R", f"rdump / {os.fspath(target / 'root')}",
         f"{os.fspath(image)}?offset={root_offset}"], capture=True)
    run(["mcopy", "-s", "-p", "-m", "-n", "-i", mtools_drive(image, boot_offset), "::/*",
         os.fspath(target / "boot")], env={"MTOOLS_SKIP_CHECK": "1"})


def differing_files(first: Path, second: Path, work: Path) -> Iterator[str]:
    remove_tree(work)
    unpack(first, work / "first")
    unpack(second, work / "second")
    for part in ("boot", "root"):
        yield from tree_differences(work / "first" / part, work / "second" / part, f"/{part}")
    shutil.rmtree(work)


def tree_differences(left: Path, right: Path, label: str, *, exact: bool = False) -> Iterator[str]:
    """Paths whose presence, type, content, mode, owner or mtime (whole seconds, files only)
    differ. ``exact``: also every entry's mtime to the nanosecond, folders and links
    included, its extended attributes (file capabilities, ACLs) and its hard-link count:
    two stage trees that one key names must agree in all of it."""
    names = sorted(set(os.listdir(left)) | set(os.listdir(right)))
    for name in names:
        a, b = left / name, right / name
        where = f"{label}/{name}"
        if not (a.exists() or a.is_symlink()) or not (b.exists() or b.is_symlink()):
            yield f"{where} (only in the {'second' if not a.exists() else 'first'})"
            continue
        sa, sb = a.lstat(), b.lstat()
        if (sa.st_mode, sa.st_uid, sa.st_gid) != (sb.st_mode, sb.st_uid, sb.st_gid):
            yield f"{where} (mode or owner)"
            continue
        if exact:
            yield from _exact_differences(a, b, where)
        if a.is_symlink():
            if os.readlink(a) != os.readlink(b):
                yield f"{where} (link target)"
        elif a.is_dir():
            yield from tree_differences(a, b, where, exact=exact)
        elif not stat.S_ISREG(sa.st_mode):  # a device node, fifo or socket: never opened
            if sa.st_rdev != sb.st_rdev:
                yield f"{where} (device number)"
        elif not filecmp.cmp(a, b, shallow=False):
            yield f"{where} (content)"
        elif not exact and int(sa.st_mtime) != int(sb.st_mtime):
            yield f"{where} (mtime)"


def _exact_differences(a: Path, b: Path, where: str) -> Iterator[str]:
    sa, sb = a.lstat(), b.lstat()
    if sa.st_mtime_ns != sb.st_mtime_ns:
        yield f"{where} (mtime)"
    if not stat.S_ISDIR(sa.st_mode) and sa.st_nlink != sb.st_nlink:
        yield f"{where} (hard links)"
    if _xattrs(a) != _xattrs(b):
        yield f"{where} (extended attributes)"


def _xattrs(path: Path) -> dict[str, bytes]:
    try:
        return {name: os.getxattr(path, name, follow_symlinks=False)
                for name in os.listxattr(path, follow_symlinks=False)}
    except OSError:  # a file system without them
        return {}


def report(result: ReproResult) -> list[str]:
    lines = [f"second build's clock: {result.second_clock}"]
    lines += [f"{name}: {'same' if a == b else 'DIFFERENT'} {a[:16]}{'' if a == b else ' vs ' + b[:16]}"
              for name, (a, b) in sorted(result.artifacts.items())]
    if result.package_changes:
        lines.append(f"the mirror served other packages to the second build "
                     f"({len(result.package_changes)}):")
        lines += [f"  {change}" for change in result.package_changes[:MAX_NAMED]]
    for name, paths in result.stage_trees.items():
        lines.append(f"stage {name}: {'same tree in both caches' if not paths else 'TREES DIFFER:'}")
        lines += [f"  {path}" for path in paths[:MAX_NAMED]]
    if result.differing_files:
        lines.append(f"{len(result.differing_files)} files differ inside the image:")
        lines += [f"  {path}" for path in result.differing_files[:MAX_NAMED]]
        if len(result.differing_files) > MAX_NAMED:
            lines.append(f"  … and {len(result.differing_files) - MAX_NAMED} more (all in differences.txt)")
        lines.append("diffoscope (Debian package diffoscope) shows how two files differ")
    log.info("\n".join(lines))
    return lines
