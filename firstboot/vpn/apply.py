# SPDX-License-Identifier: MIT
"""Set up each configured backend on a root: keys once, then the rendered config files."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from ..fsops import Root, fsync_dir
from . import ACTIVE_FILE, KEY_RECORD_DIR, VpnNode, cjdns, peervpn, tinc, tinc_name, underlay, yggdrasil

Run = Callable[..., str]  # run(argv, input_text=None) -> stdout; raises on failure


class KeyLost(RuntimeError):
    """A backend's key was made on this window before and is gone now."""


def _record(root: Root, backend: str, public: str) -> None:
    if not (root / f"{KEY_RECORD_DIR}/{backend}.pub").exists():
        root.write(f"{KEY_RECORD_DIR}/{backend}.pub", public.strip() + "\n")


def _refuse_new_identity(root: Root, backend: str, missing: str) -> None:
    if (root / f"{KEY_RECORD_DIR}/{backend}.pub").exists():
        raise KeyLost(f"{backend}: /{missing} is gone but this window made its key before "
                      f"(/{KEY_RECORD_DIR}/{backend}.pub); restore it from a backup, or delete "
                      "that record to become a new node")


def _gid(root: Root, group: str) -> int:
    group_file = root / "etc/group"
    for line in group_file.read_text().splitlines() if group_file.exists() else []:
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == group:
            return int(fields[2])
    return 0


def apply_tinc(root: Root, node: VpnNode, run: Run) -> dict[str, str]:
    net = tinc.net_dir(node)
    private, public = f"{net}/rsa_key.priv", f"{net}/rsa_key.pub"
    if not (root / private).exists():
        _refuse_new_identity(root, "tinc", private)
        scratch = root / f"{net}/.keygen"
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "hosts").mkdir(parents=True)
        (scratch / "tinc.conf").write_text("Name = keygen\n")
        run(tinc.keygen_argv(str(scratch)))
        key = tinc.public_key_of((scratch / "hosts/keygen").read_text())
        root.write(public, key + "\n")
        os.replace(scratch / "rsa_key.priv", root / private)  # made 0600 by tincd
        fsync_dir((root / private).parent)
        root.count_change()
        shutil.rmtree(scratch)
    key = (root / public).read_text().strip()
    _record(root, "tinc", key)
    for rel, (content, mode) in tinc.files(node, key).items():
        root.write(f"{net}/{rel}", content, mode=mode)
    return {"tinc_name": tinc_name(node.hostname), "tinc_public_key": key}


def apply_yggdrasil(root: Root, node: VpnNode, run: Run) -> dict[str, str]:
    conf_path = root / yggdrasil.CONF
    if conf_path.exists():
        try:
            base: dict[str, Any] = json.loads(conf_path.read_text())
        except ValueError as exc:
            raise KeyLost(f"yggdrasil: /{yggdrasil.CONF} is damaged ({exc}); restore it") from None
    else:
        _refuse_new_identity(root, "yggdrasil", yggdrasil.CONF)
        base = json.loads(run(yggdrasil.genconf_argv()))
    # The Debian unit runs as the yggdrasil user: the file is root's, readable by its group.
    root.write(yggdrasil.CONF, yggdrasil.render(base, node), mode=0o640, owner=(0, _gid(root, "yggdrasil")))
    key = str(base.get("PublicKey") or "") or run(yggdrasil.public_key_argv(str(conf_path))).strip()
    address = run(yggdrasil.address_argv(str(conf_path))).strip()
    _record(root, "yggdrasil", key)
    return {"yggdrasil_public_key": key, "yggdrasil_address": address}


def apply_peervpn(root: Root, node: VpnNode, run: Run) -> dict[str, str]:
    if not peervpn.active(node):
        # No PSK or no init peers on this card: no config, so its unit does not start (and
        # one left from an earlier deployment goes: PeerVPN keeps no other state).
        if (root / peervpn.CONF).exists():
            (root / peervpn.CONF).unlink()
            fsync_dir((root / peervpn.CONF).parent)
            root.count_change()
        return {}
    root.write(peervpn.CONF, peervpn.conf(node), mode=0o600)
    return {}


def apply_cjdns(root: Root, node: VpnNode, run: Run) -> dict[str, str]:
    if not cjdns.active(node):
        return {}  # nothing to connect to: no keys made, no config, the unit does not start
    conf_path = root / cjdns.CONF
    if conf_path.exists():
        base = json.loads(conf_path.read_text())
    else:
        _refuse_new_identity(root, "cjdns", cjdns.CONF)
        base = json.loads(run(cjdns.cleanconf_argv(), input_text=run(cjdns.genconf_argv())))
    root.write(cjdns.CONF, json.dumps(cjdns.configure(base, node), indent=2) + "\n", mode=0o600)
    peers = cjdns.underlay_peers(node)
    if peers:  # ewindow-cjdns-underlay.service starts only with this file
        root.write(underlay.PEERS_FILE, "".join(f"{p}\n" for p in peers), mode=0o644)
    else:
        root.remove(underlay.PEERS_FILE)
    _record(root, "cjdns", str(base.get("publicKey", "")))
    return {"cjdns_public_key": str(base.get("publicKey", "")), "cjdns_address": str(base.get("ipv6", ""))}


APPLY = {"tinc": apply_tinc, "yggdrasil": apply_yggdrasil, "peervpn": apply_peervpn, "cjdns": apply_cjdns}


def apply(root: Root, node: VpnNode, run: Run) -> dict[str, str]:
    """Every configured backend; returns what the window publishes about them. Records which
    backends have what they need to start (``active.json``): the status LED says "no VPN set
    up" when none has."""
    public: dict[str, str] = {}
    active = []
    for backend in node.settings.backends:
        public.update(APPLY[backend](root, node, run))
        check = ACTIVE_CHECK.get(backend)
        if check is None or check(node):
            active.append(backend)
    root.write(ACTIVE_FILE, json.dumps({"backends": active, "hubs": card_hubs(node)}) + "\n", mode=0o644)
    return public


def card_hubs(node: VpnNode) -> dict[str, list[str]]:
    """The hubs as each backend names them, for the agent to tell them apart from windows:
    cjdns' configured peers (a window peers with hubs; windows it finds by beacon are not
    listed), tinc's ConnectTo nodes, and the hubs' VPN addresses (``vpn.hub_addresses``: on
    tap0, a hub answers ff02::1 like a window)."""
    settings = node.settings
    return {"cjdns": [p.public_key for p in settings.cjdns_peers],
            "tinc": [tinc_name(h.name) for h in settings.tinc_hubs],
            "addresses": list(settings.hub_addresses)}


ACTIVE_CHECK: dict[str, Callable[[VpnNode], bool]] = {"peervpn": peervpn.active, "cjdns": cjdns.active}
