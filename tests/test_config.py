# SPDX-License-Identifier: MIT
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ewindow_image.config import (
    Compression,
    ConfigLayers,
    InitramfsModules,
    Suite,
    dump_config,
    load_config,
    parse_override,
)
from ewindow_image.errors import ConfigError

from .keys import ed25519_line

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_build_trixie_arm64_with_zstd() -> None:
    cfg = load_config()
    assert cfg.suite is Suite.trixie
    assert cfg.arch == "arm64"
    assert cfg.image.compression == (Compression.zstd,)
    assert cfg.boot.initramfs_modules is InitramfsModules.pi
    assert cfg.admin.authorized_keys == ()


def test_site_file_then_overrides_win(tmp_path: Path) -> None:
    site = write(tmp_path / "site.yaml", "suite: bookworm\nimage:\n  boot_size_mib: 512\n")
    cfg = load_config(ConfigLayers((site,), ("image.boot_size_mib=300", "image.compression=[xz, zstd]")))
    assert cfg.suite is Suite.bookworm
    assert cfg.image.boot_size_mib == 300
    assert cfg.image.compression == (Compression.xz, Compression.zstd)
    # keys the site file did not name keep their defaults
    assert cfg.image.disk_id == load_config().image.disk_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vpn:\n  backends: [peervpnn]\n",
         "site.yaml: vpn.backends[0]: 'peervpnn' is not one of tinc, yggdrasil, peervpn, cjdns"),
        ("image:\n  boot_sise_mib: 3\n",
         "site.yaml: image.boot_sise_mib: unknown key (did you mean 'boot_size_mib'?)"),
        ("image:\n  boot_size_mib: big\n", "site.yaml: image.boot_size_mib: expected an integer, got 'big'"),
        ("image:\n  boot_size_mib: 8\n", "site.yaml: image.boot_size_mib: 8 is outside 64..2048"),
        ("suite: buster\n", "site.yaml: suite: 'buster' is not one of trixie, bookworm"),
        ("image: [1]\n", "site.yaml: image: expected a mapping, got [1]"),
        ("hostname: Not_Valid\n", "site.yaml: hostname: 'Not_Valid' is not a host name"),
        ("admin:\n  authorized_keys: [hello]\n",
         "site.yaml: admin.authorized_keys[0]: 'hello' is not an SSH public key line"),
        ("apt:\n  proxy: 10.0.0.1:3142\n",
         "site.yaml: apt.proxy: '10.0.0.1:3142' is not an http:// or https:// URL"),
        ("suite: [\n", "site.yaml: line 2:"),
    ],
)
def test_bad_site_values_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    site = write(tmp_path / "site.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(ConfigLayers((site,)))
    assert str(info.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_override_errors_name_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--set: image.xz_level: 12 is outside 0..9$"):
        load_config(ConfigLayers((), ("image.xz_level=12",)))
    with pytest.raises(ConfigError, match=r"^--set: 'nope': expected key=value$"):
        parse_override("nope")


def test_authorized_keys_file_is_relative_to_site_file(tmp_path: Path) -> None:
    key = ed25519_line("k0", "admin@example")
    write(tmp_path / "keys.pub", f"# admins\n{key}\n\n")
    site = write(tmp_path / "site.yaml", "admin:\n  authorized_keys_file: keys.pub\n")
    cfg = load_config(ConfigLayers((site,)))
    assert cfg.admin.authorized_keys == (key,)


def test_missing_keys_file_names_the_site_file(tmp_path: Path) -> None:
    site = write(tmp_path / "site.yaml", "admin:\n  authorized_keys_file: gone.pub\n")
    with pytest.raises(ConfigError, match=r"site.yaml: admin.authorized_keys_file: .*gone.pub"):
        load_config(ConfigLayers((site,)))


def test_digest_changes_with_any_value() -> None:
    a = load_config()
    b = load_config(ConfigLayers((), ("timezone=Europe/Berlin",)))
    assert a.digest() != b.digest()
    assert a.digest() == load_config().digest()


def test_dump_is_yaml_of_every_section() -> None:
    text = dump_config(load_config())
    for section in ("apt:", "admin:", "boot:", "image:", "vpn:", "build:"):
        assert f"\n{section}\n" in text


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_cli_typo_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    site = write(tmp_path / "site.yaml", "vpn:\n  backends: [tinc, peervpnn]\n")
    out = tmp_path / "out"
    result = run_cli("build", "-c", str(site), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {site}: vpn.backends[1]: 'peervpnn' is not one of tinc, yggdrasil, peervpn, cjdns"]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_cli_debug_shows_traceback(tmp_path: Path) -> None:
    result = run_cli("config", "--set", "suite=sid", "--debug", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_cli_config_prints_resolved_values(tmp_path: Path) -> None:
    result = run_cli("config", "--set", "hostname=window-7", cwd=tmp_path)
    assert result.returncode == 0
    assert "hostname: window-7\n" in result.stdout
