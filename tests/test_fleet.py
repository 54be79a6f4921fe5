# SPDX-License-Identifier: MIT
"""A deployment's secrets (network init, secrets_file) and the fleet registry (hosts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from firstboot.files import public_identity
from firstboot.identity import derive
from hardware.metrics import exposition

from .conftest import requires_root
from .keys import rsa_public_key_block

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "build.py"), *args], capture_output=True,
                          text=True, check=False)


def test_network_init_makes_private_secrets_once(tmp_path: Path) -> None:
    folder = tmp_path / "ewindow-network"
    result = cli("network", "init", str(folder))
    assert result.returncode == 0, result.stderr
    secrets = folder / "secrets.yaml"
    assert folder.stat().st_mode & 0o777 == 0o700 and secrets.stat().st_mode & 0o777 == 0o600
    psk = yaml.safe_load(secrets.read_text())["vpn"]["psk"]
    assert len(psk) == 64 and f"secrets_file: {secrets}" in result.stdout
    prefix = result.stdout.split('prefix: "')[1].split('"')[0]
    assert prefix.startswith("fd") and prefix.endswith("::/64") and prefix != "fde1:c0fe::/64"

    again = cli("network", "init", str(folder))
    assert again.returncode == 2 and "exists already; it is never overwritten" in again.stderr
    assert yaml.safe_load(secrets.read_text())["vpn"]["psk"] == psk

    inside = cli("network", "init", str(REPO / "my-secrets"))
    assert inside.returncode == 2 and "inside the git checkout" in inside.stderr
    assert not (REPO / "my-secrets").exists()


def test_secrets_file_is_merged_redacted_and_checked(tmp_path: Path) -> None:
    assert cli("network", "init", str(tmp_path / "net")).returncode == 0
    psk = yaml.safe_load((tmp_path / "net/secrets.yaml").read_text())["vpn"]["psk"]
    site = tmp_path / "site.yaml"
    site.write_text("secrets_file: net/secrets.yaml\n")
    shown = cli("config", "-c", str(site))
    assert shown.returncode == 0, shown.stderr
    assert "psk: <secret>" in shown.stdout and psk not in shown.stdout

    (tmp_path / "net/secrets.yaml").chmod(0o644)
    loose = cli("config", "-c", str(site))
    assert loose.returncode == 2
    assert loose.stderr.splitlines()[0] == (f"error: {tmp_path / 'net/secrets.yaml'}: (file): readable by "
                                            f"others (mode 0644); chmod 600 {tmp_path / 'net/secrets.yaml'}")


def test_site_values_are_checked_with_file_and_field(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("wifi:\n  country: DE\n  networks:\n    - {ssid: lab, psk: short}\n")
    result = cli("config", "-c", str(site))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {site}: wifi.networks[0].psk: 8 to 63 printable ASCII "
                                          "characters (\"\" for an open network)"]
    site.write_text("identity:\n  hostname_template: 'window-{room}'\n")
    assert "identity.hostname_template: 'window-{room}': only {mac6} and {serial}" in cli(
        "config", "-c", str(site)).stderr


def test_hosts_from_identity_files_and_an_inventory(tmp_path: Path) -> None:
    card = tmp_path / "card-1.json"
    key = rsa_public_key_block("window")
    window = derive("", "b8:27:eb:27:35:ed")  # what firstboot publishes, as it writes it
    card.write_text(public_identity(window, window.hostname, {"ed25519": "SHA256:x"},
                                    {"tinc_name": "ewindow_2735ed", "tinc_public_key": key}))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("- {serial: '00000000b83c3c1b'}\n- {mac: 'dc:a6:32:01:02:03', hostname: lab}\n"
                         "- {mac: 'b8:27:eb:27:35:ed'}\n")  # the same window as card-1
    hosts = cli("hosts", str(card), str(inventory))
    assert hosts.returncode == 0, hosts.stderr
    assert hosts.stdout.splitlines() == [
        "fde1:c0fe::b827:eb27:35ed\tewindow-2735ed.ewindow.org ewindow-2735ed",
        "fde1:c0fe::b827:eb3c:3c1b\tewindow-3c3c1b.ewindow.org ewindow-3c3c1b",
        "fde1:c0fe::dca6:3201:203\tlab.ewindow.org lab",
    ]
    tinc_dir = tmp_path / "hub-hosts"
    assert cli("hosts", str(card), "--tinc-hosts", str(tinc_dir)).returncode == 0
    assert [p.name for p in tinc_dir.iterdir()] == ["ewindow_2735ed"]
    assert (tinc_dir / "ewindow_2735ed").read_text().endswith("Port = 655\n\n" + key + "\n")
    zone = cli("hosts", "--format", "zone", str(inventory), "--set", "identity.domain=windows.example")
    assert "lab.windows.example.\tIN\tAAAA\tfde1:c0fe::dca6:3201:203" in zone.stdout.splitlines()

    clash = tmp_path / "clash.yaml"
    clash.write_text("- {mac: 'dc:a6:32:0a:0b:0c', hostname: lab}\n")
    result = cli("hosts", str(inventory), str(clash))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {clash}[0]: lab is also lab fde1:c0fe::dca6:3201:203 "
                                          f"in {inventory}[1]"]


def test_prometheus_targets_and_an_ansible_inventory_that_the_tools_read(tmp_path: Path) -> None:
    """file_sd through promtool (it checks the SD files a config names), the inventory through
    ansible-inventory; every window reached at its VPN address."""
    card = tmp_path / "card-1.json"
    window = derive("", "b8:27:eb:27:35:ed")
    card.write_text(public_identity(window, window.hostname, {"ed25519": "SHA256:x"},
                                    {"cjdns_address": "fc12:3456:789a::1"}))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("- {mac: 'dc:a6:32:01:02:03', hostname: lab}\n")
    both = ["--set", "vpn.backends=[peervpn, cjdns]"]

    targets = cli("hosts", "--format", "prometheus", str(card), str(inventory), *both)
    assert targets.returncode == 0, targets.stderr
    sd = tmp_path / "ewindow.json"
    sd.write_text(targets.stdout)
    config = tmp_path / "prometheus.yml"
    config.write_text("scrape_configs:\n  - job_name: ewindow\n    file_sd_configs:\n"
                      f"      - files: [{sd}]\n")
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    groups = json.loads(targets.stdout)
    assert {g["labels"]["window"]: g["targets"] for g in groups} == {
        "ewindow-2735ed": ["[fde1:c0fe::b827:eb27:35ed]:9100"], "lab": ["[fde1:c0fe::dca6:3201:203]:9100"]}
    # cjdns only: the address the window published (the inventory's window published none)
    cjdns_only = json.loads(cli("hosts", "--format", "prometheus", str(card),
                                "--set", "vpn.backends=[cjdns]").stdout)
    assert cjdns_only[0]["targets"] == ["[fc12:3456:789a::1]:9100"]

    ansible = cli("hosts", "--format", "ansible", str(card), str(inventory), *both,
                  "--set", "admin.user=ops")
    assert ansible.returncode == 0, ansible.stderr
    path = tmp_path / "inventory-ansible.yaml"
    path.write_text(ansible.stdout)
    tool = Path(sys.executable).with_name("ansible-inventory")
    listed = subprocess.run([str(tool), "-i", str(path), "--list"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert listed.returncode == 0 and "[WARNING]" not in listed.stderr, listed.stderr
    parsed = json.loads(listed.stdout)
    assert sorted(parsed["ewindow"]["hosts"]) == ["ewindow-2735ed", "lab"]
    assert sorted(parsed["peervpn"]["hosts"]) == ["ewindow-2735ed", "lab"]
    assert parsed["cjdns"]["hosts"] == ["ewindow-2735ed"]  # the one that published a cjdns address
    lab = parsed["_meta"]["hostvars"]["lab"]
    assert lab["ansible_host"] == "fde1:c0fe::dca6:3201:203" and lab["ansible_user"] == "ops"


@pytest.fixture
def window_netns(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A network namespace holding one window's ULA on a link (a veth pair: this kernel has
    no dummy module), where a real node exporter serves the agent's metrics file on port 9100."""
    netns = f"ew-fleet-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    exporter = None
    try:
        for argv in (["ip", "link", "set", "lo", "up"],
                     ["ip", "link", "add", "v0", "type", "veth", "peer", "v1"],
                     ["ip", "link", "set", "v0", "up"], ["ip", "link", "set", "v1", "up"],
                     ["ip", "-6", "addr", "add", "fde1:c0fe::dca6:3201:203/64", "dev", "v0", "nodad"]):
            subprocess.run(["ip", "netns", "exec", netns, *argv], check=True)
        textfiles = tmp_path / "metrics"
        textfiles.mkdir()
        exporter = subprocess.Popen(
            ["ip", "netns", "exec", netns, "prometheus-node-exporter", "--collector.disable-defaults",
             "--collector.textfile", f"--collector.textfile.directory={textfiles}",
             "--web.listen-address=[fde1:c0fe::dca6:3201:203]:9100"], stderr=subprocess.DEVNULL)
        time.sleep(1)
        yield netns, textfiles
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait()
        subprocess.run(["ip", "netns", "del", netns], check=False)


@requires_root
def test_fleet_status_scrapes_each_window_over_its_vpn_address(tmp_path: Path,
                                                                window_netns: tuple[str, Path]) -> None:
    netns, textfiles = window_netns
    text = exposition("vpn-up", "done", {"peervpn": 2, "cjdns": None}, {"peervpn": 1}, False,
                      {"ewindow-agent": "0.1.0+13.gabc"}, {"finished": 1764645660, "result": "failed"})
    (textfiles / "ewindow_agent.prom").write_text(text)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("- {mac: 'dc:a6:32:01:02:03', hostname: lab}\n- {mac: 'dc:a6:32:0a:0b:0c'}\n")
    result = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(REPO / "build.py"), "fleet",
                             "status", str(inventory), "--set", "vpn.backends=[peervpn, cjdns]",
                             "--timeout", "2"], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr  # one window is not reachable
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in result.stdout.splitlines() if line.count("│") == 8}
    assert rows["lab"] == ["fde1:c0fe::dca6:3201:203", "yes", "vpn-up", "cjdns ?, peervpn 2",
                           "0.1.0+13.gabc", "failed 2025-12-02 03:21 UTC"], result.stdout
    assert rows["ewindow-0a0b0c"][1].startswith("no: "), result.stdout
