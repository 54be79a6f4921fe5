# SPDX-License-Identifier: MIT
"""Firstboot's steps, in order. Each is idempotent and makes its changes atomically (see
fsops), so a run cut short by a power loss is completed by the next boot: no step keeps
state of its own beyond the files it writes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import checks, files
from .fsops import Root, ids
from .identity import (
    Identity,
    IdentityError,
    derive,
    dt_ethernet_mac,
    kernel_options,
    list_nics,
    read_identity,
)
from .settings import (
    DEPLOYMENT_NAME,
    DONE_FILE,
    IDENTITY_FILE,
    IMPORTED_DEPLOYMENT,
    MAX_FILE_BYTES,
    PUBLIC_IDENTITY_NAME,
    Deployment,
    ImageSettings,
    SettingsError,
    load_deployment,
    parse_deployment,
    parse_json,
)
from .vpn import ACTIVE_FILE, VpnNode, VpnSettingsError, check_complete, parse_vpn
from .vpn.apply import KeyLost
from .vpn.apply import apply as apply_vpn

log = logging.getLogger("ewindow-firstboot")
# Without a MAC in the device tree, the identity comes from a NIC, whose driver may still be
# loading (udev coldplug runs in parallel; a USB NIC takes seconds to enumerate).
NIC_WAIT_SECONDS = 20.0
NETWORK_DIR = "etc/systemd/network"
TAP_DIR = "etc/ewindow/tap"  # what ewindow-tap.service makes before networkd starts
WPA_CONF = "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"


class StepError(RuntimeError):
    pass


@dataclass
class Context:
    root: Root
    settings: ImageSettings
    deployment: Deployment = Deployment()
    identity: Identity | None = None
    vpn_public: dict[str, str] = field(default_factory=dict)
    vpn_network: str = "ewindow"  # vpn.network_name: tinc's unit is tinc@NAME.service

    @property
    def boot(self) -> str:
        return self.settings.boot_dir.strip("/")

    @property
    def hostname(self) -> str:
        assert self.identity is not None
        return self.deployment.hostname or self.identity.hostname


def run(argv: list[str], input_text: str | None = None) -> str:
    """The one place firstboot runs a program: logged, output captured, failure raised."""
    log.info("+ %s", " ".join(argv))
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, input=input_text,
                                stdin=None if input_text is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise StepError(f"{argv[0]}: not installed") from None
    if result.returncode != 0:
        raise StepError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-300:]}")
    return result.stdout


# --- commands, built separately from running them ----------------------------------------


SSH_HOST_KEY = "etc/ssh/ssh_host_ed25519_key"


def ed25519_host_key_argv(private: Path) -> list[str]:
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(private)]


def fingerprint_argv(public_key: Path) -> list[str]:
    return ["ssh-keygen", "-l", "-f", str(public_key)]


def machine_id_setup_argv(root: Path) -> list[str]:
    return ["systemd-machine-id-setup", f"--root={root}"]


# --- steps ------------------------------------------------------------------------------


def import_deployment(ctx: Context) -> None:
    """Move the card's deployment file from the FAT partition to /etc (0600)."""
    on_card = ctx.root / f"{ctx.boot}/{DEPLOYMENT_NAME}"
    if on_card.exists():
        data = parse_json(on_card.read_bytes()[:MAX_FILE_BYTES + 1], str(on_card))
        # refuse a bad file before anything changes
        parse_deployment(data, str(on_card), image_vpn=ctx.settings.vpn)
        ctx.root.write(IMPORTED_DEPLOYMENT, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)
        ctx.root.remove(f"{ctx.boot}/{DEPLOYMENT_NAME}", plain=True)
        log.info("imported the deployment settings from %s", on_card)
    imported = ctx.root / IMPORTED_DEPLOYMENT
    if imported.exists():
        ctx.deployment = load_deployment(imported)


