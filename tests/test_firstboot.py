# SPDX-License-Identifier: MIT
"""Firstboot on fixture roots: what it writes, that a rerun changes nothing, that bad input
stops it cleanly, and that a power cut after any one change is completed by the next run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from firstboot.files import wpa_psk

from .keys import ed25519_line
from .pitree import BUILT_KEY, pi_root

REPO = Path(__file__).resolve().parent.parent
EXTRA_KEY = ed25519_line("deployed", "admin@site")
WIFI_PASSPHRASE = "correct horse battery staple"
SSID = 'hackspace "5G"'
VPN_PSK = "vpn-psk-5f2c9e0d7a1b"
DEPLOYMENT = {
    "format": 1,
    "admin": {"authorized_keys": [EXTRA_KEY]},
    "wifi": {"country": "DE", "networks": [{"ssid": SSID, "psk": WIFI_PASSPHRASE}]},
    "vpn": {"backends": [], "psk": VPN_PSK},
}


def firstboot(root: Path, crash_after: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("EWINDOW_FIRSTBOOT_CRASH_AFTER", None)
    if crash_after is not None:
        env["EWINDOW_FIRSTBOOT_CRASH_AFTER"] = str(crash_after)
    return subprocess.run([sys.executable, "-m", "firstboot", "--root", str(root)], env=env,
                          capture_output=True, text=True, check=False)


def personalised(tmp_path: Path, deployment: dict[str, object] = DEPLOYMENT) -> Path:
    root = pi_root(tmp_path)
    card = root / "boot/firmware/ewindow"
    card.mkdir()
    (card / "deployment.json").write_text(json.dumps(deployment))
    return root


def status(root: Path) -> dict[str, str]:
    data = json.loads((root / "run/ewindow/firstboot.json").read_text())
    assert isinstance(data, dict)
    return data


def test_firstboot_sets_up_a_pi4(tmp_path: Path) -> None:
    root = personalised(tmp_path)
    result = firstboot(root)
    assert result.returncode == 0, result.stderr
    assert status(root) == {"state": "done", "step": "", "error": ""}

    identity = json.loads((root / "var/lib/ewindow/identity.json").read_text())
    assert identity == {"serial": "10000000a1b2c3d4", "base_mac": "dc:a6:32:01:02:03",
                        "tap_mac": "de:a6:32:01:02:03", "ula": "fde1:c0fe::dca6:3201:203",
                        "link_local": "fe80::dca6:32ff:fe01:203", "hostname": "ewindow-010203"}
    assert (root / "etc/hostname").read_text() == "ewindow-010203\n"
    assert "127.0.1.1\tewindow-010203\n" in (root / "etc/hosts").read_text()
    assert "\tewindow\n" not in (root / "etc/hosts").read_text()

    netdev = (root / "etc/ewindow/tap/tap0.netdev").read_text()
    assert not (root / "etc/systemd/network/10-ewindow-tap0.netdev").exists()  # not networkd's
    network = (root / "etc/systemd/network/10-ewindow-tap0.network").read_text()
    assert "Kind=tap" in netdev and "MACAddress=de:a6:32:01:02:03" in netdev
    assert "Address=fde1:c0fe::dca6:3201:203/64" in network
    assert "IPv6LinkLocalAddressGenerationMode=eui64" in network
    link = (root / "etc/systemd/network/10-ewindow-tap0.link").read_text()
    assert "OriginalName=tap0" in link and "MACAddress=de:a6:32:01:02:03" in link

    assert len((root / "etc/machine-id").read_text().strip()) == 32
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    assert host_key.exists() and host_key.stat().st_mode & 0o777 == 0o600

    keys = root / "home/ewindow/.ssh/authorized_keys"
    assert keys.read_text().splitlines() == [BUILT_KEY,
                                             EXTRA_KEY]
    assert (keys.stat().st_mode & 0o777, keys.stat().st_uid) == (0o600, 1000)

    wpa = root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    assert wpa.stat().st_mode & 0o777 == 0o600
    assert f"ssid={SSID.encode().hex()}" in wpa.read_text()
    assert f"psk={wpa_psk(SSID, WIFI_PASSPHRASE)}" in wpa.read_text()
    assert WIFI_PASSPHRASE not in wpa.read_text() and "country=DE" in wpa.read_text()

    # the secrets left the FAT partition for a root-only file
    assert not (root / "boot/firmware/ewindow/deployment.json").exists()
    imported = root / "etc/ewindow/deployment.json"
    assert imported.stat().st_mode & 0o777 == 0o600
    assert json.loads(imported.read_text())["vpn"]["psk"] == VPN_PSK

    # the public identity went back for the admin, without any secret
    public = (root / "boot/firmware/ewindow/identity.json").read_text()
    assert json.loads(public)["ula"] == "fde1:c0fe::dca6:3201:203"
    assert json.loads(public)["ssh_host_keys"]["ed25519"].startswith("SHA256:")
    assert VPN_PSK not in public and WIFI_PASSPHRASE not in public
    assert (root / "var/lib/ewindow/firstboot.done").exists()


def tree_state(root: Path) -> dict[str, str]:
    """Every file under root (not /run) with content hash, mode and owner."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file() and not path.is_symlink() and not rel.startswith(("run/", "sys/", "proc/")):
            st = path.stat()
            state[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {st.st_mode:o} {st.st_uid}"
    return state


def test_rerun_changes_nothing_and_the_identity_survives_a_new_nic(tmp_path: Path) -> None:
    root = personalised(tmp_path)
    assert firstboot(root).returncode == 0
    before = tree_state(root)
    (root / "sys/class/net/end0/address").write_text("dc:a6:32:ff:ff:ff\n")  # board repaired
    result = firstboot(root)
    assert result.returncode == 0, result.stderr
    assert tree_state(root) == before


def test_bad_deployment_stops_with_file_and_field_and_keeps_the_card(tmp_path: Path) -> None:
    bad = {**DEPLOYMENT, "wifi": {"country": "DE", "networks": [{"ssid": "x", "psk": "short"}]}}
    root = personalised(tmp_path, bad)
    result = firstboot(root)
    assert result.returncode == 1
    on_card = root / "boot/firmware/ewindow/deployment.json"
    message = (f"{on_card}: wifi.networks[0].psk: 8 to 63 printable ASCII characters "
               "(\"\" for an open network)")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert status(root) == {"state": "failed", "step": "import-deployment", "error": message}
    assert on_card.exists() and not (root / "etc/ewindow/deployment.json").exists()
    assert not (root / "var/lib/ewindow/identity.json").exists()


def comparable(state: dict[str, str]) -> dict[str, str]:
    """Random per-run output aside (host keys, machine-id, their fingerprints)."""
    return {k: v for k, v in state.items()
            if not k.startswith("etc/ssh/ssh_host_") and k not in ("etc/machine-id",
                                                                   "boot/firmware/ewindow/identity.json")}


def test_power_loss_after_any_change_is_completed_by_the_next_boot(tmp_path: Path) -> None:
    reference = personalised(tmp_path / "reference")
    assert firstboot(reference).returncode == 0
    expected = comparable(tree_state(reference))
    crashes = 0
    for crash_after in range(1, 40):
        root = personalised(tmp_path / f"crash-{crash_after}")
        first = firstboot(root, crash_after=crash_after)
        if first.returncode == 0:
            break  # fewer changes than crash_after: every point has been tried
        assert first.returncode == -9, first.stderr
        crashes += 1
        second = firstboot(root)
        assert second.returncode == 0, f"after a crash at change {crash_after}: {second.stderr}"
        assert comparable(tree_state(root)) == expected, f"crash at change {crash_after}"
        public = json.loads((root / "boot/firmware/ewindow/identity.json").read_text())
        assert public["ula"] == "fde1:c0fe::dca6:3201:203"
        shutil.rmtree(root.parent)
    assert crashes >= 10  # import, identity, hostname, tap, keys, Wi-Fi, publish, done


def test_wpa_psk_known_answer() -> None:
    # IEEE 802.11i-2004 annex H.4 test vector, as wpa_passphrase computes it
    assert wpa_psk("IEEE", "password") == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"


def test_metrics_listen_on_the_vpn_addresses_only(tmp_path: Path) -> None:
    """ewindow-metrics.socket gets the ULA on tap0 when PeerVPN runs, nothing without a VPN."""
    addresses = "etc/systemd/system/ewindow-metrics.socket.d/addresses.conf"
    without = personalised(tmp_path / "a")
    assert firstboot(without).returncode == 0
    assert not (without / addresses).exists()
    vpn = {"backends": ["peervpn"], "psk": VPN_PSK, "peervpn": {"initpeers": ["192.0.2.1 7777"]}}
    root = personalised(tmp_path / "b", {**DEPLOYMENT, "vpn": vpn})
    image_settings = root / "etc/ewindow/firstboot.json"
    image_settings.write_text(json.dumps({**json.loads(image_settings.read_text()),
                                          "vpn": {"backends": ["peervpn"]}}))
    result = firstboot(root)
    assert result.returncode == 0, result.stderr
    text = (root / addresses).read_text()
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "[Socket]", "ListenStream=[fde1:c0fe::dca6:3201:203]:9100"]
