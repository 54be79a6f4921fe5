# SPDX-License-Identifier: MIT
"""A source package's recipe: ``packages/<name>/package.yaml`` plus ``patches/*.patch``.

The recipe says where the source comes from and what it is pinned to, how to build it and
what goes into the package. Its build steps run as shell commands in the unpacked source with
``CC``, ``AR``, ``RANLIB``, ``STRIP``, ``CFLAGS`` and ``LDFLAGS`` set for the target; they are
part of this repository (trusted), never of a site file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstboot import checks

from ..config import yamlfile
from ..errors import ConfigError, EWindowError

NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
INSTALL_PATH = re.compile(r"^(usr|etc)/[A-Za-z0-9._/+-]+$")
SPDX = re.compile(r"[A-Za-z0-9.+-]+(?: (?:AND|OR|WITH) [A-Za-z0-9.+-]+)*")
MAX_SUMMARY = 200
MAX_TEXT = 4000


class RecipeError(EWindowError, ValueError):
    """A recipe (packages/*/package.yaml) that must not be used: input, like a site file."""

    exit_status = 2


@dataclass(frozen=True)
class SourcePin:
    url: str  # upstream archive, "{commit}" filled in
    file: str  # the archive's name on a mirror
    commit: str
    tree_sha256: str  # digest of the unpacked tree (source.tree_digest): same for any gzip of it


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str  # upstream's
    revision: str  # Debian revision: says it was built here, e.g. "0ewindow1"
    summary: str
    description: str
    homepage: str
    license: str  # SPDX identifier
    copyright: str  # "YEARS HOLDER" lines for debian/copyright
    source: SourcePin
    build_depends: tuple[str, ...]  # Debian packages of the target, unpacked into the sysroot
    build: tuple[str, ...]  # shell commands, run in the source tree
    install: tuple[tuple[str, str], ...]  # (built file in the source tree, path in the package)
    directory: Path

    @property
    def deb_version(self) -> str:
        return f"{self.version}-{self.revision}"

    @property
    def patches(self) -> tuple[Path, ...]:
        return tuple(sorted((self.directory / "patches").glob("*.patch")))

    def deb_name(self, arch: str) -> str:
        return f"{self.name}_{self.deb_version}_{arch}.deb"


def _field(data: dict[str, Any], key: str, where: str, kind: type = str, prefix: str = "") -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        what = "text (quote it in YAML)" if kind is str else "a mapping" if kind is dict else kind.__name__
        raise RecipeError(f"{where}: {prefix}{key}: missing or not {what}")
    return value


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RecipeError(f"{where}: {key}: expected a list of strings")
    return tuple(value)


def read_manifest(directory: Path) -> tuple[Path, Any]:
    """``directory/package.yaml`` and what it holds; a YAML error names the file."""
    where = directory / "package.yaml"
    try:
        return where, yamlfile.load(where)
    except ConfigError as exc:
        raise RecipeError(str(exc)) from None


def checked_field(where: Path, key: str, value: str, check: Callable[[str], object]) -> str:
    """``value`` through one of the shared checks; its message names the recipe and the field."""
    try:
        check(value)
    except checks.InvalidValue as exc:
        raise RecipeError(f"{where}: {key}: {exc}") from None
    return value


def text_block(value: str) -> str:
    """Lines of text that go, each indented, into DEBIAN/control or debian/copyright."""
    lines = value.split("\n")  # a "\r" or another line break is not printable: refused
    if len(value) > MAX_TEXT or not all(line.isprintable() for line in lines):
        raise checks.InvalidValue(f"{checks.shown(value)} is not lines of printable text "
                                  f"(at most {MAX_TEXT} characters)")
    return value


def spdx_expression(value: str) -> str:
    if not SPDX.fullmatch(value):
        raise checks.InvalidValue(f"{checks.shown(value)} is not an SPDX licence expression")
    return value


def _patches(where: Path, directory: Path) -> None:
    """Each patch a regular file of the recipe's own folder (a link could name any file)."""
    for patch in sorted((directory / "patches").glob("*.patch")):
        if patch.is_symlink() or not patch.is_file():
            raise RecipeError(f"{where}: patches/{patch.name}: not a regular file; a patch is a plain "
                              "file in the recipe's folder")


def load_recipe(directory: Path) -> Recipe:
    where, data = read_manifest(directory)
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping")
    name = _field(data, "name", str(where))
    if not NAME.match(name) or name != directory.name:
        raise RecipeError(f"{where}: name: '{name}' must be a Debian package name equal to the folder's")

    def text(key: str, check: Callable[[str], object]) -> str:
        return checked_field(where, key, _field(data, key, str(where)), check)

    src = _field(data, "source", str(where), dict)
    commit = _field(src, "commit", str(where), prefix="source.")
    if not COMMIT.match(commit):
        raise RecipeError(f"{where}: source.commit: '{commit}' is not a 40-digit commit id")
    tree = _field(src, "tree_sha256", str(where), prefix="source.")
    if not SHA256.match(tree):
        raise RecipeError(f"{where}: source.tree_sha256: not a sha256")
    # "{commit}" is the one placeholder; str.format would read any other field (and fail inside)
    url = _field(src, "url", str(where), prefix="source.").replace("{commit}", commit)
    file = _field(src, "file", str(where), prefix="source.").replace("{commit}", commit)
    pin = SourcePin(url=checked_field(where, "source.url", url, lambda v: checks.url(v, ("https", "http"))),
                    file=checked_field(where, "source.file", file, checks.file_name),
                    commit=commit, tree_sha256=tree)
    install = _field(data, "install", str(where), dict)
    for built, target in install.items():
        if not isinstance(target, str) or not INSTALL_PATH.match(target) or ".." in target.split("/"):
            raise RecipeError(f"{where}: install.{built}: '{target}' is not a path under usr/ or etc/")
        if not isinstance(built, str) or built.startswith("/") or ".." in built.split("/"):
            raise RecipeError(f"{where}: install: '{built}' must be a path inside the source tree")
    build_depends = _strings(data, "build_depends", str(where))
    for index, package in enumerate(build_depends):
        checked_field(where, f"build_depends[{index}]", package, checks.debian_package)
    _patches(where, directory)
    return Recipe(
        name=name, version=text("version", checks.debian_upstream_version),
        revision=text("revision", checks.debian_revision),
        summary=text("summary", lambda v: checks.one_line_text(v, max_length=MAX_SUMMARY)),
        description=text("description", text_block).strip(),
        homepage=text("homepage", lambda v: checks.url(v, ("https", "http"))),
        license=text("license", spdx_expression),
        copyright=text("copyright", text_block).strip(), source=pin,
        build_depends=build_depends,
        build=_strings(data, "build", str(where)),
        install=tuple(sorted(install.items())), directory=directory)


def load_recipes(packages_dir: Path) -> dict[str, Recipe]:
    """Every recipe under ``packages/``, by package name."""
    recipes = {}
    for manifest in sorted(packages_dir.glob("*/package.yaml")):
        if "checkout" in (yamlfile.load(manifest) or {}):  # the window's own code (checkout.py)
            continue
        recipe = load_recipe(manifest.parent)
        recipes[recipe.name] = recipe
    return recipes
