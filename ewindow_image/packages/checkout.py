# SPDX-License-Identifier: MIT
"""The window's own code as Debian packages (``ewindow-firstboot``, ``ewindow-agent``), made
from this checkout: ``packages/<name>/package.yaml`` with a ``checkout:`` mapping instead of
an upstream ``source:``.

A package holds the files under ``packages/<name>/root/`` as they are, and the checkout's
folders that ``checkout:`` names (``firstboot: usr/lib/ewindow/firstboot``). What
debhelper would add is added here: every file under ``etc/`` is a conffile (an admin's edit
survives an upgrade, dpkg asks or keeps it), ``md5sums``, a DEP-5 copyright file, and
maintainer scripts that do what ``dh_installsystemd`` and ``dh_installsysusers`` do: the
sysusers.d users made, the units enabled on installation (``deb-systemd-helper``), systemd
reloaded and the listed units restarted after an upgrade on a running window, stopped on
removal and forgotten on purge. The version comes from git (:mod:`.versioning`).

The .deb is the same for the same files and version (modes normalised, times clamped to one
constant, ``dpkg-deb`` under SOURCE_DATE_EPOCH), so a stage that installs it keeps its key
while nothing in it changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstboot import checks

from ..config import yamlfile
from ..log import log, step
from ..runner import run
from . import debhelper, debian, versioning
from .debhelper import ARCH
from .recipe import MAX_SUMMARY, NAME, RecipeError, checked_field, read_manifest, text_block
from .service import PlannedDeb

CLAMP_EPOCH = 1735689600  # 2025-01-01T00:00:00Z, the stages' clock (pipeline/epoch.py)
UNIT = re.compile(r"^[A-Za-z0-9@._-]+\.(service|path|timer|socket|target)$")
UNIT_DIR = "usr/lib/systemd/system"
SYSUSERS_DIR = "usr/lib/sysusers.d"
TMPFILES_DIR = "usr/lib/tmpfiles.d"
SKIPPED = ("__pycache__",)
INSTALL_PATH = re.compile(r"^(usr|etc|var)/[A-Za-z0-9._/+-]+$")
RELATIVE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


@dataclass(frozen=True)
class CheckoutPackage:
    name: str
    summary: str
    description: str
    section: str
    depends: tuple[str, ...]
    checkout: tuple[tuple[str, str], ...]  # (folder of the checkout, path in the package)
    restart: tuple[str, ...]  # units restarted after an upgrade on a running window
    directory: Path  # packages/<name>

    @property
    def root(self) -> Path:
        return self.directory / "root"

    def version_paths(self, repo_root: Path) -> list[str]:
        """The checkout's paths whose commits make its version."""
        return [self.directory.relative_to(repo_root).as_posix(), *(src for src, _ in self.checkout)]


def is_checkout_package(data: Any) -> bool:
    return isinstance(data, dict) and "checkout" in data


