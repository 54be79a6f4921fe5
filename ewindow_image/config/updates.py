# SPDX-License-Identifier: MIT
"""Values computed from ``updates:`` (README "Updates"): where the deployment's repository key
is, the key as the image keeps it, and the upgrade timer's schedule."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from firstboot import checks

from ..errors import ConfigError
from . import openpgp

if TYPE_CHECKING:
    from .schema import Config

# the upgrade run starts this long before the window ends at the latest
UPGRADE_RUN_MARGIN_MINUTES = 30


def schedule(window: str) -> dict[str, str]:
    """The upgrade timer's start (HH:MM) and randomized spread for ``updates.window``."""
    try:
        start, end = checks.time_window(window)
    except checks.InvalidValue:
        return {"start": "03:00", "spread": "0"}  # validation names the field
    length = (end - start) % (24 * 60)
    spread = length - UPGRADE_RUN_MARGIN_MINUTES if length > 2 * UPGRADE_RUN_MARGIN_MINUTES else length // 2
    return {"start": f"{start // 60:02d}:{start % 60:02d}", "spread": f"{spread}min"}


def repo_key_armour(cfg: Config) -> str:
    """The deployment repository's key as armour for the image; "" without updates.repo."""
    keyring = updates_keyring(cfg) if cfg.updates.repo else None
    if keyring is None:
        return ""
    try:
        return openpgp.read_public_key(keyring)
    except ValueError as exc:
        raise ConfigError(cfg.origin("updates.repo"), "updates.key", f"{keyring}: {exc}") from None


# The deployment's apt repository key, made by `build.py network init` beside secrets.yaml:
# a GnuPG home with the private key, and the public key that images trust.
REPO_GNUPG_DIR = "repo-gnupg"
REPO_KEYRING = "ewindow-archive-keyring.gpg"


def deployment_dir(cfg: Config) -> Path | None:
    """The deployment's secrets folder (where the secrets file is), if the config names one."""
    return (cfg.base_dir / cfg.secrets_file).expanduser().parent if cfg.secrets_file else None


def updates_keyring(cfg: Config) -> Path | None:
    """The public key of the deployment's repository that images trust."""
    if cfg.updates.key:
        return (cfg.base_dir / cfg.updates.key).expanduser()
    folder = deployment_dir(cfg)
    return folder / REPO_KEYRING if folder else None
