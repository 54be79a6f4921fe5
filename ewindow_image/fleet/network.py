# SPDX-License-Identifier: MIT
"""``build.py network init DIR``: a new deployment's secrets, outside the repository.

The original EWindow committed its VPN pre-shared key to a public repository. Here the
secrets live in ``DIR/secrets.yaml`` (mode 0600, folder 0700), which the site file names with
``secrets_file:``. The config loader refuses a secrets file others can read or one inside a
git checkout, and the lint gate refuses an image that contains any of its values.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

SECRETS_NAME = "secrets.yaml"


@dataclass(frozen=True)
class NetworkSecrets:
    vpn_psk: str
    prefix: str  # a random RFC 4193 /64, offered for a deployment that starts from scratch


def generate() -> NetworkSecrets:
    # RFC 4193 §3.2: fd00::/8 + a 40-bit pseudo-random global ID; subnet 0.
    global_id = secrets.randbits(40)
    prefix = ipaddress.IPv6Network(((0xFD << 120) | (global_id << 80), 64))
    return NetworkSecrets(vpn_psk=secrets.token_urlsafe(48), prefix=str(prefix))


def secrets_text(found: NetworkSecrets, path: Path) -> str:
    today = time.strftime("%Y-%m-%d")
    return (f"# EWindow deployment secrets, made by `build.py network init` on {today}.\n"
            "# Keep this file private (mode 0600) and out of git. Name it in site.yaml:\n"
            f"#   secrets_file: {path}\n"
            "# It is read by `make image` (the lint gate checks the image holds none of these values)\n"
            "# and by `build.py personalise` / `make flash`, which put them on each card.\n"
            "vpn:\n"
            f"  psk: \"{found.vpn_psk}\"\n"
            "# Wi-Fi passwords belong here too:\n"
            "# wifi:\n#   country: DE\n#   networks:\n#     - {ssid: partner-space, psk: \"…\"}\n")


def inside_git_checkout(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if (parent / ".git").exists():
            return parent
    return None


def init(directory: Path) -> tuple[Path, NetworkSecrets]:
    """Make ``DIR/secrets.yaml``. A new folder is made 0700; an existing one is used as it
    is (its mode is not changed) but must be a folder that only its owner can write to."""
    directory = directory.expanduser().absolute()
    checkout = inside_git_checkout(directory)
    if checkout is not None:
        raise ConfigError(str(directory), "", f"inside the git checkout {checkout}; secrets belong "
                          "outside it (e.g. ~/ewindow-network)")
    target = directory / SECRETS_NAME
    if target.exists() or target.is_symlink():
        raise ConfigError(str(target), "", "exists already; it is never overwritten (move it away "
                          "to start a new deployment)")
    check_folder(directory)
    found = generate()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{SECRETS_NAME}.")  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(secrets_text(found, target))
            stream.flush()
            os.fsync(stream.fileno())
        os.link(tmp, target)  # fails if the name appeared meanwhile: never overwrites
    finally:
        os.unlink(tmp)
    return target, found


def check_folder(directory: Path) -> None:
    """``directory`` is a folder only its owner can write to, made 0700 when missing."""
    if directory.exists() or directory.is_symlink():
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigError(str(directory), "", "exists and is not a folder")
        if info.st_uid != os.geteuid():
            raise ConfigError(str(directory), "", f"owned by another user (uid {info.st_uid}, you are "
                              f"{os.geteuid()}), who could read or replace the secrets; give a folder "
                              "of your own, e.g. ~/ewindow-network")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            mode = stat.S_IMODE(info.st_mode)
            raise ConfigError(str(directory), "", f"others can write to it (mode {mode:04o}); give a "
                              "private folder, e.g. ~/ewindow-network")
    else:
        try:
            directory.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise ConfigError(str(directory), "", exc.strerror or str(exc)) from None
