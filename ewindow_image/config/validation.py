# SPDX-License-Identifier: MIT
"""Checks of a loaded config: each value by its one check in ``firstboot/checks.py`` (shared
with personalise, hosts and firstboot on the window); this module only says which check holds
for which key, and names the layer that set a bad value."""

from __future__ import annotations

import functools
import re
import typing
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import firstboot.vpn as vpn_rules
from firstboot import checks

from ..errors import ConfigError
from . import openpgp
from .schema import (
    Config,
    IdentityConfig,
    VpnConfig,
    WifiConfig,
    agent_settings,
    source_of,
    to_plain,
)
from .updates import updates_keyring

Fail = typing.Callable[[str, str], typing.NoReturn]


def _checker(sources: Mapping[str, str]) -> tuple[Fail, typing.Callable[..., Any]]:
    def fail(key: str, message: str) -> typing.NoReturn:
        raise ConfigError(source_of(sources, key), key, message)

    def check(key: str, rule: typing.Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return rule(*args, **kwargs)
        except ValueError as exc:  # checks.InvalidValue, VpnSettingsError
            fail(key, str(exc).removeprefix(f"{key}: "))

    return fail, check


def check_config(cfg: Config, sources: Mapping[str, str]) -> None:
    fail, check = _checker(sources)
    if cfg.arch != "arm64":
        fail("arch", f"{checks.shown(cfg.arch)} is not supported (only arm64)")
    check("hostname", checks.hostname, cfg.hostname)
    check("timezone", checks.timezone, cfg.timezone)
    if cfg.timezone not in _known_timezones():
        fail("timezone", f"{checks.shown(cfg.timezone)} is not in the tz database (e.g. Europe/Berlin)")
    for index, package in enumerate(cfg.extra_packages):
        check(f"extra_packages[{index}]", checks.debian_package, package)
    check("admin.user", checks.login_name, cfg.admin.user)
    for index, line in enumerate(cfg.admin.authorized_keys):
        check(f"admin.authorized_keys[{index}]", checks.ssh_public_key, line)
    _check_ranges(cfg, fail)
    for key, path in (("admin.authorized_keys_file", cfg.admin.authorized_keys_file),
                      ("apt.local_debs", cfg.apt.local_debs), ("secrets_file", cfg.secrets_file)):
        if path:
            check(key, checks.file_path, path)
    check("image.disk_id", checks.image_disk_id, cfg.image.disk_id)
    check("image.name", checks.file_name, cfg.image.name)
    _check_apt(cfg, fail, check)
    _check_updates(cfg, fail, check)
    for index, mirror in enumerate(cfg.sources.mirrors):
        if "://" in mirror:
            check(f"sources.mirrors[{index}]", checks.url, mirror, ("http", "https", "file"))
        else:
            check(f"sources.mirrors[{index}]", checks.file_path, mirror)
    for index, module in enumerate(cfg.boot.extra_modules):
        check(f"boot.extra_modules[{index}]", checks.kernel_module, module)
    check("boot.cmdline_extra", checks.cmdline_extra, cfg.boot.cmdline_extra)
    for index, line in enumerate(cfg.boot.config_txt_extra):
        check(f"boot.config_txt_extra[{index}]", checks.config_txt_line, line)
    _check_identity(cfg.identity, check)
    _check_wifi(cfg.wifi, fail, check)
    _check_vpn(cfg.vpn, fail, check)
    _check_agent(cfg, fail)
    if cfg.build.cache_max_size:
        check("build.cache_max_size", parse_size, cfg.build.cache_max_size)
    check("build.qemu_cpu", _qemu_cpu, cfg.build.qemu_cpu)
    _check_release(cfg, check)


def _check_release(cfg: Config, check: typing.Callable[..., Any]) -> None:
    release = cfg.release
    check("release.title", checks.one_line_text, release.title, max_length=80)
    check("release.description", checks.one_line_text, release.description, max_length=300)
    for key, value in (("release.base_url", release.base_url), ("release.icon_url", release.icon_url)):
        if value:
            check(key, checks.url, value, ("https", "http", "file"))
    if release.signing_key:
        check("release.signing_key", checks.gpg_key, release.signing_key)
    if release.gnupg_home:
        check("release.gnupg_home", checks.file_path, release.gnupg_home)


# (key, value, low, high): every bounded number of the config
def _ranges(cfg: Config) -> list[tuple[str, float, float, float]]:
    return [
        ("image.boot_size_mib", cfg.image.boot_size_mib, 64, 2048),
        ("image.headroom_mib", cfg.image.headroom_mib, 64, 65536),
        ("image.zstd_level", cfg.image.zstd_level, 1, 19),
        ("image.xz_level", cfg.image.xz_level, 0, 9),
        ("apt.retries", cfg.apt.retries, 0, 20),
        ("build.source_date_epoch", cfg.build.source_date_epoch, 0, 2**32 - 1),
    ]


def _check_ranges(cfg: Config, fail: Fail) -> None:
    for key, value, low, high in _ranges(cfg):
        if not low <= value <= high:
            fail(key, f"{value} is outside {low}..{high}")


def _qemu_cpu(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.,=+-]{1,128}", value):
        raise checks.InvalidValue(f"{checks.shown(value)} is not a qemu -cpu model like max,pauth=off")
    return value


@functools.cache
def _known_timezones() -> frozenset[str]:
    """The IANA tz database (PyPI's tzdata in the venv, and the host's if it has one); the
    image's own zoneinfo is checked again by the stage that links /etc/localtime."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _check_apt(cfg: Config, fail: Fail, check: typing.Callable[..., Any]) -> None:
    network = ("http", "https")
    check("apt.mirror", checks.url, cfg.apt.mirror, (*network, "file"))
    check("apt.security_mirror", checks.url, cfg.apt.security_mirror, (*network, "file"))
    if cfg.apt.proxy:
        check("apt.proxy", checks.url, cfg.apt.proxy, network)
    for index, repo in enumerate(cfg.apt.extra_repos):
        key = f"apt.extra_repos[{index}]"
        check(f"{key}.uri", checks.url, repo.uri, (*network, "file"))
        check(f"{key}.key_file", checks.file_path, repo.key_file)
        check(f"{key}.suite", checks.apt_word, repo.suite)
        for number, component in enumerate(repo.components):
            check(f"{key}.components[{number}]", checks.apt_word, component)
        _check_key_file(f"{key}.key_file", (cfg.base_dir / repo.key_file).expanduser(),
                        "the repository's signing key", fail)


def _check_key_file(key: str, path: Path, what: str, fail: Fail) -> None:
    """A key file the image will trust must hold an OpenPGP public key and nothing else: a
    site file naming /etc/shadow must not queue its bytes for the image."""
    if not path.exists():
        fail(key, f"{path}: no such file ({what})")
    try:
        openpgp.read_public_key(path)
    except ValueError as exc:
        fail(key, f"{path}: {exc} ({what}: gpg --export or --armor --export writes one)")


def _check_updates(cfg: Config, fail: Fail, check: typing.Callable[..., Any]) -> None:
    check("updates.window", checks.time_window, cfg.updates.window)
    if cfg.updates.key:
        check("updates.key", checks.file_path, cfg.updates.key)
    if not cfg.updates.repo:
        return
    check("updates.repo", checks.apt_repository_url, cfg.updates.repo)
    keyring = updates_keyring(cfg)
    if keyring is None:
        fail("updates.key", "not set, and no secrets_file beside which the repository key would be "
             "(build.py network init makes it)")
    else:
        _check_key_file("updates.key", keyring, "the repository's public key; build.py network init "
                        "makes it", fail)


def _check_agent(cfg: Config, fail: Fail) -> None:
    from hardware.config import AgentConfigError, parse

    try:
        parse(agent_settings(cfg), "agent")
    except AgentConfigError as exc:
        field_name, _, message = str(exc).removeprefix("agent: ").partition(": ")
        fail(f"agent.{field_name}", message)


def _check_vpn(vpn: VpnConfig, fail: Fail, check: typing.Callable[..., Any]) -> None:
    """The build's part of the VPN settings: firstboot's own parser on the window reads
    them (firstboot/vpn/__init__.py parse_vpn), so the same checks hold here."""
    if len(set(vpn.backends)) != len(vpn.backends):
        fail("vpn.backends", "a backend is listed twice")
    plain = to_plain(vpn)
    try:
        vpn_rules.parse_vpn(plain)
    except vpn_rules.VpnSettingsError as exc:
        key, _, message = str(exc).partition(": ")
        fail(key, message)


def _check_identity(identity: IdentityConfig, check: typing.Callable[..., Any]) -> None:
    check("identity.prefix", checks.identity_prefix, identity.prefix,
          allow_global=identity.allow_global_prefix)
    check("identity.hostname_template", checks.hostname_template, identity.hostname_template)
    check("identity.domain", checks.domain, identity.domain)


def _check_wifi(wifi: WifiConfig, fail: Fail, check: typing.Callable[..., Any]) -> None:
    if wifi.country:
        check("wifi.country", checks.wifi_country, wifi.country)
    if wifi.networks and not wifi.country:
        fail("wifi.networks", "needs wifi.country (the radio's regulatory domain), e.g. country: DE")
    for index, network in enumerate(wifi.networks):
        check(f"wifi.networks[{index}].ssid", checks.wifi_ssid, network.ssid)
        check(f"wifi.networks[{index}].psk", checks.wifi_psk, network.psk)


SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``20G``, ``500M``, ``1.5T`` or plain bytes; ValueError for anything else (negative,
    ``inf``, ``nan``, words)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    match = SIZE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size like 20G")
    return int(float(match.group(1)) * units[match.group(2).upper()])
