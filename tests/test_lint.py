# SPDX-License-Identifier: MIT
from __future__ import annotations

from pathlib import Path

from ewindow_image.pipeline.golden_lint import lint_tree


def clean_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for folder in ("etc/ssh", "etc/apt/apt.conf.d", "usr/bin", "boot/firmware", "home/ewindow/.ssh"):
        (tree / folder).mkdir(parents=True)
    (tree / "etc/machine-id").write_text("")
    (tree / "etc/ssh/sshd_config").write_text("PasswordAuthentication no\n")
    (tree / "etc/apt/apt.conf.d/70debconf").write_text('DPkg::Pre-Install-Pkgs {"x";};\n')
    (tree / "home/ewindow/.ssh/authorized_keys").write_text("ssh-ed25519 AAAAC3Nz admin\n")
    return tree


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    assert lint_tree(clean_tree(tmp_path), secrets=["correct horse battery staple"]) == []


def test_planted_host_key_and_secret_are_caught(tmp_path: Path) -> None:
    tree = clean_tree(tmp_path)
    (tree / "etc/ssh/ssh_host_ed25519_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    (tree / "etc/ssh/ssh_host_ed25519_key").chmod(0o600)
    (tree / "etc/peervpn.conf").write_text("networkname EWindow\npsk correct horse battery staple\n")
    (tree / "boot/firmware/wifi.txt").write_text("psk=correct horse battery staple\n")
    found = {str(f) for f in lint_tree(tree, secrets=["correct horse battery staple", "short"])}
    assert found == {
        "/etc/ssh/ssh_host_ed25519_key: SSH host key: made on each window at first boot",
        "/etc/peervpn.conf: contains a secret value from the site config",
        "/boot/firmware/wifi.txt: contains a secret value from the site config",
    }


def test_machine_id_qemu_proxy_and_readable_private_keys(tmp_path: Path) -> None:
    tree = clean_tree(tmp_path)
    (tree / "etc/machine-id").write_text("01be8296c23f422389eac5ca724fa23c\n")
    (tree / "usr/bin/qemu-aarch64-static").write_bytes(b"\x7fELF")
    (tree / "etc/apt/apt.conf.d/99mmdebstrap").write_text('Acquire::http::Proxy "http://cache:3142";\n')
    key = tree / "etc/tinc-rsa_key.priv"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n")
    key.chmod(0o644)
    found = {str(f) for f in lint_tree(tree)}
    assert found == {
        "/etc/machine-id: not empty: every window would share it",
        "/usr/bin/qemu-aarch64-static: qemu-user build helper",
        "/etc/apt/apt.conf.d/99mmdebstrap: apt proxy setting from the build",
        "/etc/tinc-rsa_key.priv: private key readable by everyone",
    }
    key.chmod(0o600)
    remaining = {str(f) for f in lint_tree(tree)}
    assert "/etc/tinc-rsa_key.priv: private key readable by everyone" not in remaining


def test_firstboot_state_from_a_test_boot_is_caught(tmp_path: Path) -> None:
    tree = clean_tree(tmp_path)
    (tree / "var/lib/ewindow").mkdir(parents=True)
    (tree / "var/lib/ewindow/identity.json").write_text('{"base_mac": "b8:27:eb:3c:3c:1b"}\n')
    (tree / "boot/firmware/ewindow").mkdir()
    found = {str(f) for f in lint_tree(tree)}
    assert found == {
        "/var/lib/ewindow/identity.json: per-window state: firstboot makes it on each card",
        "/boot/firmware/ewindow: per-window state: firstboot makes it on each card",
    }


def test_secrets_from_the_site_config_reach_the_gate(tmp_path: Path) -> None:
    from ewindow_image.config import ConfigLayers, load_config

    site = tmp_path / "site.yaml"
    site.write_text("vpn:\n  psk: 'a-deployment-psk-123'\nwifi:\n  country: DE\n"
                    "  networks: [{ssid: lab, psk: 'wifi passphrase 9'}]\n")
    cfg = load_config(ConfigLayers((site,)))
    assert sorted(cfg.secret_values()) == ["a-deployment-psk-123", "wifi passphrase 9"]
    tree = clean_tree(tmp_path)
    (tree / "etc/leak.conf").write_text("key = wifi passphrase 9\n")
    assert [str(f) for f in lint_tree(tree, cfg.secret_values())] == [
        "/etc/leak.conf: contains a secret value from the site config"]
