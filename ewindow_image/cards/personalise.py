# SPDX-License-Identifier: MIT
"""Per-card settings: ``ewindow/deployment.json`` on an image's or a card's FAT partition.

Written with mtools at the partition's offset, so nothing is mounted and an image file and a
block device are handled alike. The file is copied under a temporary name and renamed, so a
card pulled out half-way holds the old file or none, never half of one. Firstboot moves it
to /etc (mode 0600) and deletes it from the card.

The settings are checked first as the card's own firstboot will check them, against the VPN
settings the image was built with (read from its root file system with debugfs, also without
mounting): a card naming a VPN the image lacks is refused here, not at the window.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstboot import checks
from firstboot.settings import (
    MAX_FILE_BYTES,
    SETTINGS_FILE,
    SettingsError,
    parse_deployment,
    parse_json,
)

from ..config import Config
from ..errors import CommandError, ConfigError, EWindowError
from ..imagefiles import check_whole, mtools_drive
from ..runner import run

log = logging.getLogger("ewindow")

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
        return mtools_drive(self.target, self.offset)


def deployment(cfg: Config, hostname: str = "", image_vpn: dict[str, Any] | None = None) -> dict[str, Any]:
    """What one card gets: the site's keys, Wi-Fi and VPN settings, secrets included; checked
    against ``image_vpn``, the image's own VPN settings, when they are known."""
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
    _check_as_the_window_will(cfg, data, image_vpn or {})
    return data


def _check_as_the_window_will(cfg: Config, data: dict[str, Any], image_vpn: dict[str, Any]) -> None:
    """Firstboot's own parser over the card's file, so a card the window would refuse is
    never written. Its message names the deployment key; the error names the layer that
    set it (or the one that should have)."""
    try:
        parse_deployment(json.loads(json.dumps(data)), "deployment", image_vpn=image_vpn)
    except SettingsError as exc:
        key, _, message = str(exc).removeprefix("deployment: ").partition(": ")
        raise ConfigError(cfg.blame(key), key, message) from None


def partition_starts(target: Path) -> tuple[Path, list[int]]:
    """The tool-safe path of ``target`` (checked whole: :mod:`..imagefiles`) and the byte offsets of
    its partitions, in table order."""
    safe, found = check_whole(target, devices=True)
    return safe, [part.start for part in found]


def boot_partition(target: Path) -> FatPartition:
    """The first partition of ``target``, which must be FAT and hold a Pi's cmdline.txt."""
    safe, starts = partition_starts(target)
    part = FatPartition(safe, starts[0])
    names = mdir(part, "::/")
    if "::/cmdline.txt" not in names:
        raise EWindowError(f"{target}: the first partition has no cmdline.txt; not an EWindow image")
    return part


def dump_root_file_argv(target: Path, offset: int, path: str, local: Path) -> list[str]:
    """debugfs (read-only unless -w) copying one file of the ext4 file system at ``offset`` to
    ``local``; the ``?offset=`` suffix is e2fsprogs' unix I/O option, so nothing is mounted.
    A copy, not ``cat``: the file's bytes are the image's, not necessarily UTF-8 text."""
    return ["debugfs", "-R", f"dump {path} {os.fspath(local)}", f"{os.fspath(target)}?offset={offset}"]


def image_vpn_settings(target: Path) -> dict[str, Any] | None:
    """The ``vpn`` section of the image's /etc/ewindow/firstboot.json, or None when its root
    file system cannot be read (then the card is checked as before, without it)."""
    safe, starts = partition_starts(target)
    if len(starts) < 2:
        log.warning("warning: %s: no readable root partition; the VPN backends it carries were not checked",
                    target)
        return None
    settings = None
    with tempfile.TemporaryDirectory(prefix="ewindow-settings-") as tmp:
        local = Path(tmp) / "firstboot.json"
        try:
            run(dump_root_file_argv(safe, starts[1], f"/{SETTINGS_FILE}", local), capture=True)
            # a folder, a device or nothing at that path leaves no regular file here
            if local.is_file() and not local.is_symlink():
                with local.open("rb") as stream:
                    raw = stream.read(MAX_FILE_BYTES + 1)
                settings = parse_json(raw, f"{target}: /{SETTINGS_FILE}")
        except (CommandError, SettingsError):
            settings = None
    if not isinstance(settings, dict) or not isinstance(settings.get("vpn"), dict):
        log.warning("warning: %s: /%s not readable; the VPN backends it carries were not checked",
                    target, SETTINGS_FILE)
        return None
    vpn: dict[str, Any] = settings["vpn"]
    return vpn


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
