# SPDX-License-Identifier: MIT
"""Overlays: file trees under ``overlays/NAME/`` rendered with jinja2 into the target.

A template named ``NAME.optional.j2`` that renders to nothing (white space only) writes no
file: one that only some configs need (the deployment's apt source without updates.repo).
Every other template writes its file, empty or not. Rendering is pure (:func:`render_overlay`
returns the files with their content, mode and owner); :func:`install_files` writes them.
Owners are names looked up in the *target's* /etc/passwd and /etc/group, never the build
host's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ..errors import ConfigError
from .stages.definition import FileSpec, template_env, template_error_where

TEMPLATE_SUFFIX = ".j2"
OPTIONAL_SUFFIX = ".optional.j2"


@dataclass(frozen=True)
class RenderedFile:
    path: str  # absolute path inside the target
    content: bytes
    mode: int
    owner: str
    group: str
    source: str = ""  # relative to the overlay folder


@dataclass(frozen=True)
class RenderedDir:
    path: str
    mode: int
    owner: str
    group: str


def render_overlay(overlay_dir: Path, specs: Iterable[FileSpec],
                   context: Mapping[str, Any]) -> tuple[list[RenderedFile], list[RenderedDir]]:
    """Render every file of ``overlay_dir`` plus the computed-path ``specs`` with a source."""
    by_path = {spec.path: spec for spec in specs}
    sources = {spec.source for spec in by_path.values() if spec.source}
    env = template_env(overlay_dir)
    files: list[RenderedFile] = []
    seen: set[str] = set()

    def render(rel: str) -> bytes:
        source_path = overlay_dir / rel
        if not rel.endswith(TEMPLATE_SUFFIX):
            return source_path.read_bytes()
        try:
            return env.get_template(rel).render(context).encode()
        except jinja2.TemplateError as exc:
            where = template_error_where(exc, source_path)
            raise ConfigError(str(source_path), where, str(exc)) from None

    def add(target: str, rel: str) -> None:
        spec = by_path.get(target)
        executable = os.access(overlay_dir / rel, os.X_OK)
        default_mode = 0o755 if executable else 0o644
        mode = spec.mode if spec and spec.mode is not None else default_mode
        content = render(rel)
        seen.add(target)
        if rel.endswith(OPTIONAL_SUFFIX) and not content.strip():
            return  # nothing to say for this config: no file
        files.append(RenderedFile(target, content, mode, spec.owner if spec else "root",
                                  spec.group if spec else "root", rel))

    if overlay_dir.is_dir():
        for path in sorted(overlay_dir.rglob("*")):
            rel = path.relative_to(overlay_dir).as_posix()
            if path.is_dir() or rel in sources:
                continue
            target = "/" + rel.removesuffix(OPTIONAL_SUFFIX).removesuffix(TEMPLATE_SUFFIX)
            add(target, rel)
    for spec in by_path.values():
        if spec.source:
            if not (overlay_dir / spec.source).is_file():
                raise ConfigError(str(overlay_dir), spec.path, f"source '{spec.source}' not found")
            add(spec.path, spec.source)
    dirs = [RenderedDir(spec.path, spec.mode if spec.mode is not None else 0o755, spec.owner,
                        spec.group)
            for spec in by_path.values() if spec.path not in seen and not spec.source]
    return files, dirs


def checkout_files(repo: Path, source: str, target: str) -> list[RenderedFile]:
    """Every file of the checkout folder ``source`` under ``target``, verbatim, root-owned;
    executables stay executable. Byte-code caches are left out (the image makes its own)."""
    folder = repo / source
    if not folder.is_dir():
        raise ConfigError(str(repo), source, "no such folder in the checkout")
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        files.append(RenderedFile(f"{target}/{rel}", path.read_bytes(), mode, "root", "root",
                                  f"{source}/{rel}"))
    return files


def _id_map(path: Path) -> dict[str, int]:
    ids: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[2].isdigit():
                ids[fields[0]] = int(fields[2])
    return ids


class TargetIds:
    """User and group names resolved in the target tree."""

    def __init__(self, rootfs: Path) -> None:
        self.users = _id_map(rootfs / "etc/passwd")
        self.groups = _id_map(rootfs / "etc/group")

    def uid(self, name: str) -> int:
        if name not in self.users:
            raise ConfigError("overlay", name, "no such user in the target's /etc/passwd")
        return self.users[name]

    def gid(self, name: str) -> int:
        if name not in self.groups:
            raise ConfigError("overlay", name, "no such group in the target's /etc/group")
        return self.groups[name]


def target_path(rootfs: Path, path: str) -> Path:
    """``path`` inside ``rootfs``, refusing symlinks that would lead outside it."""
    full = rootfs / path.lstrip("/")
    parent = full.parent.resolve()
    if not parent.is_relative_to(rootfs.resolve()):
        raise ConfigError("overlay", path, "its parent directory leads outside the target tree")
    return full


def install_files(rootfs: Path, files: Iterable[RenderedFile], dirs: Iterable[RenderedDir]) -> int:
    """Write rendered files atomically with their modes and owners; return how many."""
    ids = TargetIds(rootfs)
    count = 0
    for d in dirs:
        full = target_path(rootfs, d.path)
        full.mkdir(parents=True, exist_ok=True)
        os.chown(full, ids.uid(d.owner), ids.gid(d.group))
        full.chmod(d.mode)
    for f in files:
        full = target_path(rootfs, f.path)
        full.parent.mkdir(parents=True, exist_ok=True)
        if full.is_symlink() or (full.exists() and not stat.S_ISREG(full.lstat().st_mode)):
            full.unlink()  # e.g. replace a package's symlink with our own file
        tmp = full.with_name(f".{full.name}.ewindow-tmp")
        tmp.write_bytes(f.content)
        os.chown(tmp, ids.uid(f.owner), ids.gid(f.group))
        tmp.chmod(f.mode)
        tmp.replace(full)
        count += 1
    return count
