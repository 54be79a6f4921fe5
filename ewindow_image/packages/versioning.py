# SPDX-License-Identifier: MIT
"""The version of a package made from this checkout, from the project's git history.

``PROJECT+COUNT.gHASH``: the builder's version, how many commits have touched the package's
files and the newest of them (``git rev-list --count``, ``git log -1``), so that every commit
that changes the package gives a higher Debian version (``0.1.0+27.g1a2b3c4d5e`` <
``0.1.0+28.g…``) and a commit elsewhere (the README, the builder) gives the same package.
Uncommitted changes to its files add ``.dirty`` (a package with no commit yet is
``PROJECT+0.dirty``): such a build says so, and ``repo`` refuses to
publish it (two different dirty builds would share one version).

A copy of the checkout without ``.git`` (the tests' and benchmarks' copies, an export) reads
the versions from :data:`STAMP`, which :func:`write_stamp` wrote from the original.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import __version__
from ..errors import EWindowError
from ..runner import run

STAMP = ".package-versions.json"
DIRTY = ".dirty"
# What a version may be here: Debian's upstream-version characters, no epoch or revision.
VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~]{0,62}$")


class VersionError(EWindowError):
    pass


def git_argvs(root: Path, paths: Sequence[str]) -> dict[str, list[str]]:
    """What is asked of git (commit count, newest commit, uncommitted changes, shallow), as argv lists."""
    git = ["git", "--no-pager", "-C", os.fspath(root)]
    return {"count": [*git, "rev-list", "--count", "HEAD", "--", *paths],
            "newest": [*git, "log", "-1", "--format=%h", "--abbrev=10", "HEAD", "--", *paths],
            "changes": [*git, "status", "--porcelain", "--untracked-files=all", "--", *paths],
            "shallow": [*git, "rev-parse", "--is-shallow-repository"]}


def compose(count: int, commit: str, dirty: bool) -> str:
    return f"{__version__}+{count}.g{commit}{DIRTY if dirty else ''}"


def checkout_version(root: Path, name: str, paths: Sequence[str]) -> str:
    """``name``'s version, from git when ``root`` is a git checkout, else from the stamp."""
    if not (root / ".git").exists():
        return _stamped(root, name)
    argv = git_argvs(root, paths)
    try:
        if run(argv["shallow"], capture=True).strip() == "true":
            raise VersionError(f"{root} is a shallow clone: {name}'s version counts its commits",
                               hint="git fetch --unshallow")
        count = int(run(argv["count"], capture=True).strip() or "0")
        commit = run(argv["newest"], capture=True).strip()
        dirty = bool(run(argv["changes"], capture=True).strip())
    except ValueError:
        raise VersionError(f"{name}: git gave no commit count for {', '.join(paths)}") from None
    if count == 0 or not commit:  # a package not committed yet: below its first commit's version
        return f"{__version__}+0{DIRTY}"
    return compose(count, commit, dirty)


def _stamped(root: Path, name: str) -> str:
    stamp = root / STAMP
    try:
        versions = json.loads(stamp.read_text())
    except FileNotFoundError:
        raise VersionError(f"{root} is not a git checkout and has no {STAMP}: {name}'s version "
                           "comes from the project's git history",
                           hint="build from a git clone of ewindow-image") from None
    except (OSError, ValueError) as error:
        raise VersionError(f"{stamp}: unreadable ({error})") from None
    version = versions.get(name) if isinstance(versions, dict) else None
    if not isinstance(version, str) or not VERSION.match(version):
        raise VersionError(f"{stamp}: {name}: missing or not a version")
    return version


def write_stamp(target: Path, versions: Mapping[str, str]) -> None:
    (target / STAMP).write_text(json.dumps(dict(sorted(versions.items())), indent=2) + "\n")
