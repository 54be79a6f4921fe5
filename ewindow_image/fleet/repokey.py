# SPDX-License-Identifier: MIT
"""The deployment's apt repository key (README "Updates"), beside secrets.yaml.

``DIR/repo-gnupg/`` is a GnuPG home (0700) holding an Ed25519 signing key without a
passphrase, like the secrets file: it signs the repository that ``build.py repo`` writes, in
batch mode. ``DIR/ewindow-archive-keyring.gpg`` is its public key, which images built with
``updates.repo`` keep in /etc/apt/keyrings and name in ``Signed-By``. gpg's agent, which gpg
starts for the key's home, is stopped again: nothing outlives the command.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import REPO_GNUPG_DIR, REPO_KEYRING
from ..errors import EWindowError
from ..runner import run

USER_ID = "EWindow deployment repository"


def gpg(home: Path, *args: str) -> list[str]:
    return ["gpg", "--batch", "--no-tty", "--homedir", os.fspath(home), *args]


def keygen_argv(home: Path) -> list[str]:
    # Ed25519, signing only, no expiry: windows in the field trust it for years; a new key
    # means new images (the README says how to rotate it)
    return gpg(home, "--passphrase", "", "--quick-gen-key", USER_ID, "ed25519", "sign", "never")


def list_argv(home: Path) -> list[str]:
    return gpg(home, "--with-colons", "--list-secret-keys")


def export_argv(home: Path, fingerprint: str, target: Path) -> list[str]:
    return gpg(home, "--yes", "--output", os.fspath(target), "--export", fingerprint)


def stop_agent_argv(home: Path) -> list[str]:
    return ["gpgconf", "--homedir", os.fspath(home), "--kill", "all"]


def fingerprint_from(listing: str) -> str:
    """The first secret key's fingerprint in ``gpg --with-colons`` output."""
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "fpr" and len(fields) > 9 and len(fields[9]) == 40:
            return fields[9]
    raise EWindowError("the repository key's GnuPG home holds no secret key")


@contextmanager
def gnupg_home(home: Path) -> Iterator[Path]:
    """``home`` under a short name, for gpg and the agent it starts, which is stopped when the
    block ends, however it ends. The agent's socket lives in the home folder, and a socket's
    path has at most 107 bytes (unix(7)): a deployment folder deep in a file system gave "No
    agent running"."""
    with tempfile.TemporaryDirectory(prefix="ewindow-gpg-") as short:
        alias = Path(short) / "h"
        alias.symlink_to(home.absolute())
        try:
            yield alias
        finally:
            run(stop_agent_argv(alias), ok_codes=(0, 1, 2))


def paths(directory: Path) -> tuple[Path, Path]:
    return directory / REPO_GNUPG_DIR, directory / REPO_KEYRING


def exists(directory: Path) -> bool:
    home, keyring = paths(directory)
    return home.is_dir() and keyring.is_file()


def make(directory: Path) -> tuple[Path, str]:
    """Make the key in ``directory`` (a private folder that exists); its public key file and
    fingerprint. An existing one is never replaced."""
    home, keyring = paths(directory)
    if home.exists() or keyring.exists():
        raise EWindowError(f"{home} or {keyring} exists already; a repository key is never replaced")
    partial = directory / f".{REPO_GNUPG_DIR}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    with gnupg_home(partial) as alias:
        run(keygen_argv(alias))
        fingerprint = fingerprint_from(run(list_argv(alias), capture=True))
        run(export_argv(alias, fingerprint, keyring.with_name(keyring.name + ".partial")))
    keyring.with_name(keyring.name + ".partial").rename(keyring)
    partial.rename(home)
    return keyring, fingerprint


def fingerprint(home: Path) -> str:
    """The fingerprint of the key in the GnuPG home ``home`` (a short alias, gnupg_home)."""
    return fingerprint_from(run(list_argv(home), capture=True))
