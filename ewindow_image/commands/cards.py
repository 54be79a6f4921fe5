# SPDX-License-Identifier: MIT
"""The cards' commands: personalise (an image or a card), flash (write, then personalise),
station (many cards, as they are put in)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EWindowError
from ..log import log
from .common import command, config_options, load, out_option


def add_commands(sub: Any) -> None:
    pers = command(sub, "personalise", "write one card's deployment settings into an image or card",
                   "Writes ewindow/deployment.json (SSH keys, Wi-Fi, VPN secrets) onto the FAT\n"
                   "partition of TARGET with mtools; nothing is mounted. The settings are checked with\n"
                   "the window's own parser first. Writing a card needs access to its device.",
                   cmd_personalise)
    config_options(pers)
    pers.add_argument("target", type=Path, help="an image file or an SD card (/dev/sdX)")
    pers.add_argument("--hostname", default="", help="this window's name (default: derived from its MAC)")

    flash = command(sub, "flash", "overwrite a whole SD card with the image, then personalise it",
                    "ERASES EVERYTHING ON DEVICE: writes the image with bmaptool, then the card's\n"
                    "deployment settings. Needs root. Refuses the system disk, mounted disks and\n"
                    "non-removable disks unless --force.", cmd_flash)
    config_options(flash)
    flash.add_argument("device", type=Path, help="the whole card, e.g. /dev/sdb or /dev/mmcblk0")
    flash.add_argument("--image", type=Path, default=None, help="image (default: the built one)")
    out_option(flash)
    flash.add_argument("--hostname", default="", help="this window's name (default: derived from its MAC)")
    flash.add_argument("--force", action="store_true", help="also write a non-removable or mounted disk")

    station = command(sub, "station", "a flashing station: write and personalise every card put in",
                      "Watches for SD cards put into the readers after it started (or named with\n"
                      "--device) and writes each with bmaptool, then personalises it with the next free\n"
                      "name of --inventory. Never writes a disk that was present when it started, the\n"
                      "system disk, or a non-removable disk. Unmounts what a desktop mounted of a card\n"
                      "before writing it. Every card is recorded in the station log (JSON lines).\n"
                      "Runs until Ctrl-C, or until --count cards have ended. Needs root.", cmd_station)
    config_options(station)
    station.add_argument("--inventory", type=Path, default=None, metavar="FILE",
                         help="YAML list of the windows' names, each optionally with its own wifi/vpn "
                              "settings (default: firstboot names each window from its MAC)")
    station.add_argument("--parallel", type=int, default=0, metavar="N",
                         help="cards written at once (default: one per card reader present)")
    station.add_argument("--count", type=int, default=0, metavar="N",
                         help="stop after N cards have ended, written or not (default: until Ctrl-C)")
    station.add_argument("--device", type=Path, action="append", default=[], metavar="DEV",
                         help="also write this card, already in its reader (repeatable)")
    station.add_argument("--log", type=Path, default=None, metavar="FILE",
                         help="the station log (default: station-log.jsonl beside secrets_file, "
                              "else beside --inventory, else here)")
    station.add_argument("--image", type=Path, default=None, help="image (default: the built one)")
    out_option(station)
    station.add_argument("--test-devices", action="append", default=[], metavar="GLOB",
                         help="TESTS ONLY: also write non-removable whole disks matching GLOB "
                              "(loop devices standing in for cards, e.g. '/dev/loop*')")


def cmd_personalise(args: argparse.Namespace) -> int:
    from .. import hostdeps
    from ..cards.personalise import deployment, image_vpn_settings, personalise

    cfg = load(args)
    hostdeps.require_tools(hostdeps.PERSONALISE_TOOLS)
    if not os.path.lexists(args.target):
        raise EWindowError(f"{args.target}: no such image or device")
    personalise(args.target, deployment(cfg, args.hostname, image_vpn_settings(args.target)))
    log.info("personalised %s: %d SSH keys, %d Wi-Fi networks, VPN %s%s", args.target,
             len(cfg.admin.authorized_keys), len(cfg.wifi.networks), ", ".join(cfg.vpn.backends) or "none",
             f", host name {args.hostname}" if args.hostname else "")
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from .. import hostdeps
    from ..cards.flash import flash
    from ..cards.personalise import deployment, image_vpn_settings, personalise
    from ..pipeline.driver import artifact_paths

    cfg = load(args)
    hostdeps.require_root("writing an SD card")
    hostdeps.require_tools(hostdeps.FLASH_TOOLS)
    image = args.image or artifact_paths(cfg, args.out).image
    # bad settings, or a VPN the image lacks, fail before the card is touched (a missing
    # image is flash's to report, after its checks of the device)
    data = deployment(cfg, args.hostname, image_vpn_settings(image) if os.path.lexists(image) else None)
    for warning in flash(image, args.device, force=args.force):
        log.warning("warning: --force: %s", warning)
    personalise(args.device, data)
    log.info("%s is ready: put it into the window. At first boot it writes its identity to "
             "ewindow/identity.json on the boot partition (build.py hosts reads it).", args.device)
    return 0


def cmd_station(args: argparse.Namespace) -> int:
    import pyudev

    from .. import hostdeps
    from ..config import ConfigLayers
    from ..pipeline.driver import artifact_paths
    from ..station import devices
    from ..station.display import display_for
    from ..station.loop import Settings, Station
    from ..station.prepare import image_of, inventory_windows, names_and_deployments, station_log
    from ..station.record import Result

    if not 0 <= args.parallel <= 64:
        raise ConfigError("station", "--parallel", f"{args.parallel} is outside 0..64")
    if args.count < 0:
        raise ConfigError("station", "--count", f"{args.count} is negative")
    for device in args.device:
        if not str(device).startswith("/dev/") or not device.is_block_device():
            raise ConfigError("station", "--device", f"{device}: expected a block device under /dev")
    cfg = load(args)
    found = inventory_windows(ConfigLayers(tuple(args.config), tuple(args.overrides)), args.inventory)
    hostdeps.require_root("writing SD cards")
    hostdeps.require_tools(hostdeps.FLASH_TOOLS)
    image = image_of(args.image or artifact_paths(cfg, args.out).image)
    record = station_log(cfg, args.inventory, args.log)
    names, card_settings = names_and_deployments(cfg, image.path, found, record)
    context = pyudev.Context()
    parallel = args.parallel or max(1, devices.readers(context))
    log.info("station: image %s (sha256 %s…, %d MB to write per card); log %s; %s", image.path,
             image.sha256[:12], image.mapped // 10**6, record.path,
             f"{names.free()} free names in {args.inventory}" if names else "windows named from their MACs")
    settings = Settings(image, parallel, args.count, tuple(args.device), tuple(args.test_devices),
                        card_settings)
    entries = Station(settings, names, record, display_for()).run(context)
    return 0 if all(e.result is Result.WRITTEN for e in entries) else 1
