# SPDX-License-Identifier: MIT
"""Per-card settings: ``ewindow/deployment.json`` on an image's or a card's FAT partition.

Written with mtools at the partition's offset, so nothing is mounted and an image file and a
block device are handled alike. The file is copied under a temporary name and renamed, so a
card pulled out half-way holds the old file or none, never half of one. Firstboot moves it
to /etc (mode 0600) and deletes it from the card.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstboot import checks
from firstboot.settings import SettingsError, parse_deployment

from ..config import Config
from ..errors import CommandError, ConfigError, EWindowError
from ..runner import run

CARD_DIR = "::/ewindow"
DEPLOYMENT = f"{CARD_DIR}/deployment.json"
PUBLIC_IDENTITY = f"{CARD_DIR}/identity.json"
FORMAT = 1
# mtools refuses images whose size is not a whole number of "tracks"; ours are not.
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}


@dataclass(frozen=True)
class FatPartition:
    target: Path  # an image file or a block device
    offset: int

    @property
    def spec(self) -> str:
        return f"{os.fspath(self.target)}@@{self.offset}"


def deployment(cfg: Config, hostname: str = "") -> dict[str, Any]:
    """What one card gets: the site's keys, Wi-Fi and VPN settings, secrets included."""
    if hostname:
        try:
            checks.hostname(hostname)
        except checks.InvalidValue as exc:
            raise ConfigError("--hostname", "", str(exc)) from None
    plain = cfg.as_dict(redact=False)
    data: dict[str, Any] = {
        "format": FORMAT,
        "identity": {"prefix": cfg.identity.prefix, "hostname_template": cfg.identity.hostname_template,
                     "allow_global_prefix": cfg.identity.allow_global_prefix},
        "admin": {"authorized_keys": list(cfg.admin.authorized_keys)},
        "wifi": plain["wifi"],
        "vpn": plain["vpn"],
    }
    if hostname:
        data["hostname"] = hostname
    _check_as_the_window_will(cfg, data)
    return data


def _check_as_the_window_will(cfg: Config, data: dict[str, Any]) -> None:
    """Firstboot's own parser over the card's file, so a card the window would refuse is
    never written. Its message names the deployment key; the error names the layer that
    set it (or the one that should have)."""
    try:
        parse_deployment(json.loads(json.dumps(data)), "deployment", image_vpn={})
    except SettingsError as exc:
        key, _, message = str(exc).removeprefix("deployment: ").partition(": ")
        raise ConfigError(cfg.origin(key), key, message) from None


def boot_partition(target: Path) -> FatPartition:
    """The first partition of ``target``, which must be FAT and hold a Pi's cmdline.txt."""
    try:
        table = json.loads(run(["sfdisk", "--json", os.fspath(target)], capture=True))["partitiontable"]
        first = table["partitions"][0]
        sector = int(table.get("sectorsize", 512))
    except (CommandError, KeyError, IndexError, ValueError):
        raise EWindowError(f"{target}: no partition table; is this an EWindow image or card?") from None
    part = FatPartition(target, int(first["start"]) * sector)
    names = mdir(part, "::/")
    if "::/cmdline.txt" not in names:
        raise EWindowError(f"{target}: the first partition has no cmdline.txt; not an EWindow image")
    return part


def mdir(part: FatPartition, folder: str) -> list[str]:
    try:
        return run(["mdir", "-b", "-i", part.spec, folder], capture=True, env=MTOOLS_ENV).split()
    except CommandError:
        return []


def write_card_file_argvs(part: FatPartition, local: Path, name: str, *, make_dir: bool) -> list[list[str]]:
    """mtools commands that put ``local`` on the card as ``name``: a copy under a temporary
    name, then a rename over the old file (-D o)."""
    tmp = name.removesuffix(".json") + ".tmp"
    argvs = [["mmd", "-i", part.spec, CARD_DIR]] if make_dir else []
    argvs += [["mcopy", "-o", "-i", part.spec, os.fspath(local), tmp],
              ["mren", "-D", "o", "-i", part.spec, tmp, name]]
    return argvs


def personalise(target: Path, data: dict[str, Any]) -> FatPartition:
    part = boot_partition(target)
    with tempfile.TemporaryDirectory(prefix="ewindow-personalise-") as tmp:
        local = Path(tmp) / "deployment.json"
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
        make_dir = f"{CARD_DIR}/" not in mdir(part, "::/")
        for argv in write_card_file_argvs(part, local, DEPLOYMENT, make_dir=make_dir):
            run(argv, env=MTOOLS_ENV)
    return part


def read_card_file(part: FatPartition, name: str) -> str | None:
    if name not in mdir(part, CARD_DIR):
        return None
    return run(["mtype", "-i", part.spec, name], capture=True, env=MTOOLS_ENV)