def identity(ctx: Context) -> None:
    """Derive the identity once; afterwards it is read back, never derived again."""
    stored = ctx.root / IDENTITY_FILE
    if stored.exists():
        ctx.identity = load_identity(stored)
        return
    chosen = ctx.deployment.identity or ctx.settings.identity
    wait_for_a_nic(ctx.root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found, source = read_identity(ctx.root.path, prefix=chosen.prefix,
                                      hostname_template=chosen.hostname_template)
    for warning in caught:
        log.warning("%s", warning.message)
    log.info("identity from %s: %s", source, found)
    ctx.root.write(IDENTITY_FILE, found.to_json() + "\n")
    ctx.identity = found


def wait_for_a_nic(root: Root) -> None:
    if not root.live or "ewindow.mac" in kernel_options(root.path) or dt_ethernet_mac(root.path):
        return
    deadline = time.monotonic() + NIC_WAIT_SECONDS
    while not list_nics(root.path) and time.monotonic() < deadline:
        time.sleep(0.25)


def load_identity(path: Path) -> Identity:
    try:
        data = json.loads(path.read_text())
        stored = Identity(**data)
        # re-derive from the stored MAC: a hand-edited or damaged file must not half-apply
        prefix = str(ipaddress.IPv6Network(f"{stored.ula}/64", strict=False))
        check = derive(stored.serial, stored.base_mac, prefix=prefix, hostname_template="x")
    except (OSError, ValueError, TypeError, IdentityError) as exc:
        raise SettingsError(f"{path}: damaged ({exc}); delete it to derive the identity again") from None
    if (check.tap_mac, check.ula, check.link_local) != (stored.tap_mac, stored.ula, stored.link_local):
        raise SettingsError(f"{path}: tap_mac, ula or link_local do not follow from base_mac")
    return stored


def hostname(ctx: Context) -> None:
    name = ctx.hostname
    try:
        checks.hostname(name)
    except checks.InvalidValue as exc:
        raise SettingsError(f"host name: {exc}") from None
    ctx.root.write("etc/hostname", files.hostname_file(name))
    hosts = ctx.root / "etc/hosts"
    ctx.root.write("etc/hosts", files.hosts_file(hosts.read_text() if hosts.exists() else "", name))
    if ctx.root.live and socket.gethostname() != name:
        socket.sethostname(name)


def tap(ctx: Context) -> None:
    assert ctx.identity is not None
    name = ctx.settings.tap
    prefix = (ctx.deployment.identity or ctx.settings.identity).prefix
    prefix_len = ipaddress.IPv6Network(prefix).prefixlen
    ctx.root.write(f"{NETWORK_DIR}/10-ewindow-{name}.link", files.tap_link(ctx.identity, name))
    ctx.root.write(f"{TAP_DIR}/{name}.netdev", files.tap_netdev(ctx.identity, name))
    # where firstboot put it before ewindow-tap.service (a window personalised again)
    ctx.root.remove(f"{NETWORK_DIR}/10-ewindow-{name}.netdev")
    ctx.root.write(f"{NETWORK_DIR}/10-ewindow-{name}.network",
                   files.tap_network(ctx.identity, name, prefix_len))


def machine_id(ctx: Context) -> None:
    current = ctx.root / "etc/machine-id"
    text = current.read_text().strip() if current.exists() else ""
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return
    run(machine_id_setup_argv(ctx.root.path))
    ctx.root.count_change()


def ssh_host_keys(ctx: Context) -> None:
    """The ed25519 host key, which identity.json publishes and the admin's known_hosts use.
    The other types (RSA takes seconds on a Pi 3 and more under emulation) are made by
    ewindow-ssh-keygen.service after firstboot, off the way to the VPN (issue 21). Made in a
    scratch folder and written atomically, the public half last: it says the pair is whole."""
    if (ctx.root / f"{SSH_HOST_KEY}.pub").exists():
        return
    # made in /run (a tmpfs): a power cut must not leave a private key in a stray folder
    scratch = ctx.root / "run/ewindow"
    scratch.mkdir(mode=0o755, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="host-key-", dir=scratch) as tmp:
        made = Path(tmp) / "key"
        run(ed25519_host_key_argv(made))
        ctx.root.write(SSH_HOST_KEY, made.read_bytes(), mode=0o600)
        ctx.root.write(f"{SSH_HOST_KEY}.pub", made.with_name("key.pub").read_bytes(), mode=0o644)


def admin_keys(ctx: Context) -> None:
    added = ctx.deployment.authorized_keys
    if not added:
        return
    user = ctx.settings.admin_user
    uid, gid = ids(ctx.root, user)
    home = next(line.split(":")[5] for line in (ctx.root / "etc/passwd").read_text().splitlines()
                if line.split(":")[0] == user)
    path = f"{home}/.ssh/authorized_keys"
    current = (ctx.root / path).read_text() if (ctx.root / path).exists() else ""
    ctx.root.write(path, files.authorized_keys(current, added), mode=0o600, owner=(uid, gid))


def wifi(ctx: Context) -> None:
    if ctx.deployment.wifi.networks:
        ctx.root.write(WPA_CONF, files.wpa_supplicant_conf(ctx.deployment.wifi), mode=0o600)


def vpn(ctx: Context) -> None:
    """Per-device VPN keys, made here and never in the image, and each backend's config."""
    assert ctx.identity is not None
    try:
        settings = parse_vpn({**ctx.settings.vpn, **ctx.deployment.vpn})
        if ctx.deployment.vpn:
            # a card made for a deployment must carry what its backends need; a card nobody
            # personalised has no secrets by design: its backends stay off ("no VPN set up")
            check_complete(settings)
        node = VpnNode(ctx.identity, ctx.hostname, settings, ctx.settings.tap)
        ctx.vpn_network = settings.network_name
        ctx.vpn_public = apply_vpn(ctx.root, node, run)
    except (VpnSettingsError, KeyLost) as exc:
        raise StepError(str(exc)) from None


LAYER2 = ("tinc", "peervpn")  # the backends on tap0, which carries the ULA
METRICS_ADDRESSES = "etc/systemd/system/ewindow-metrics.socket.d/addresses.conf"
# VPN units whose start a reload must not delay: under qemu a daemon-reload kept PID 1 busy
# for 4.2 s, in firstboot's time and so before networkd and the VPN (issue 21)
RELOAD_AFTER = ("ewindow-peervpn.service", "ewindow-cjdns.service", "yggdrasil.service",
                "ewindow-agent.service")


def metrics_reload_argv(network_name: str) -> list[str]:
    """A transient unit that reloads systemd (to read the new drop-in) and restarts the
    metrics socket (it listened on the loopback only), once the VPN units have started;
    ``--no-block``: firstboot does not wait for it."""
    units = (*RELOAD_AFTER, f"tinc@{checks.network_name(network_name)}.service")
    after = [f"--property=After={unit}" for unit in units]
    return ["systemd-run", "--no-block", "--unit=ewindow-metrics-addresses", "--service-type=oneshot",
            *after, "/bin/sh", "-c",
            "systemctl daemon-reload && systemctl try-restart ewindow-metrics.socket"]


def metrics(ctx: Context) -> None:
    """The node exporter listens on this window's VPN addresses, never on the LAN: the ULA on
    tap0 when a layer-2 backend runs, cjdns' address when cjdns does; none without a VPN."""
    assert ctx.identity is not None
    try:
        active = json.loads((ctx.root / ACTIVE_FILE).read_text()).get("backends", [])
    except (OSError, ValueError, AttributeError):
        active = []
    addresses = [ctx.identity.ula] if any(b in LAYER2 for b in active) else []
    cjdns_address = ctx.vpn_public.get("cjdns_address", "")
    if "cjdns" in active and cjdns_address:
        try:
            addresses.append(str(checks.ipv6_address(cjdns_address)))
        except checks.InvalidValue as exc:
            raise StepError(f"cjdns' address: {exc}") from None
    changed = (ctx.root.write(METRICS_ADDRESSES, files.metrics_socket(addresses)) if addresses
               else ctx.root.remove(METRICS_ADDRESSES))
    if changed and ctx.root.live and (ctx.root / "run/systemd/system").is_dir():
        # systemd loaded ewindow-metrics.socket at boot, before this drop-in existed: it
        # would listen on the loopback only until the next boot (seen in the two-window test)
        try:
            run(metrics_reload_argv(ctx.vpn_network))
        except StepError as exc:  # the metrics wait for the next boot; the window works
            log.warning("metrics: %s", exc)


def host_key_fingerprints(ctx: Context) -> dict[str, str]:
    found = {}
    for pub in sorted((ctx.root / "etc/ssh").glob("ssh_host_*_key.pub")):
        fields = run(fingerprint_argv(pub)).split()
        if len(fields) >= 2:
            found[pub.name.removeprefix("ssh_host_").removesuffix("_key.pub")] = fields[1]
    return found


def publish(ctx: Context) -> None:
    """Tell the admin who this window is: ewindow/identity.json on the boot partition."""
    assert ctx.identity is not None
    text = files.public_identity(ctx.identity, ctx.hostname, host_key_fingerprints(ctx), ctx.vpn_public)
    ctx.root.write(f"{ctx.boot}/{PUBLIC_IDENTITY_NAME}", text, plain=True)


def done(ctx: Context) -> None:
    ctx.root.write(DONE_FILE, "")


STEPS: tuple[tuple[str, Callable[[Context], None]], ...] = (
    ("import-deployment", import_deployment),
    ("identity", identity),
    ("hostname", hostname),
    ("tap", tap),
    ("machine-id", machine_id),
    ("admin-keys", admin_keys),
    ("wifi", wifi),
    ("vpn", vpn),  # the VPN keys before the SSH host key: the VPN units wait for firstboot
    ("metrics", metrics),
    ("ssh-host-keys", ssh_host_keys),
    ("publish", publish),
    ("done", done),
)
