# SPDX-License-Identifier: MIT
"""VPN configs as firstboot renders them, keys made once, and the status probe's parsers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firstboot.fsops import Root
from firstboot.identity import derive
from firstboot.settings import SettingsError, parse_deployment
from firstboot.steps import run
from firstboot.vpn import (
    CjdnsPeer,
    TincHub,
    VpnNode,
    VpnSettings,
    VpnSettingsError,
    check_installed,
    cjdns,
    parse_vpn,
    peervpn,
    tinc,
    yggdrasil,
)
from firstboot.vpn.apply import KeyLost, apply
from hardware.vpnprobe import parse_responders, parse_yggdrasil_peers

from .keys import rsa_public_key_block
from .pitree import pi_root

REPO = Path(__file__).resolve().parent.parent
HUB_KEY = rsa_public_key_block("hub")
WINDOW = derive("", "b8:27:eb:27:35:ed")


def node(**settings: object) -> VpnNode:
    return VpnNode(WINDOW, WINDOW.hostname, VpnSettings(**settings))  # type: ignore[arg-type]


def test_tinc_switch_mode_on_tap0_connects_to_the_hubs() -> None:
    hub = TincHub("hub-1", ("203.0.113.7", "hub.example.org"), 655, HUB_KEY)
    files = tinc.files(
        node(backends=("tinc",), tinc_hubs=(hub,)),
        "-----BEGIN RSA PUBLIC KEY-----\nown\n-----END RSA PUBLIC KEY-----",
    )
    conf = files["tinc.conf"][0]
    for line in (
        "Name = ewindow_2735ed",
        "Mode = switch",
        "DeviceType = tap",
        "Interface = tap0",
        "ConnectTo = hub_1",
    ):
        assert line + "\n" in conf
    assert files["hosts/hub_1"][0].splitlines()[1:4] == [
        "Address = 203.0.113.7",
        "Address = hub.example.org",
        "Port = 655",
    ]
    assert "own" in files["hosts/ewindow_2735ed"][0]
    assert files["host-up"] == (
        '#!/bin/sh\nmkdir -p "/run/ewindow/vpn/tinc" && : > "/run/ewindow/vpn/tinc/$NODE"\n',
        0o755,
    )
    hub_conf = tinc.files(node(backends=("tinc",), role="hub", tinc_hubs=(hub,)), "k")["tinc.conf"][0]
    assert "ConnectTo" not in hub_conf


def test_peervpn_config_and_its_psk_rules() -> None:
    conf = peervpn.conf(
        node(
            backends=("peervpn",),
            psk="a-good-psk-0123",
            peervpn_initpeers=("203.0.113.7 7777", "gw.example.org 7777"),
        )
    )
    # a window takes a new UDP port at each start (no "port"): see peervpn.conf
    assert conf.splitlines()[1:] == [
        "networkname ewindow",
        "psk a-good-psk-0123",
        "enabletunneling yes",
        "interface tap0",
        "enableipv4 yes",
        "enableipv6 yes",
        "initpeers 203.0.113.7 7777 gw.example.org 7777",
    ]
    hub = peervpn.conf(node(backends=("peervpn",), psk="x" * 20, role="hub")).splitlines()
    assert "enablerelay yes" in hub and "port 7777" in hub  # where the windows' initpeers point
    for bad in ("", "has#hash", "has;semicolon", "has space"):
        with pytest.raises(VpnSettingsError, match="vpn.psk"):
            peervpn.conf(node(backends=("peervpn",), psk=bad))


def test_yggdrasil_keeps_keys_and_sets_the_site_keys() -> None:
    base = {
        "PrivateKey": "secret",
        "PublicKey": "pub",
        "Peers": ["tcp://public.example:1"],
        "MulticastInterfaces": [{"Regex": ".*", "Beacon": True, "Listen": True, "Port": 0, "Password": ""}],
        "IfName": "auto",
        "AdminListen": "unix:///var/run/yggdrasil/yggdrasil.sock",
    }
    conf = yggdrasil.configure(
        base,
        node(
            backends=("yggdrasil",),
            yggdrasil_peers=("tls://hub:443",),
            yggdrasil_multicast=("^eth0$",),
            yggdrasil_allowed_public_keys=("k1",),
        ),
    )
    assert conf["PrivateKey"] == "secret" and conf["Peers"] == ["tls://hub:443"]
    assert conf["MulticastInterfaces"] == [
        {"Regex": "^eth0$", "Beacon": True, "Listen": True, "Port": 0, "Password": ""}
    ]
    assert conf["AllowedPublicKeys"] == ["k1"] and conf["IfName"] == "ygg0"
    assert conf["NodeInfo"] == {"name": "ewindow-2735ed"} and conf["AdminListen"] == base["AdminListen"]


def real_genconf() -> dict[str, object]:
    """What the real cjdroute (built from packages/cjdns) generates, as strict JSON."""
    generated = subprocess.run(cjdns.genconf_argv(), capture_output=True, text=True, check=True).stdout
    clean = subprocess.run(cjdns.cleanconf_argv(), input=generated, capture_output=True, text=True,
                           check=True).stdout
    data = json.loads(clean)
    assert isinstance(data, dict)
    return data


@pytest.mark.slow
@pytest.mark.usefixtures("daemons_on_path")
def test_cjdns_config_from_the_real_genconf_is_closed_and_has_the_gateway_under_router() -> None:
    generated = real_genconf()
    # what genconf gives, and the configure step has to change
    udp = generated["interfaces"]["UDPInterface"]  # type: ignore[index]
    assert udp[0]["beacon"] == 2 and udp[0]["beaconDevices"] == ["all"]
    assert generated["admin"]["password"] == "NONE"  # type: ignore[index]
    assert "ipTunnel" in generated["router"] and "ipTunnel" not in generated  # type: ignore[operator]
    peers = (
        CjdnsPeer("203.0.113.7:1234", "hub.k", "pw1", "hub"),
        CjdnsPeer("[2001:db8::7]:1234", "hub.k", "pw2"),
    )
    window = node(backends=("cjdns",), cjdns_peers=peers, cjdns_gateway_key="gw.k")
    conf = cjdns.configure(generated, window)
    assert conf["interfaces"]["UDPInterface"][0]["connectTo"] == {
        "203.0.113.7:1234": {"password": "pw1", "publicKey": "hub.k", "peerName": "hub"}
    }
    assert list(conf["interfaces"]["UDPInterface"][1]["connectTo"]) == ["[2001:db8::7]:1234"]
    # closed: no UDP beacon, no ETH interface, no DNS seeds
    assert conf["interfaces"]["UDPInterface"][0]["beacon"] == 0
    assert "beaconDevices" not in conf["interfaces"]["UDPInterface"][0]
    assert "ETHInterface" not in conf["interfaces"] and "_disabled_ETHInterface" not in conf["interfaces"]
    assert "dnsSeeds" not in conf["router"]
    # the gateway model where cjdroute reads it
    assert conf["router"]["ipTunnel"] == {"allowedConnections": [], "outgoingConnections": ["gw.k"]}
    assert "ipTunnel" not in conf
    # a per-window admin password, kept when firstboot runs again; logs to the journal
    password = conf["admin"]["password"]
    assert len(password) == 32 and password != "NONE"
    assert cjdns.configure(conf, window)["admin"]["password"] == password
    assert conf["logging"] == {"logTo": "stdout"} and conf["pipe"] == "/run/ewindow/vpn/cjdroute.sock"
    # opted in: the LAN beacons, open to any cjdns node there
    opened = cjdns.configure(generated, node(backends=("cjdns",), cjdns_udp_beacon=True,
                                             cjdns_beacon_interfaces=("eth0",)))
    assert opened["interfaces"]["UDPInterface"][0]["beacon"] == 2
    assert opened["interfaces"]["ETHInterface"] == [{"bind": "eth0", "beacon": 2, "connectTo": {}}]
    gateway = cjdns.configure(
        generated,
        node(
            backends=("cjdns",),
            role="hub",
            cjdns_gateway_clients=({"public_key": "client.k", "ip4_address": "10.66.0.2", "ip4_prefix": 0},),
        ),
    )
    assert gateway["router"]["ipTunnel"]["allowedConnections"] == [
        {"publicKey": "client.k", "ip4Address": "10.66.0.2", "ip4Prefix": 0}
    ]
    assert generated["interfaces"]["UDPInterface"][0]["beacon"] == 2  # type: ignore[index]


def test_peervpn_and_cjdns_start_only_with_their_settings(tmp_path: Path) -> None:
    root = Root(pi_root(tmp_path))
    bare = VpnSettings(backends=("peervpn", "cjdns"))
    assert apply(root, VpnNode(WINDOW, WINDOW.hostname, bare), run) == {}
    assert not (root / peervpn.CONF).exists() and not (root / cjdns.CONF).exists()
    assert json.loads((root / "var/lib/ewindow/vpn/active.json").read_text())["backends"] == []
    with_psk = VpnSettings(backends=("peervpn", "cjdns"), psk="a-psk-of-the-deployment-1",
                           peervpn_initpeers=("203.0.113.7 7777",))
    apply(root, VpnNode(WINDOW, WINDOW.hostname, with_psk), run)
    assert (root / peervpn.CONF).stat().st_mode & 0o777 == 0o600
    assert json.loads((root / "var/lib/ewindow/vpn/active.json").read_text())["backends"] == ["peervpn"]
    # a card personalised again without the PSK: the old config goes, the LED says "not set up"
    apply(root, VpnNode(WINDOW, WINDOW.hostname, bare), run)
    assert not (root / peervpn.CONF).exists()
    assert json.loads((root / "var/lib/ewindow/vpn/active.json").read_text())["backends"] == []


def test_peervpn_psk_and_initpeers_within_its_parser_limits() -> None:
    peervpn.check_psk("x" * 511)
    for bad in ("x" * 512, "", "with space", "hash#", "semi;colon", "tab\t", "new\nline", "bell\x07"):
        with pytest.raises(VpnSettingsError, match="vpn.psk"):
            peervpn.check_psk(bad)
    entries = ("203.0.113.7 7777", "h" * (511 - 17 - 5) + " 7777")  # joined: 511 characters
    assert len(" ".join(entries)) == 511
    peervpn.check_initpeers(entries)
    with pytest.raises(VpnSettingsError, match="512 characters on one line; PeerVPN reads at most 511"):
        peervpn.check_initpeers(("203.0.113.7 7777", "h" * (511 - 17 - 4) + " 7777"))
    for bad in ("host", "host port", "host 70000", "host 7777 extra", "ho#st 7777"):
        with pytest.raises(VpnSettingsError, match=r"initpeers\[0\]"):
            peervpn.check_initpeers((bad,))


def test_settings_from_json_name_the_field() -> None:
    with pytest.raises(VpnSettingsError, match=r"vpn.backends: 'wireguard' is not one of"):
        parse_vpn({"backends": ["wireguard"]})
    with pytest.raises(VpnSettingsError, match=r"vpn.tinc.hubs\[0\].port: 'x' is not a port number"):
        parse_vpn({"tinc": {"hubs": [{"name": "h", "port": "x"}]}})


BACKEND_LISTS = st.lists(st.sampled_from(["tinc", "yggdrasil", "peervpn", "cjdns"]), unique=True)


@given(BACKEND_LISTS, BACKEND_LISTS)
def test_a_card_names_only_backends_its_image_has(on_card: list[str], in_image: list[str]) -> None:
    card = {"vpn": {"backends": on_card}}
    image_vpn = {"backends": in_image}
    missing = [name for name in on_card if name not in in_image]
    if missing:
        index = on_card.index(missing[0])
        with pytest.raises(SettingsError, match=rf"^card: vpn.backends\[{index}\]: '{missing[0]}' is not in "
                                                rf"this image \(built with "):
            parse_deployment(card, "card", image_vpn=image_vpn)
    else:
        assert parse_deployment(card, "card", image_vpn=image_vpn).vpn == card["vpn"]
    # without the image's settings (personalise on an image it cannot read) nothing is refused
    parse_deployment(card, "card")
    # an image that does not say what it carries, or says nonsense, is not checked
    check_installed(parse_vpn(card["vpn"]), {})
    with pytest.raises(VpnSettingsError, match="built with no VPN") if on_card else nullcontext():
        check_installed(parse_vpn(card["vpn"]), {"backends": ["wireguard", "'; rm -rf /"]})


def test_keys_are_made_once_and_a_lost_key_stops_firstboot(tmp_path: Path) -> None:
    root = Root(pi_root(tmp_path))
    settings = VpnSettings(backends=("tinc", "yggdrasil"), yggdrasil_peers=("tcp://10.0.0.1:1",))
    first = apply(root, VpnNode(WINDOW, WINDOW.hostname, settings), run)
    assert first["tinc_public_key"].startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert first["yggdrasil_address"].startswith("2")
    private = root / "etc/tinc/ewindow/rsa_key.priv"
    assert private.stat().st_mode & 0o777 == 0o600
    assert (root / "etc/yggdrasil/yggdrasil.conf").stat().st_mode & 0o777 == 0o640
    again = apply(root, VpnNode(WINDOW, WINDOW.hostname, settings), run)
    assert again == first  # same keys, same addresses
    private.unlink()
    with pytest.raises(
        KeyLost, match="tinc: /etc/tinc/ewindow/rsa_key.priv is gone but this window made its key"
    ):
        apply(root, VpnNode(WINDOW, WINDOW.hostname, settings), run)


def test_firstboot_publishes_the_vpn_keys_and_fails_loudly_without_them(tmp_path: Path) -> None:
    root = pi_root(tmp_path)
    settings_file = root / "etc/ewindow/firstboot.json"
    data = json.loads(settings_file.read_text())
    data["vpn"] = {
        "backends": ["tinc"],
        "tinc": {"hubs": [{"name": "hub", "addresses": ["203.0.113.7"], "public_key": HUB_KEY}]},
    }
    settings_file.write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "firstboot", "--root", str(root)]
    assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 0
    public = json.loads((root / "boot/firmware/ewindow/identity.json").read_text())
    assert public["vpn"]["tinc_name"] == "ewindow_010203"
    assert "ConnectTo = hub" in (root / "etc/tinc/ewindow/tinc.conf").read_text()
    (root / "etc/tinc/ewindow/rsa_key.priv").unlink()
    (root / "boot/firmware/ewindow/deployment.json").write_text("{}")  # a re-personalised card
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "rsa_key.priv is gone" in result.stderr
    assert json.loads((root / "run/ewindow/firstboot.json").read_text())["step"] == "vpn"


def test_probe_parsers_for_both_yggdrasil_versions_and_ping() -> None:
    assert (
        parse_yggdrasil_peers(json.dumps({"peers": {"200:1::": {"uptime": 3}, "200:2::": {}}})) == 2
    )  # 0.4.7
    assert parse_yggdrasil_peers(json.dumps({"peers": [{"up": True}, {"up": False}]})) == 1  # 0.5
    text = (
        "64 bytes from fe80::b827:ebff:fe00:1%tap0: icmp_seq=1 ttl=64 time=0.3 ms\n"
        "64 bytes from fe80::b827:ebff:fe00:b%tap0: icmp_seq=1 ttl=64 time=0.6 ms (DUP!)\n"
        "64 bytes from fde1:c0fe::b827:eb00:a: icmp_seq=1 ttl=64 time=0.031 ms\n"  # own link-local tentative
    )
    assert parse_responders(text) == {
        "fe80::b827:ebff:fe00:1",
        "fe80::b827:ebff:fe00:b",
        "fde1:c0fe::b827:eb00:a",
    }


def peervpn_value(conf_text: str, keyword: str) -> str:
    """What PeerVPN's config.ic reads for ``keyword``: the line's value cut at '#' or ';',
    white space trimmed, at most 511 characters (its 512-byte buffer)."""
    for line in conf_text.splitlines():
        head, _, value = line.strip().partition(" ")
        if head == keyword:
            return re.split(r"[#;]", value)[0].strip()[:511]
    raise AssertionError(f"no {keyword} line")


@given(st.text(max_size=600))
def test_an_accepted_psk_reaches_peervpn_unchanged(psk: str) -> None:
    try:
        peervpn.check_psk(psk)
    except VpnSettingsError:
        return
    conf = peervpn.conf(node(backends=("peervpn",), psk=psk, peervpn_initpeers=("203.0.113.7 7777",)))
    assert peervpn_value(conf, "psk") == psk
    assert len(conf.splitlines()) == len([line for line in conf.split("\n") if line])  # no line forged


# "HOST PORT" entries, mostly well-formed, some hosts with characters PeerVPN would cut at
initpeer = st.builds(lambda host, port: f"{host} {port}", st.text(min_size=1, max_size=40),
                     st.integers(-1, 70000))


@given(st.lists(initpeer | st.text(max_size=20), max_size=30))
def test_accepted_initpeers_reach_peervpn_unchanged(entries: list[str]) -> None:
    try:
        peervpn.check_initpeers(tuple(entries))
    except VpnSettingsError:
        return
    if not entries:
        return
    conf = peervpn.conf(node(backends=("peervpn",), psk="a-valid-psk-123", peervpn_initpeers=tuple(entries)))
    assert peervpn_value(conf, "initpeers").split() == " ".join(entries).split()


def test_a_card_nobody_personalised_boots_with_its_peervpn_off(tmp_path: Path) -> None:
    """The image names PeerVPN's init peers but can hold no key: without a deployment file
    firstboot completes and PeerVPN stays off; a card that brings a deployment without the
    key is refused before anything changes."""
    root = pi_root(tmp_path)
    settings_file = root / "etc/ewindow/firstboot.json"
    data = json.loads(settings_file.read_text())
    data["vpn"] = {"backends": ["peervpn"], "peervpn": {"initpeers": ["192.0.2.1 7777"]}}
    settings_file.write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "firstboot", "--root", str(root)]
    assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 0
    assert json.loads((root / "var/lib/ewindow/vpn/active.json").read_text())["backends"] == []
    assert not (root / "etc/peervpn/ewindow.conf").exists()
    card = pi_root(tmp_path / "second")
    card.joinpath("etc/ewindow/firstboot.json").write_text(json.dumps(data))
    card.joinpath("boot/firmware/ewindow").mkdir(parents=True)
    card.joinpath("boot/firmware/ewindow/deployment.json").write_text(json.dumps(
        {"format": 1, "vpn": {"backends": ["peervpn"], "peervpn": {"initpeers": ["192.0.2.1 7777"]}}}))
    refused = subprocess.run([sys.executable, "-m", "firstboot", "--root", str(card)], env=env,
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert "vpn.psk: PeerVPN needs the deployment's pre-shared key" in refused.stderr
