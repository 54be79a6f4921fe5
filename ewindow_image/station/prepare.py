# SPDX-License-Identifier: MIT
"""Everything the station checks before it watches for cards: the image and its bmap, every
inventory entry's card settings (as the window will check them), where the station log
goes and the names it has already handed out. A mistake here stops the station before any
card is touched."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cards.personalise import deployment, image_vpn_settings
from ..config import Config, ConfigLayers
from ..errors import ConfigError, EWindowError
from ..image.artifacts import sha256_file
from ..imagefiles import check_whole, tool_path
from .inventory import Names, Window, load_entries, windows
from .record import LOG_NAME, StationLog
from .writing import Image


def image_of(path: Path) -> Image:
    bmap = path.with_name(path.name + ".bmap")
    if not os.path.lexists(path) or not bmap.is_file():
        raise EWindowError(f"{path} or its .bmap is missing", hint="build it first: make image")
    safe, _ = check_whole(path, devices=False)  # its table, and its size against the .bmap's
    try:
        root = ElementTree.fromstring(bmap.read_bytes())
        block = int((root.findtext("BlockSize") or "").strip())
        mapped = int((root.findtext("MappedBlocksCount") or "").strip()) * block
    except (ElementTree.ParseError, ValueError) as exc:
        raise ConfigError(str(bmap), "(file)", f"not a bmap file ({str(exc)[:80]})") from None
    size = safe.stat().st_size
    return Image(safe, tool_path(bmap), size, mapped, sha256_file(safe))


def station_log(cfg: Config, inventory: Path | None, given: Path | None) -> StationLog:
    """``--log``, or station-log.jsonl in the deployment's folder: the secrets file's (from
    ``build.py network init``), else the inventory's, else the current folder."""
    if given is not None:
        return StationLog(given)
    if cfg.secrets_file:
        folder = (cfg.base_dir / cfg.secrets_file).expanduser().parent
    elif inventory is not None:
        folder = inventory.parent
    else:
        folder = Path.cwd()
    return StationLog(folder / LOG_NAME)


def inventory_windows(layers: ConfigLayers, inventory: Path | None) -> dict[str, Window] | None:
    """Each inventory entry's whole config, checked now (None: no inventory)."""
    if inventory is None:
        return None
    entries = load_entries(inventory)
    if not entries:
        raise ConfigError(str(inventory), "(top level)", "no names: list at least one")
    return windows(layers, entries, inventory)


def names_and_deployments(cfg: Config, image: Path, found: dict[str, Window] | None,
                          record: StationLog) -> tuple[Names | None, Callable[[str], dict[str, Any]]]:
    """The free names (None: no inventory, firstboot names each window from its MAC), and
    each name's deployment.json, all checked now against the image's VPN settings."""
    image_vpn = image_vpn_settings(image)
    if found is None:
        plain = deployment(cfg, "", image_vpn)
        return None, lambda name: plain
    cards = {name: deployment(window.config, name, image_vpn) for name, window in found.items()}
    names = Names(list(found), taken=record.names_taken() & set(cards))
    return names, cards.__getitem__