def load(directory: Path) -> CheckoutPackage:
    where, data = read_manifest(directory)
    if not is_checkout_package(data):
        raise RecipeError(f"{where}: expected a mapping with 'checkout'")

    def text(key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RecipeError(f"{where}: {key}: missing or not text")
        return value.strip()

    def names(key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and pattern.match(v) for v in value):
            raise RecipeError(f"{where}: {key}: expected a list of names")
        return tuple(value)

    name = text("name")
    if not NAME.match(name) or name != directory.name:
        raise RecipeError(f"{where}: name: '{name}' must be a Debian package name equal to the folder's")
    mapping = data["checkout"] or {}
    if not isinstance(mapping, dict):
        raise RecipeError(f"{where}: checkout: expected a mapping of folder → path in the package")
    for source, target in mapping.items():
        if not isinstance(source, str) or not RELATIVE_PATH.match(source) or ".." in source.split("/"):
            raise RecipeError(f"{where}: checkout: '{source}' must be a folder of the checkout")
        if not isinstance(target, str) or not INSTALL_PATH.match(target) or ".." in target.split("/"):
            raise RecipeError(f"{where}: checkout.{source}: '{target}' is not a path under usr/, etc/ "
                              "or var/")
    summary = checked_field(where, "summary", text("summary"),
                       lambda v: checks.one_line_text(v, max_length=MAX_SUMMARY))
    section = checked_field(where, "section", str(data.get("section") or "misc"), checks.debian_section)
    description = checked_field(where, "description", text("description"), text_block)
    return CheckoutPackage(
        name=name, summary=summary, description=description,
        section=section, depends=names("depends", NAME),
        checkout=tuple(sorted(mapping.items())), restart=names("restart", UNIT), directory=directory)


def load_all(packages_dir: Path) -> dict[str, CheckoutPackage]:
    found = {}
    for manifest in sorted(packages_dir.glob("*/package.yaml")):
        if is_checkout_package(yamlfile.load(manifest)):
            package = load(manifest.parent)
            found[package.name] = package
    return found


# --- the files -------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageFile:
    source: Path
    path: str  # in the package, relative: usr/lib/ewindow/firstboot/__main__.py
    executable: bool


def files(package: CheckoutPackage, repo_root: Path) -> list[PackageFile]:
    """Every file the package holds, by its path in the package."""
    found: dict[str, PackageFile] = {}
    for source, target in [(package.root, ""), *((repo_root / s, t) for s, t in package.checkout)]:
        if not source.is_dir():
            raise RecipeError(f"{package.directory / 'package.yaml'}: {source} is not a folder")
        for path in _walk(source):
            if path.is_symlink() or not path.is_file():
                raise RecipeError(f"{path}: only regular files go into {package.name}")
            inside = path.relative_to(source).as_posix()
            where = f"{target}/{inside}" if target else inside
            if where in found:
                raise RecipeError(f"{package.name}: two files for {where}")
            found[where] = PackageFile(path, where, bool(path.stat().st_mode & 0o111))
    return [found[p] for p in sorted(found)]


def _walk(folder: Path) -> Iterator[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.name in SKIPPED or entry.suffix == ".pyc":
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        else:
            yield entry


def units(held: Sequence[PackageFile]) -> list[str]:
    """The systemd units it ships that have an [Install] section (the ones to enable)."""
    found = []
    for f in held:
        directory, _, name = f.path.rpartition("/")
        if directory == UNIT_DIR and UNIT.match(name) and "\n[Install]" in "\n" + f.source.read_text():
            found.append(name)
    return found


def sysusers(held: Sequence[PackageFile]) -> list[str]:
    return [f.path.rpartition("/")[2] for f in held if f.path.startswith(SYSUSERS_DIR + "/")
            and f.path.endswith(".conf")]


def tmpfiles(held: Sequence[PackageFile]) -> list[str]:
    return [f.path.rpartition("/")[2] for f in held if f.path.startswith(TMPFILES_DIR + "/")
            and f.path.endswith(".conf")]


def python_dirs(package: CheckoutPackage, held: Sequence[PackageFile]) -> list[str]:
    """The installed folders of its Python code, which the postinst byte-compiles."""
    return sorted({"/" + target for _, target in package.checkout
                   if any(f.path.startswith(target + "/") and f.path.endswith(".py") for f in held)})


def conffiles(held: Sequence[PackageFile]) -> list[str]:
    return ["/" + f.path for f in held if f.path.startswith("etc/")]


# --- planning and building --------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCheckoutPackage(PlannedDeb):
    package: CheckoutPackage
    version: str

    @property
    def label(self) -> str:
        return f"{self.package.name} {self.version}"

    def pin(self) -> dict[str, str]:
        return {"name": self.package.name, "version": self.version, "arch": ARCH, "key": self.key}


def deb_name(name: str, version: str) -> str:
    return f"{name}_{version}_{ARCH}.deb"


def code_digest() -> str:
    return hashlib.sha256(b"".join(Path(m.__file__ or "").read_bytes() for m in (debian, debhelper))
                          + Path(__file__).read_bytes()).hexdigest()


class CheckoutPackages:
    """The checkout packages under ``packages/`` and where their .debs are cached."""

    def __init__(self, repo_root: Path, packages_dir: Path, cache_root: Path) -> None:
        self.repo_root = repo_root
        self.packages = load_all(packages_dir) if packages_dir.is_dir() else {}
        self.cache_root = cache_root

    def versions(self) -> dict[str, str]:
        return {name: versioning.checkout_version(self.repo_root, name, p.version_paths(self.repo_root))
                for name, p in self.packages.items()}

    def plan(self, names: Sequence[str]) -> list[PlannedCheckoutPackage]:
        planned = []
        for name in names:
            package = self.packages[name]
            version = versioning.checkout_version(self.repo_root, name,
                                                  package.version_paths(self.repo_root))
            inputs = self.inputs(package, version)
            key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
            deb = self.cache_root / "packages" / name / key[:16] / deb_name(name, version)
            planned.append(PlannedCheckoutPackage(key=key, inputs=inputs, deb=deb, package=package,
                                                  version=version))
        return planned

    def inputs(self, package: CheckoutPackage, version: str) -> dict[str, str]:
        """What the package's key hashes: its version, this code, every file with its mode."""
        inputs = {"version": version, "builder code (checkout packages)": code_digest()}
        for f in files(package, self.repo_root):
            inputs[f"file {f.path}"] = hashlib.sha256(
                f.source.read_bytes() + (b"\0x" if f.executable else b"\0")).hexdigest()
        return inputs

    def reasons(self, planned: PlannedCheckoutPackage) -> list[str]:
        """Why it is built again: what differs from its newest build in the cache."""
        builds = sorted((self.cache_root / "packages" / planned.package.name).glob("*/package.json"),
                        key=lambda p: p.stat().st_mtime)
        if not builds:
            return ["not built yet"]
        before: dict[str, str] = json.loads(builds[-1].read_text()).get("inputs", {})
        return [f"{name} changed" for name in sorted(set(before) | set(planned.inputs))
                if before.get(name) != planned.inputs.get(name)]

    def ensure(self, planned: PlannedCheckoutPackage) -> Path:
        if planned.cached:
            return planned.deb
        with step(f"package {planned.label} from this checkout"):
            if self.inputs(planned.package, planned.version) != planned.inputs:
                # a file edited since the plan: the .deb would not be what its key names
                raise RecipeError(f"{planned.package.name}: its files changed during the build",
                                  hint="run the build again")
            final = planned.deb.parent
            partial = final.with_name(final.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            staging = partial / "staging"
            built = build_deb(planned.package, planned.version, self.repo_root, staging, partial)
            shutil.rmtree(staging)
            built.rename(partial / planned.deb.name)
            meta = {"inputs": planned.inputs, "pin": planned.pin()}
            (partial / "package.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            log.info("    %s", planned.deb.name)
        return planned.deb


def build_deb(package: CheckoutPackage, version: str, repo_root: Path, staging: Path, out: Path) -> Path:
    """Stage the package's files and control files under ``staging``; the .deb in ``out``."""
    held = files(package, repo_root)
    for f in held:
        target = staging / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.source, target)
        target.chmod(0o755 if f.executable else 0o644)
    doc = staging / "usr/share/doc" / package.name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(debhelper.copyright_file(package))
    (doc / "copyright").chmod(0o644)
    for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    size = debian.installed_kib(staging)
    control_dir = staging / "DEBIAN"
    control_dir.mkdir()
    unit_names = units(held)
    kept = conffiles(held)
    compiled = python_dirs(package, held)
    scripts = {"postinst": debhelper.postinst(unit_names, package.restart, sysusers(held), tmpfiles(held),
                                              package.name if compiled else "", compiled),
               "prerm": debhelper.prerm(unit_names, package.name if compiled else ""),
               "postrm": debhelper.postrm(unit_names)}
    for name, content in scripts.items():
        (control_dir / name).write_text(content)
        (control_dir / name).chmod(0o755)
    controls = {"control": debhelper.control(package, version, size),
                "md5sums": debhelper.md5sums(staging, kept)}
    if kept:
        controls["conffiles"] = "".join(f"{path}\n" for path in kept)
    for name, content in controls.items():
        (control_dir / name).write_text(content)
        (control_dir / name).chmod(0o644)
    control_dir.chmod(0o755)
    debian.clamp_mtimes(staging, CLAMP_EPOCH)
    out.mkdir(parents=True, exist_ok=True)
    deb = out / deb_name(package.name, version)
    run(debian.dpkg_deb_argv(staging, deb), env={"SOURCE_DATE_EPOCH": str(CLAMP_EPOCH)})
    return deb

