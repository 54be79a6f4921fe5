# SPDX-License-Identifier: MIT
"""The deployment's signed apt repository (``build.py repo``, README "Updates"), made with
reprepro (https://salsa.debian.org/debian/reprepro, manual: ``man reprepro``).

One distribution per Debian release: the image's (arm64) and the hub's (its architecture);
each holds the window's own packages (``Architecture: all``) and the source packages built
for it. The folder is what any static web server serves (``dists/``, ``pool/``); ``conf/``
and ``db/`` are reprepro's own and need not be published. ``InRelease`` and ``Release.gpg``
are signed with the deployment's key (fleet/repokey.py), which the images trust.

A version is published once: the same version with other contents is refused (a dirty
checkout's packages are refused unless asked for, since two of them can share a version).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CommandError, EWindowError
from ..log import log, step
from ..runner import run
from . import versioning

ORIGIN = "EWindow"
LABEL = "EWindow deployment"
COMPONENT = "main"
# what reprepro says when a .deb of a version it has differs from the one it has
SAME_VERSION_OTHER_FILE = "Already existing files can only be included again, if they are the same"


@dataclass(frozen=True)
class Distribution:
    codename: str  # the Debian release, e.g. trixie
    architectures: tuple[str, ...]
    debs: tuple[Path, ...]


def distributions_file(distributions: Sequence[Distribution], fingerprint: str) -> str:
    """reprepro's conf/distributions."""
    return "\n".join(
        f"Origin: {ORIGIN}\nLabel: {LABEL}\nSuite: {d.codename}\nCodename: {d.codename}\n"
        f"Architectures: {' '.join(d.architectures)}\nComponents: {COMPONENT}\n"
        f"Description: the window's own packages and the VPN daemons built from source\n"
        f"SignWith: {fingerprint}\n" for d in distributions)


def reprepro(root: Path, gnupg_home: Path, *args: str | Path) -> list[str]:
    return ["reprepro", "--basedir", os.fspath(root), "--gnupghome", os.fspath(gnupg_home),
            *(os.fspath(a) for a in args)]


def merge(targets: Mapping[tuple[str, str], Sequence[Path]], common: Sequence[Path]) -> list[Distribution]:
    """(release, architecture) → its .debs, and the ``all`` .debs every release gets → one
    distribution per release."""
    releases: dict[str, tuple[list[str], list[Path]]] = {}
    for (release, arch), debs in sorted(targets.items()):
        architectures, found = releases.setdefault(release, ([], list(common)))
        architectures.append(arch)
        found.extend(debs)
    return [Distribution(release, tuple(archs), tuple(dict.fromkeys(debs)))
            for release, (archs, debs) in sorted(releases.items())]


def refuse_dirty(debs: Sequence[Path]) -> None:
    dirty = [deb.name for deb in debs if versioning.DIRTY + "_" in deb.name]
    if dirty:
        raise EWindowError(f"not published: {', '.join(dirty)} come from uncommitted changes (two such "
                           "builds can share a version)", hint="commit them, or pass --allow-dirty to test")


def publish(root: Path, gnupg_home: Path, fingerprint: str, distributions: Sequence[Distribution]) -> None:
    """Put every .deb into its distribution under ``root`` and sign the indexes."""
    conf = root / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "distributions").write_text(distributions_file(distributions, fingerprint))
    with step(f"repository {root}: {', '.join(d.codename for d in distributions)}"):
        for distribution in distributions:
            for deb in distribution.debs:
                try:
                    run(reprepro(root, gnupg_home, "includedeb", distribution.codename, deb))
                except CommandError as error:
                    if SAME_VERSION_OTHER_FILE in error.output:
                        raise EWindowError(
                            f"{deb.name}: {distribution.codename} has this version already, with other "
                            f"contents (in {root})", hint="a changed package needs a new version: commit "
                            "the change") from None
                    raise
                log.info("    %s: %s", distribution.codename, deb.name)
        # the indexes again, signed (includedeb of an unchanged file exports nothing)
        run(reprepro(root, gnupg_home, "export"))
