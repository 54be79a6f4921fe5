# SPDX-License-Identifier: MIT
"""Running one stage on a root filesystem tree, and the key that names its result.

A stage's key hashes everything that can change its output: the previous stage's key, the
rendered stage.yaml, every file in the stage folder, the rendered overlay (content, modes,
owners), the parts of the builder that act on the tree, and (for the bootstrap) the apt
sources and options. Equal keys mean equal trees, so a finished stage is reused from the cache.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...apt import sources as apt_lines
from ...apt.resolver import AptResolver
from ...config import Config
from ...image import clock
from ...log import log
from ...retry import with_retries
from ...runner import run
from ...trees import remove_tree
from .. import localdebs
from .. import rootfs as rootfs_cmds
from ..epoch import STAGE_EPOCH
from ..overlay import RenderedDir, RenderedFile, checkout_files, install_files, render_overlay
from .definition import Stage

CODE_ROOT = Path(__file__).resolve().parents[2]  # the ewindow_image package
# The builder code a stage's output tree depends on: the stage definition and its run, the
# rootfs commands, the overlays, the local .debs, the apt lines written into the tree and
# the stage clock's stamping of what a stage wrote (image/clock.py).
# Hashed into every stage key. The CLI, cards, fleet, qemu and image code are not: editing or
# moving them keeps the stage cache (tests/test_incremental.py edits cards/flash.py).
STAGE_CODE = ("pipeline/stages", "pipeline/rootfs.py", "pipeline/overlay.py", "pipeline/localdebs.py",
              "apt/sources.py", "image/clock.py")


@dataclass(frozen=True)
class StageContext:
    cfg: Config
    repo_dir: Path
    overlays_dir: Path
    deb_cache: Path
    template_context: dict[str, Any]
    apt: AptResolver | None = None  # None: keys without the mirror's state (unit tests)
    # package name → .deb installed instead of the mirror's (built from source, or the admin's)
    local_debs: Mapping[str, localdebs.LocalDeb] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        # qemu-user reads QEMU_CPU from the environment of every emulated process; mmdebstrap,
        # maintainer scripts, useradd and mkinitramfs read the stage clock (epoch.py).
        env = {"SOURCE_DATE_EPOCH": str(STAGE_EPOCH), "TZ": "UTC"}
        return {**env, "QEMU_CPU": self.cfg.build.qemu_cpu} if self.cfg.build.qemu_cpu else env


def code_digest(parts: tuple[str, ...]) -> str:
    """The source of ``parts`` (files or folders of the ewindow_image package), by path."""
    h = hashlib.sha256()
    for part in parts:
        path = CODE_ROOT / part
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(source.relative_to(CODE_ROOT).as_posix().encode() + b"\0" + source.read_bytes() + b"\0")
    return h.hexdigest()


def builder_digest() -> str:
    return code_digest(STAGE_CODE)


def rendered_overlay(stage: Stage, ctx: StageContext) -> tuple[list[RenderedFile], list[RenderedDir]]:
    """The stage's overlay and checkout copies, rendered: what it writes into the tree."""
    copied = [f for spec in stage.copies for f in checkout_files(ctx.repo_dir, spec.source, spec.target)]
    if stage.overlay is None:
        return copied, [RenderedDir(f.path, f.mode or 0o755, f.owner, f.group) for f in stage.files]
    files, dirs = render_overlay(ctx.overlays_dir / stage.overlay, stage.files, ctx.template_context)
    return files + copied, dirs


