# SPDX-License-Identifier: MIT
"""Source packages for one build: what each package's key is, whether the cache has it, and
building it when not.

A package's key hashes its recipe, its patches, the source pin, the compiler's version, the
versions of the target libraries it builds against (resolved on the mirror, like a stage's
packages) and this sub-package's code. An unchanged key reuses the cached .deb without
touching the source, the sysroot or the compiler beyond one ``gcc --version``.

Cache layout (beside the stage cache):
``sources/`` verified upstream archives; ``sysroots/<suite>-<arch>-<key>/`` the target's
libraries; ``packages/<name>/<key>/<name>_<version>_<arch>.deb`` with ``package.json``
(inputs, pin, seconds); ``packages/logs/<name>-<suite>-<arch>.log`` the last build's output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import hostdeps
from ..apt.resolver import AptResolver
from ..apt.sources import apt_sources
from ..config import Config, Suite
from ..log import log, step
from ..runner import run
from . import compiling, debian, source, toolchain
from .recipe import Recipe, load_recipes
from .toolchain import Target


@dataclass(frozen=True)
class PlannedDeb:
    """A .deb a build makes unless the cache has it under its key."""

    key: str
    inputs: dict[str, str]
    deb: Path  # where the cache keeps (or will keep) it

    @property
    def cached(self) -> bool:
        return self.deb.is_file()


@dataclass(frozen=True)
class PlannedPackage(PlannedDeb):
    recipe: Recipe
    target: Target

    @property
    def label(self) -> str:
        return f"{self.recipe.name} ({self.target.arch})"

    def pin(self) -> dict[str, str]:
        """What build-info and the manifest say about it."""
        return {"name": self.recipe.name, "version": self.recipe.deb_version, "arch": self.target.arch,
                "upstream": self.recipe.source.url, "commit": self.recipe.source.commit,
                "tree_sha256": self.recipe.source.tree_sha256, "license": self.recipe.license,
                "key": self.key}


# The modules a package built from source depends on (not the checkout packages' own).
SOURCE_PACKAGE_CODE = ("compiling.py", "debian.py", "recipe.py", "service.py", "source.py", "toolchain.py")


def code_digest() -> str:
    h = hashlib.sha256()
    for module in sorted(Path(__file__).parent / name for name in SOURCE_PACKAGE_CODE):
        h.update(module.name.encode() + b"\0" + module.read_bytes())
    return h.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(inputs: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(inputs):
        h.update(f"\0{name}\0{inputs[name]}".encode())
    return h.hexdigest()


class SourcePackages:
    """The recipes under ``packages/`` and the cache they build into."""

    def __init__(self, cfg: Config, packages_dir: Path, cache_root: Path) -> None:
        self.cfg = cfg
        self.recipes = load_recipes(packages_dir) if packages_dir.is_dir() else {}
        self.cache_root = cache_root
        self._resolvers: dict[Target, AptResolver] = {}
        self._compilers: dict[Target, str] = {}
        self._tools: str | None = None

    # --- where things are -----------------------------------------------------------------

    @property
    def downloads(self) -> Path:
        return self.cache_root / "sources"

    def log_file(self, recipe: Recipe, target: Target) -> Path:
        return self.cache_root / "packages" / "logs" / f"{recipe.name}-{target.label}.log"

    def image_target(self) -> Target:
        return Target(self.cfg.arch, self.cfg.suite.value)

    def target_config(self, target: Target) -> Config:
        """The build's config for another suite or architecture: Debian's mirror only (a
        site's extra repositories need not serve it)."""
        return dataclasses.replace(self.cfg, suite=Suite(target.suite), arch=target.arch,
                                   apt=dataclasses.replace(self.cfg.apt, extra_repos=()))

    def resolver(self, target: Target, shared: AptResolver | None = None) -> AptResolver:
        if target not in self._resolvers:
            same = shared is not None and target == self.image_target() and not self.cfg.apt.extra_repos
            self._resolvers[target] = shared if same and shared else AptResolver(
                self.target_config(target), self.cache_root)
        return self._resolvers[target]

    def compiler(self, target: Target) -> str:
        if target not in self._compilers:
            self._compilers[target] = run(toolchain.version_argv(target), capture=True).splitlines()[0]
        return self._compilers[target]

    def build_tools(self) -> str:
        """The other programs builds run on (cjdns' build is node and python3): their
        versions, so another node or python makes another package."""
        if self._tools is None:
            self._tools = " ".join(run([tool, "--version"], capture=True).strip().splitlines()[0]
                                   for tool in toolchain.BUILD_TOOLS)
        return self._tools

    # --- planning -------------------------------------------------------------------------

    def plan(self, names: Sequence[str], target: Target, *,
             shared_resolver: AptResolver | None = None) -> list[PlannedPackage]:
        planned = []
        for name in names:
            recipe = self.recipes[name]
            resolution = self.resolver(target, shared_resolver).resolve(recipe.build_depends, minbase=False)
            manifest = recipe.directory / "package.yaml"
            inputs = {f"recipe packages/{name}/package.yaml": _sha(manifest.read_bytes()),
                      "source pin": f"{recipe.source.commit} tree {recipe.source.tree_sha256}",
                      "target": target.label, "compiler": self.compiler(target),
                      "build tools": self.build_tools(),
                      "builder code (ewindow_image/packages)": code_digest()}
            for patch in recipe.patches:
                inputs[f"patch {patch.name}"] = _sha(patch.read_bytes())
            inputs.update({f"library {pkg}": version for pkg, version in resolution.versions})
            key = _key(inputs)
            deb = self.cache_root / "packages" / name / key[:16] / recipe.deb_name(target.arch)
            planned.append(PlannedPackage(key=key, inputs=inputs, deb=deb, recipe=recipe, target=target))
        return planned

    def reasons(self, planned: PlannedPackage) -> list[str]:
        """Why a package rebuilds: the inputs that differ from its last build for this target."""
        builds = sorted((self.cache_root / "packages" / planned.recipe.name).glob("*/package.json"),
                        key=lambda p: p.stat().st_mtime)
        for meta_path in reversed(builds):
            meta = json.loads(meta_path.read_text())
            if meta.get("inputs", {}).get("target") == planned.target.label:
                before: dict[str, str] = meta["inputs"]
                changed = sorted(n for n in set(before) | set(planned.inputs)
                                 if before.get(n) != planned.inputs.get(n))
                return [f"{name} changed" for name in changed]
        return ["not built yet"]

    # --- building -------------------------------------------------------------------------

    def sysroot(self, target: Target, packages: Sequence[str]) -> Path:
        sources = apt_sources(self.target_config(target))
        key = _sha(json.dumps([target.label, sorted(packages), sources]).encode())[:16]
        sysroot = self.cache_root / "sysroots" / f"{target.label}-{key}"
        if sysroot.is_dir():
            return sysroot
        partial = sysroot.with_name(sysroot.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        with step(f"sysroot {target.label}: {', '.join(packages)}"):
            run(toolchain.sysroot_argv(target, packages, partial, sources))
            toolchain.merge_usr(partial)
        partial.rename(sysroot)
        return sysroot

    def fetch(self, planned: PlannedPackage) -> Path:
        """The package's verified source archive, from the download cache or a mirror."""
        mirrors = [m if "://" in m else str((self.cfg.base_dir / m).expanduser())
                   for m in self.cfg.sources.mirrors]
        return source.fetch(planned.recipe, source.mirror_urls(mirrors), self.downloads)

    def fetch_all(self, planned: Sequence[PlannedPackage]) -> None:
        """The sources of the packages a build will compile, before it builds anything: a
        source that no mirror has stops the build in seconds, not after the base system."""
        for package in planned:
            if not package.cached:
                self.fetch(package)

    def ensure(self, planned: PlannedPackage) -> Path:
        """The package's .deb, built now unless the cache has it."""
        if planned.cached:
            return planned.deb
        recipe, target = planned.recipe, planned.target
        hostdeps.require_tools(hostdeps.SOURCE_PACKAGE_TOOLS)
        start = time.monotonic()
        with step(f"package {planned.label}: {recipe.name} {recipe.deb_version} from source"):
            archive = self.fetch(planned)
            sysroot = self.sysroot(target, recipe.build_depends)
            work = self.cache_root / "packages" / "work" / f"{recipe.name}-{target.label}"
            log_file = self.log_file(recipe, target)
            epoch = source.commit_time(archive)
            staging = compiling.build(recipe, target, archive, sysroot, work, log_file, epoch)
            built = self._make_deb(planned, staging, sysroot, epoch, work)
            seconds = time.monotonic() - start
            meta = {"inputs": planned.inputs, "pin": planned.pin(), "seconds": round(seconds, 1)}
            self._publish(planned, built, meta)
            shutil.rmtree(work, ignore_errors=True)
            log.info("    %s: %s (%.1f s, log %s)", planned.label, planned.deb.name, seconds, log_file)
        return planned.deb

    def _make_deb(self, planned: PlannedPackage, staging: Path, sysroot: Path, epoch: int,
                  work: Path) -> Path:
        recipe, target = planned.recipe, planned.target
        shlibs = debian.shlibs_of_debs((sysroot / toolchain.SYSROOT_DEBS).glob("*.deb"))
        binaries = [p for p in staging.rglob("*") if p.is_file() and p.stat().st_mode & 0o111]
        depends = debian.depends(binaries, shlibs, planned.label)
        doc = staging / "usr/share/doc" / recipe.name
        doc.mkdir(parents=True, exist_ok=True)
        (doc / "copyright").write_text(debian.copyright_file(recipe))
        control_dir = staging / "DEBIAN"
        control_dir.mkdir()
        size = debian.installed_kib(staging)
        (control_dir / "control").write_text(debian.control(recipe, target.arch, depends, size))
        debian.clamp_mtimes(staging, epoch)
        deb = work / recipe.deb_name(target.arch)
        run(debian.dpkg_deb_argv(staging, deb), env={"SOURCE_DATE_EPOCH": str(epoch)})
        return deb

    def _publish(self, planned: PlannedPackage, built: Path, meta: dict[str, Any]) -> None:
        """Into the cache under its key, whole or not at all."""
        final = planned.deb.parent
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copyfile(built, partial / planned.deb.name)
        (partial / "package.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
