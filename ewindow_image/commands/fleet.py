# SPDX-License-Identifier: MIT
"""The fleet's commands: identity (one window's, from its MAC or serial), hosts (the fleet's
names and addresses from the cards), network init (a deployment's secrets)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..log import log
from .common import command, config_options, debug_option, load


def add_commands(sub: Any) -> None:
    ident = command(sub, "identity", "print a window's identity from its MAC or serial, as JSON",
                    "The host name, tap0 MAC, ULA and link-local address firstboot derives on the\n"
                    "window. Changes nothing.", cmd_identity)
    source = ident.add_mutually_exclusive_group(required=True)
    source.add_argument("--mac", help="the window's base MAC (its on-board Ethernet)")
    source.add_argument("--serial", help="the Pi's serial number (Pi 1–3 MAC rule)")
    ident.add_argument("--prefix", default=None, help="the /64 for the ULA (default fde1:c0fe::/64)")
    ident.add_argument("--allow-global-prefix", action="store_true",
                       help="accept a --prefix outside fc00::/7 (identity.allow_global_prefix)")
    debug_option(ident)

    hosts = command(sub, "hosts", "print hosts file or DNS zone lines for the fleet",
                    "Reads the ewindow/identity.json files windows write to their cards, or inventory\n"
                    "YAML files of MACs/serials, checks every field, and prints one line per window.\n"
                    "With --tinc-hosts, also writes each window's tinc hosts/ file into DIR.", cmd_hosts)
    config_options(hosts)
    hosts.add_argument("inputs", type=Path, nargs="+",
                       help="identity.json files from the cards, or inventory YAML files of MACs/serials")
    hosts.add_argument("--format", choices=["hosts", "zone"], default="hosts",
                       help="hosts: /etc/hosts lines; zone: AAAA records (default hosts)")
    hosts.add_argument("--tinc-hosts", type=Path, metavar="DIR",
                       help="also write each window's tinc hosts/ file into DIR (for the hubs)")

    network = command(sub, "network", "make a new deployment's secrets: network init DIR",
                      "Writes DIR/secrets.yaml (mode 0600) with a new PeerVPN key, and suggests a random\n"
                      "ULA prefix. A new DIR is made 0700; an existing one must be private to you.\n"
                      "Never overwrites an existing secrets.yaml.", cmd_network)
    network.add_argument("action", choices=["init"], help="init: make DIR/secrets.yaml")
    network.add_argument("directory", type=Path,
                         help="a folder outside the checkout, e.g. ~/ewindow-network")
    debug_option(network)


def cmd_identity(args: argparse.Namespace) -> int:
    from firstboot import checks
    from firstboot.identity import DEFAULT_PREFIX, IdentityError, derive, mac_from_serial, normalise_serial

    prefix = args.prefix or DEFAULT_PREFIX
    try:
        checks.identity_prefix(prefix, allow_global=args.allow_global_prefix)
    except checks.InvalidValue as exc:
        raise ConfigError("--prefix", "", str(exc)) from None
    try:
        if args.mac is not None:
            identity = derive("", args.mac, prefix=prefix)
        else:
            serial = normalise_serial(args.serial)
            identity = derive(serial, mac_from_serial(serial), prefix=prefix)
    except IdentityError as exc:
        raise ConfigError("--mac" if args.mac is not None else "--serial", "", str(exc)) from None
    print(identity.to_json())
    return 0


def cmd_network(args: argparse.Namespace) -> int:
    from ..fleet.network import init

    path, found = init(args.directory)
    print(f"created {path} (mode 0600). Add to your site.yaml:\n  secrets_file: {path}\n"
          f"A new deployment may also use its own random ULA prefix (RFC 4193):\n"
          f"  identity:\n    prefix: \"{found.prefix}\"")
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    from ..fleet.registry import collect, hosts_lines, tinc_host_files, write_files, zone_lines

    cfg = load(args)
    hosts = collect(list(args.inputs), cfg.identity)  # every card's file checked before any write
    lines = (hosts_lines if args.format == "hosts" else zone_lines)(hosts, cfg.identity.domain)
    if args.tinc_hosts:
        written = write_files(args.tinc_hosts, tinc_host_files(hosts, cfg.vpn.tinc.port))
        log.info("wrote %d tinc host files into %s: %s", len(written), args.tinc_hosts,
                 " ".join(p.name for p in written) or "(no window published a tinc key)")
    for line in lines:
        print(line)
    return 0