def stage_inputs(stage: Stage, ctx: StageContext) -> dict[str, str]:
    """Everything that can change a stage's output, by name; the key hashes them and ``plan``
    names the ones that differ from the last build. Package entries carry the version apt
    resolves today; other entries a digest."""
    inputs: dict[str, str] = {f"stages/{stage.name}/stage.yaml (rendered)": _sha(stage.rendered.encode())}
    for path in sorted(stage.directory.rglob("*")):
        if path.is_file() and path.name != "stage.yaml":
            inputs[f"stages/{stage.name}/{path.relative_to(stage.directory)}"] = _sha(path.read_bytes())
    files, dirs = rendered_overlay(stage, ctx)
    copied = {spec.source for spec in stage.copies}
    for f in files:
        label = f.source if f.source.split("/")[0] in copied else f"overlays/{stage.overlay}/{f.source}"
        inputs[f"{label} → {f.path}"] = _sha(
            f.content + f"{f.mode:o}:{f.owner}:{f.group}".encode())
    for d in dirs:
        inputs[f"directory {d.path}"] = _sha(f"{d.mode:o}:{d.owner}:{d.group}".encode())
    if stage.packages:
        localdebs.check_available(ctx.cfg, stage.packages, ctx.local_debs)
        local = {name: ctx.local_debs[name] for name in stage.packages if name in ctx.local_debs}
        from_mirror = tuple(name for name in stage.packages if name not in local)
        sources = "\n".join(apt_lines.apt_sources(ctx.cfg) + apt_lines.apt_options(ctx.cfg))
        inputs["apt sources"] = _sha(sources.encode())
        if not stage.bootstrap and ctx.cfg.apt.extra_repos:
            extra = apt_lines.extra_repo_files(ctx.cfg)
            blob = b"".join(path.encode() + content for path, content in sorted(extra.items()))
            inputs["apt extra repositories"] = _sha(blob)
        if ctx.apt is not None and from_mirror:
            resolution = ctx.apt.resolve(from_mirror, minbase=stage.bootstrap)
            inputs.update({f"package {name}": version for name, version in resolution.versions})
        elif from_mirror:
            inputs.update({f"package {name}": "requested" for name in from_mirror})
        for name, deb in local.items():
            inputs[f"package {name}"] = deb.identity
    inputs["builder code"] = builder_digest()
    inputs["QEMU_CPU"] = ctx.cfg.build.qemu_cpu
    inputs["stage clock (SOURCE_DATE_EPOCH)"] = str(STAGE_EPOCH)
    return inputs


def stage_key(previous_key: str, inputs: dict[str, str]) -> str:
    h = hashlib.sha256(previous_key.encode())
    for name in sorted(inputs):
        h.update(f"\0{name}\0{inputs[name]}".encode())
    return h.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_stage(stage: Stage, ctx: StageContext, tree: Path) -> list[str]:
    """Apply ``stage`` to ``tree``; return a short list of what it did. Everything the stage
    writes is dated STAGE_EPOCH afterwards (a second of margin for coarse file times)."""
    started_ns = time.time_ns() - 10**9
    done: list[str] = []
    env = ctx.env
    attempts = ctx.cfg.apt.retries + 1
    if stage.bootstrap:
        def bootstrap() -> None:
            remove_tree(tree)
            tree.parent.mkdir(parents=True, exist_ok=True)
            ctx.deb_cache.mkdir(parents=True, exist_ok=True)
            run(rootfs_cmds.mmdebstrap_argv(ctx.cfg, stage.packages, tree, ctx.deb_cache), env=env)

        with_retries(bootstrap, attempts=attempts, what=f"stage {stage.name}")
        done.append(f"bootstrapped {ctx.cfg.suite} with {len(stage.packages)} packages")
    elif stage.packages:
        extra = [RenderedFile(path, content, 0o644, "root", "root") for path, content in
                 apt_lines.extra_repo_files(ctx.cfg).items()]
        if extra:
            install_files(tree, extra, [])
        local = [ctx.local_debs[name] for name in stage.packages if name in ctx.local_debs]
        names = [f"{localdebs.CHROOT_DIR}/{ctx.local_debs[name].path.name}" if name in ctx.local_debs
                 else name for name in stage.packages]
        binds = [(ctx.deb_cache, "/var/cache/apt/archives")]
        if local:
            staged = localdebs.stage_folder(local, tree.parent / "local-debs")
            binds.append((staged, localdebs.CHROOT_DIR))
        install = rootfs_cmds.chroot_argv(tree, rootfs_cmds.apt_install_script(ctx.cfg, names), binds=binds)
        # apt-get install is safe to repeat in place after a failed download.
        with_retries(lambda: run(install, env=env), attempts=attempts, what=f"stage {stage.name}")
        done.append(f"installed {', '.join(stage.packages)}")
    for command in stage.host:
        run(rootfs_cmds.host_hook_argv(tree, command), env={**env, "ROOTFS": str(tree)})
    if stage.host:
        done.append(f"{len(stage.host)} host hooks")
    files, dirs = rendered_overlay(stage, ctx)
    if files or dirs:
        count = install_files(tree, files, dirs)
        done.append(f"{count} overlay files")
    for command in stage.chroot:
        run(rootfs_cmds.chroot_argv(tree, command), env=env)
    if stage.chroot:
        done.append(f"{len(stage.chroot)} chroot hooks (emulated)")
    if stage.enable:
        run(rootfs_cmds.systemctl_enable_argv(tree, stage.enable), env=env)
        done.append(f"enabled {', '.join(stage.enable)}")
    clock.stamp_changed(tree, started_ns, STAGE_EPOCH)
    for line in done:
        log.info("    %s", line)
    return done
