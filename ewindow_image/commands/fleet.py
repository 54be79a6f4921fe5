# SPDX-License-Identifier: MIT
"""The fleet's commands: identity (one window's, from its MAC or serial), hosts (the fleet's
names and addresses from the cards), network init (a deployment's secrets), repo (its signed
apt repository)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import hostdeps
from ..errors import ConfigError, EWindowError
from ..log import log
from .common import REPO_ROOT, cache_option, command, config_options, debug_option, load, stage_cache


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

    hosts = command(sub, "hosts", "print the fleet as hosts lines, a DNS zone, Prometheus targets or an "
                    "Ansible inventory",
                    "Reads the ewindow/identity.json files windows write to their cards, or inventory\n"
                    "YAML files of MACs/serials, checks every field, and prints the fleet: /etc/hosts\n"
                    "lines, AAAA records, a Prometheus file_sd file (each window's metrics on its VPN\n"
                    "address) or an Ansible YAML inventory (a group per VPN backend).\n"
                    "With --tinc-hosts, also writes each window's tinc hosts/ file into DIR.", cmd_hosts)
    config_options(hosts)
    hosts.add_argument("inputs", type=Path, nargs="+",
                       help="identity.json files from the cards, or inventory YAML files of MACs/serials")
    hosts.add_argument("--format", choices=["hosts", "zone", "prometheus", "ansible"], default="hosts",
                       help="hosts: /etc/hosts lines; zone: AAAA records; prometheus: file_sd JSON; "
                            "ansible: inventory YAML (default hosts)")
    hosts.add_argument("--tinc-hosts", type=Path, metavar="DIR",
                       help="also write each window's tinc hosts/ file into DIR (for the hubs)")

    network = command(sub, "network", "make a new deployment's secrets: network init DIR",
                      "Writes DIR/secrets.yaml (mode 0600) with a new PeerVPN key, and suggests a random\n"
                      "ULA prefix; and the key that signs the deployment's apt repository (build.py\n"
                      "repo): DIR/repo-gnupg/ (private) and DIR/ewindow-archive-keyring.gpg (public).\n"
                      "A new DIR is made 0700; an existing one must be private to you. Never overwrites\n"
                      "anything: for an older DIR with secrets.yaml, it adds only the repository key.",
                      cmd_network)
    network.add_argument("action", choices=["init"],
                         help="init: make DIR/secrets.yaml and the repository key")
    network.add_argument("directory", type=Path,
                         help="a folder outside the checkout, e.g. ~/ewindow-network")
    debug_option(network)


    repo = command(sub, "repo", "publish the deployment's signed apt repository",
                   "Builds the window's own packages (ewindow-firstboot, ewindow-agent) from this\n"
                   "checkout and PeerVPN and cjdns from source for arm64 (the image's release) and for\n"
                   "the hub (--hub-arch, --hub-suite), and publishes them with reprepro into DIR,\n"
                   "signed with the deployment's key (network init; the site file's secrets_file\n"
                   "says where). Serve DIR with any web server and set updates.repo to its URL.",
                   cmd_repo, isolated=True)
    config_options(repo)
    repo.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "repo", metavar="DIR",
                      help="the repository folder (default out/repo); later runs add to it")
    repo.add_argument("--hub-arch", choices=["amd64", "arm64"], default=None,
                      help="the hub's architecture (default: this machine's)")
    repo.add_argument("--hub-suite", default=None, help="the hub's Debian release (default: this machine's)")
    repo.add_argument("--allow-dirty", action="store_true",
                      help="publish packages built from uncommitted changes (for tests)")
    cache_option(repo)


    fleet = command(sub, "fleet", "fleet status: one table of every window, scraped over the VPN",
                    "Reads the fleet like hosts does (identity.json files, inventories), fetches each\n"
                    "window's metrics from its node exporter on its VPN address, and prints name,\n"
                    "reachable, LED state, VPN peers, agent version and the last upgrade run. Run it\n"
                    "where the VPN reaches the windows (the hub). Exit 1 when a window is unreachable.",
                    cmd_fleet)
    config_options(fleet)
    fleet.add_argument("action", choices=["status"], help="status: the table")
    fleet.add_argument("inputs", type=Path, nargs="+",
                       help="identity.json files from the cards, or inventory YAML files of MACs/serials")
    fleet.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each window")


def cmd_fleet(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..fleet.registry import collect
    from ..fleet.status import statuses

    cfg = load(args)
    if not 0 < args.timeout <= 120:
        raise ConfigError("fleet status", "--timeout", f"{args.timeout:g} is not 0–120 seconds")
    hosts = collect(list(args.inputs), cfg.identity)
    rows = statuses(hosts, [b.value for b in cfg.vpn.backends], args.timeout)
    table = Table(title=f"{len(rows)} windows", title_justify="left")
    for column in ("window", "address", "reachable", "LED", "VPN peers", "agent", "last upgrade"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.address, row.reachable, row.led, row.peers, row.version,
                      row.last_upgrade)
    Console(width=200).print(table)
    return 0 if all(row.reachable == "yes" for row in rows) else 1


def cmd_repo(args: argparse.Namespace) -> int:
    from ..config import deployment_dir
    from ..fleet import repokey
    from ..packages import repository
    from ..packages.checkout import CheckoutPackages
    from ..packages.service import SourcePackages
    from ..packages.toolchain import Target, host_arch, host_suite

    hostdeps.require_tools(hostdeps.REPOSITORY_TOOLS)
    cfg = load(args)
    folder = deployment_dir(cfg)
    if folder is None or not repokey.exists(folder):
        raise ConfigError("secrets_file", "", "no deployment repository key beside it"
                          + (f" ({folder})" if folder else " (secrets_file is not set)")
                          + ": run build.py network init on the secrets folder")
    hub_arch = args.hub_arch or host_arch()
    try:
        hub_suite = args.hub_suite or (host_suite() if hub_arch == host_arch() else cfg.suite.value)
        targets = {Target(cfg.arch, cfg.suite.value), Target(hub_arch, hub_suite)}
    except EWindowError as exc:
        raise ConfigError("--hub-arch/--hub-suite", "", str(exc)) from None
    cache = stage_cache(args).root
    sources = SourcePackages(cfg, REPO_ROOT / "packages", cache)
    checkout = CheckoutPackages(REPO_ROOT, REPO_ROOT / "packages", cache)
    common = [checkout.ensure(p) for p in checkout.plan(sorted(checkout.packages))]
    if not args.allow_dirty:
        repository.refuse_dirty(common)
    built = {(t.suite, t.arch): [sources.ensure(p) for p in sources.plan(sorted(sources.recipes), t)]
             for t in sorted(targets, key=lambda t: t.label)}
    distributions = repository.merge(built, common)
    home, _ = repokey.paths(folder)
    with repokey.gnupg_home(home) as alias:
        repository.publish(args.out, alias, repokey.fingerprint(alias), distributions)
    for distribution in distributions:
        print(f"{distribution.codename} ({', '.join(distribution.architectures)}): "
              + ", ".join(deb.name for deb in distribution.debs))
    print(f"published {args.out}; serve it and set in the site file:\n  updates:\n    repo: http://HOST/PATH")
    return 0


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
    from ..fleet import repokey
    from ..fleet.network import SECRETS_NAME, check_folder, init

    hostdeps.require_tools(hostdeps.KEY_TOOLS)
    directory = args.directory.expanduser().absolute()
    if (directory / SECRETS_NAME).is_file() and not repokey.exists(directory):
        check_folder(directory)  # an older deployment: only the repository key is new
    else:
        path, found = init(directory)
        print(f"created {path} (mode 0600). Add to your site.yaml:\n  secrets_file: {path}\n"
              f"A new deployment may also use its own random ULA prefix (RFC 4193):\n"
              f"  identity:\n    prefix: \"{found.prefix}\"")
    keyring, fingerprint = repokey.make(directory)
    print(f"created the apt repository key {fingerprint} (private in {keyring.parent / 'repo-gnupg'}); "
          f"images built with updates.repo trust {keyring}")
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    from ..fleet import exports
    from ..fleet.registry import collect, hosts_lines, tinc_host_files, write_files, zone_lines

    cfg = load(args)
    hosts = collect(list(args.inputs), cfg.identity)  # every card's file checked before any write
    backends = [b.value for b in cfg.vpn.backends]
    if args.format == "prometheus":
        lines = [exports.file_sd(hosts, backends, cfg.identity.domain).rstrip("\n")]
    elif args.format == "ansible":
        lines = [exports.ansible_inventory(hosts, backends, cfg.admin.user).rstrip("\n")]
    else:
        lines = (hosts_lines if args.format == "hosts" else zone_lines)(hosts, cfg.identity.domain)
    if args.tinc_hosts:
        written = write_files(args.tinc_hosts, tinc_host_files(hosts, cfg.vpn.tinc.port))
        log.info("wrote %d tinc host files into %s: %s", len(written), args.tinc_hosts,
                 " ".join(p.name for p in written) or "(no window published a tinc key)")
    for line in lines:
        print(line)
    return 0
