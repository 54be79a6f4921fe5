# SPDX-License-Identifier: MIT
"""The checks an admin runs by hand: boot-test (the image booted under qemu)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EWindowError
from ..log import log
from .common import command, config_options, load, out_option


def add_commands(sub: Any) -> None:
    boot = command(sub, "boot-test", "boot the image under qemu and check it came up",
                   "Boots a sparse copy of the image (the image is not changed) on qemu's\n"
                   "virt and raspi3b machines and waits for the boot report.", cmd_boot_test,
                   isolated=True)
    config_options(boot)
    boot.add_argument("image", nargs="?", type=Path, help="image (default: the built one)")
    out_option(boot)
    boot.add_argument("--machine", choices=["virt", "raspi3b", "all"], default="all",
                      help="which machine to boot (default all)")
    boot.add_argument("--timeout", type=int, default=300, help="seconds per boot")


def cmd_boot_test(args: argparse.Namespace) -> int:
    from .. import hostdeps
    from ..imagefiles import check_whole
    from ..pipeline.driver import artifact_paths
    from ..qemu import boottest

    cfg = load(args)
    if not 0 < args.timeout <= 86400:
        raise ConfigError("boot-test", "--timeout", f"{args.timeout} is not a number of seconds "
                          "(1 to 86400)")
    hostdeps.require_tools(hostdeps.BOOT_TEST_TOOLS)
    image = args.image or artifact_paths(cfg, args.out).image
    if not os.path.lexists(image):
        raise EWindowError(f"{image}: no such image", hint="build it first: make image")
    image, _ = check_whole(image, devices=False)
    machines = ["virt", "raspi3b"] if args.machine == "all" else [args.machine]
    for machine in machines:
        result = boottest.boot(image, boottest.BootSpec(machine=machine, timeout=args.timeout))
        log.info("boot test %s: passed in %.0f s (%s)", machine, result.seconds, result.report)
    return 0
