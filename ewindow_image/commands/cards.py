# SPDX-License-Identifier: MIT
"""One card's commands: personalise (an image or a card), flash (write, then personalise)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import EWindowError
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


def cmd_personalise(args: argparse.Namespace) -> int:
    from .. import hostdeps
    from ..cards.personalise import deployment, image_vpn_settings, personalise

    cfg = load(args)
    hostdeps.require_tools(hostdeps.PERSONALISE_TOOLS)
    if not args.target.exists():
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
    data = deployment(cfg, args.hostname, image_vpn_settings(image) if image.is_file() else None)
    for warning in flash(image, args.device, force=args.force):
        log.warning("warning: --force: %s", warning)
    personalise(args.device, data)
    log.info("%s is ready: put it into the window. At first boot it writes its identity to "
             "ewindow/identity.json on the boot partition (build.py hosts reads it).", args.device)
    return 0
