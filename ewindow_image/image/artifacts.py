# SPDX-License-Identifier: MIT
"""The build's outputs in ``out/``: image, compressed images, bmap, manifest, build info, the
release files (SPDX SBOM, Raspberry Pi Imager list and its icon), SHA256SUMS and, with a
signing key, SHA256SUMS.asc.

Every artifact is written as ``NAME.partial`` and renamed to ``NAME`` when complete;
SHA256SUMS is written last, so a file listed there is always whole. Older artifacts of the
same image name that this build did not produce are removed, so ``out/`` never mixes builds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Compression

PARTIAL = ".partial"


@dataclass(frozen=True)
class ArtifactPaths:
    out_dir: Path
    stem: str  # e.g. ewindow-trixie-arm64

    def path(self, suffix: str) -> Path:
        return self.out_dir / f"{self.stem}{suffix}"

    @property
    def image(self) -> Path:
        return self.path(".img")

    @property
    def bmap(self) -> Path:
        return self.path(".img.bmap")

    @property
    def manifest(self) -> Path:
        return self.path(".manifest")

    @property
    def build_info(self) -> Path:
        return self.path(".build-info.json")

    @property
    def sbom(self) -> Path:
        return self.path(".spdx.json")

    @property
    def imager_list(self) -> Path:
        return self.path(".rpi-imager.json")

    @property
    def icon(self) -> Path:
        return self.path(".icon.svg")

    @property
    def sums(self) -> Path:
        return self.out_dir / "SHA256SUMS"

    @property
    def sums_signature(self) -> Path:
        return self.out_dir / "SHA256SUMS.asc"

    def compressed(self, kind: Compression) -> Path:
        return self.path(f".img.{'zst' if kind is Compression.zstd else 'xz'}")

    def all_for(self, compressions: Iterable[Compression]) -> list[Path]:
        return [self.image, *(self.compressed(c) for c in compressions), self.bmap,
                self.manifest, self.build_info, self.sbom, self.imager_list, self.icon]


def partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


def publish(path: Path) -> None:
    """Rename the finished ``path.partial`` to ``path``."""
    os.replace(partial(path), path)


def compress_argv(kind: Compression, level: int, source: Path, target: Path) -> list[str]:
    if kind is Compression.zstd:
        return ["zstd", "-q", "-f", f"-{level}", "-T0", "-o", os.fspath(target), os.fspath(source)]
    return ["/bin/sh", "-ec", 'xz -T0 -"$1" -c "$2" > "$3"', "xz", str(level),
            os.fspath(source), os.fspath(target)]


def bmap_argv(image: Path, target: Path) -> list[str]:
    return ["bmaptool", "create", "-o", os.fspath(target), os.fspath(image)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def write_text_artifact(path: Path, text: str) -> None:
    partial(path).write_text(text)
    publish(path)


def write_json_artifact(path: Path, data: dict[str, Any]) -> None:
    write_text_artifact(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_sums(sums_path: Path, files: Iterable[Path], known: dict[Path, str] | None = None) -> None:
    """Add ``files`` to SHA256SUMS, keeping other images' entries whose files still exist;
    ``known`` holds digests computed already (the image's)."""
    fresh = {f.name: (known or {}).get(f) or sha256_file(f) for f in files}
    entries: dict[str, str] = {}
    if sums_path.exists():
        for line in sums_path.read_text().splitlines():
            digest, _, name = line.partition("  ")
            if name and name not in fresh and (sums_path.parent / name).is_file():
                entries[name] = digest
    entries.update(fresh)
    write_text_artifact(sums_path, "".join(f"{entries[n]}  {n}\n" for n in sorted(entries)))


def remove_stale(paths: ArtifactPaths, keep: Iterable[Path]) -> list[Path]:
    """Delete this image's older artifacts that the current build did not write."""
    keep_set = {p.resolve() for p in keep}
    removed = []
    for candidate in paths.out_dir.glob(f"{paths.stem}.*"):
        if candidate.resolve() not in keep_set and candidate.is_file():
            candidate.unlink()
            removed.append(candidate)
    return removed
