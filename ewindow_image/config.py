# SPDX-License-Identifier: MIT
"""Build configuration: built-in defaults, then a site file, then ``--set key=value``.

Every layer is plain YAML. The layers are merged into one dict while remembering which layer
set each dotted key, so that a validation error can name the file the bad value came from:
``site.yaml: vpn.backends[0]: 'peervpnn' is not one of tinc, yggdrasil, peervpn, cjdns``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import hashlib
import json
import math
import re
import stat
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import firstboot.vpn as vpn_rules
from firstboot import checks

from . import yamlfile
from .errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


class Suite(enum.StrEnum):
    trixie = "trixie"
    bookworm = "bookworm"


class Compression(enum.StrEnum):
    xz = "xz"
    zstd = "zstd"


class InitramfsModules(enum.StrEnum):
    """``most`` is Debian's default (safe, +11 min per cold build); ``pi`` is a curated list."""

    pi = "pi"
    most = "most"


class VpnBackend(enum.StrEnum):
    tinc = "tinc"
    yggdrasil = "yggdrasil"
    peervpn = "peervpn"
    cjdns = "cjdns"


class VpnRole(enum.StrEnum):
    window = "window"
    hub = "hub"  # a public node: windows connect to it, it relays (PeerVPN) and routes (cjdns)


@dataclass(frozen=True)
class ExtraRepoConfig:
    """An apt repository beyond Debian's, e.g. the site's own for PeerVPN or cjdns."""

    uri: str
    suite: str
    key_file: str  # its signing key (armored .asc or binary .gpg), relative to the site file
    components: tuple[str, ...] = ("main",)


@dataclass(frozen=True)
class AptConfig:
    mirror: str
    security_mirror: str
    proxy: str
    retries: int
    local_debs: str  # a folder of .deb files that stand in for packages of those names
    extra_repos: tuple[ExtraRepoConfig, ...]


@dataclass(frozen=True)
class AdminConfig:
    user: str
    authorized_keys: tuple[str, ...]
    authorized_keys_file: str


@dataclass(frozen=True)
class BootConfig:
    initramfs_modules: InitramfsModules
    extra_modules: tuple[str, ...]
    cmdline_extra: str
    config_txt_extra: tuple[str, ...]


@dataclass(frozen=True)
class ImageConfig:
    name: str
    boot_size_mib: int
    headroom_mib: int
    disk_id: str
    compression: tuple[Compression, ...]
    zstd_level: int
    xz_level: int


# A field whose value is a deployment secret: never rendered into the image, redacted in
# build-info.json and ``build.py config``, and searched for by the lint gate.
SECRET = {"secret": True}
NOT_KEYS = ("base_dir", "origins")  # Config fields that are not YAML keys
REDACTED = "<secret>"


@dataclass(frozen=True)
class TincHubConfig:
    name: str
    addresses: tuple[str, ...] = ()
    port: int = 655
    public_key: str = ""


@dataclass(frozen=True)
class TincConfig:
    port: int
    hubs: tuple[TincHubConfig, ...]


@dataclass(frozen=True)
class YggdrasilConfig:
    peers: tuple[str, ...]
    listen: tuple[str, ...]
    allowed_public_keys: tuple[str, ...]
    multicast_interfaces: tuple[str, ...]


@dataclass(frozen=True)
class PeerVpnConfig:
    port: int
    initpeers: tuple[str, ...]


@dataclass(frozen=True)
class CjdnsPeerConfig:
    address: str
    public_key: str
    password: str = field(default="", metadata=SECRET)
    name: str = ""


@dataclass(frozen=True)
class CjdnsClientConfig:
    public_key: str
    ip4_address: str = ""
    ip4_prefix: int = 0
    ip6_address: str = ""
    ip6_prefix: int = 0


@dataclass(frozen=True)
class CjdnsConfig:
    peers: tuple[CjdnsPeerConfig, ...]
    beacon_interfaces: tuple[str, ...]
    udp_beacon: bool  # LAN auto-peering over UDP: open to any cjdns node on that LAN
    gateway_public_key: str
    clients: tuple[CjdnsClientConfig, ...]


@dataclass(frozen=True)
class VpnConfig:
    backends: tuple[VpnBackend, ...]
    role: VpnRole
    network_name: str
    psk: str = field(metadata=SECRET)
    tinc: TincConfig
    yggdrasil: YggdrasilConfig
    peervpn: PeerVpnConfig
    cjdns: CjdnsConfig


@dataclass(frozen=True)
class IdentityConfig:
    prefix: str
    hostname_template: str
    domain: str
    allow_global_prefix: bool = False  # a prefix outside fc00::/7 the deployment owns


@dataclass(frozen=True)
class WifiNetwork:
    ssid: str
    psk: str = field(metadata=SECRET)


@dataclass(frozen=True)
class WifiConfig:
    country: str
    networks: tuple[WifiNetwork, ...]


@dataclass(frozen=True)
class AgentLedConfig:
    kind: str
    pins: tuple[int, ...]
    active_high: bool


@dataclass(frozen=True)
class AgentButtonConfig:
    pin: int
    restart_vpn_s: float
    reboot_s: float
    stuck_s: float


@dataclass(frozen=True)
class AgentProbeConfig:
    vpn_targets: tuple[str, ...]
    internet_url: str
    internet_expect: str
    interval_s: float


@dataclass(frozen=True)
class AgentConfig:
    """The status LED and button agent (hardware/); README "Status LED and button"."""

    led: AgentLedConfig
    button: AgentButtonConfig
    probe: AgentProbeConfig


@dataclass(frozen=True)
class SourcesConfig:
    """Where the source packages' upstream archives come from (README "Built from source")."""

    mirrors: tuple[str, ...]  # folders or URLs tried in order before upstream


@dataclass(frozen=True)
class BuildConfig:
    qemu_cpu: str
    cache_max_size: str  # after each build, least recently used snapshots go beyond this; "" = no limit


@dataclass(frozen=True)
class Config:
    suite: Suite
    arch: str
    hostname: str
    timezone: str
    extra_packages: tuple[str, ...]
    apt: AptConfig
    admin: AdminConfig
    boot: BootConfig
    image: ImageConfig
    vpn: VpnConfig
    identity: IdentityConfig
    wifi: WifiConfig
    secrets_file: str
    agent: AgentConfig
    sources: SourcesConfig
    build: BuildConfig
    # Where relative paths in the site file are resolved; not a YAML key.
    base_dir: Path = field(default=Path("."), compare=False)
    # Which layer set each dotted key (for messages about values checked later); not a key.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def origin(self, key: str) -> str:
        """The file (or ``--set``, ``defaults``) that set ``key``."""
        return _source(self.origins, key)

    def as_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """The resolved config as plain data (what ``build.py config`` prints), secrets
        replaced by "<secret>" unless ``redact`` is False (personalisation only)."""
        data = _to_plain(self, REDACTED if redact else None)
        for name in NOT_KEYS:
            data.pop(name, None)
        assert isinstance(data, dict)
        return data

    def secret_values(self) -> list[str]:
        """Values the image must never contain (VPN keys, Wi-Fi passwords)."""
        found: list[str] = []
        _collect_secrets(self, found)
        return [value for value in found if value]

    def digest(self) -> str:
        """A stable hash of the resolved config (secrets redacted), in build-info.json."""
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


# --- validators for individual fields (called after type conversion) -------------------------
# Each value is checked by its one check in firstboot/checks.py (shared with personalise,
# hosts and firstboot on the window); this part only says which check holds for which key.


def _source(sources: Mapping[str, str], key: str) -> str:
    """The layer that set ``key`` or the nearest mapping or list above it
    (``wifi.networks[0].psk`` → the file that set ``wifi.networks``)."""
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    for end in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:end]))
        if found:
            return found
    return "defaults"


Fail = typing.Callable[[str, str], typing.NoReturn]


def _checker(sources: Mapping[str, str]) -> tuple[Fail, typing.Callable[..., Any]]:
    def fail(key: str, message: str) -> typing.NoReturn:
        raise ConfigError(_source(sources, key), key, message)

    def check(key: str, rule: typing.Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return rule(*args, **kwargs)
        except ValueError as exc:  # checks.InvalidValue, VpnSettingsError
            fail(key, str(exc).removeprefix(f"{key}: "))

    return fail, check


def _check_config(cfg: Config, sources: Mapping[str, str]) -> None:
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
        from .cache import parse_size

        check("build.cache_max_size", parse_size, cfg.build.cache_max_size)
    check("build.qemu_cpu", _qemu_cpu, cfg.build.qemu_cpu)


# (key, value, low, high): every bounded number of the config
def _ranges(cfg: Config) -> list[tuple[str, float, float, float]]:
    return [
        ("image.boot_size_mib", cfg.image.boot_size_mib, 64, 2048),
        ("image.headroom_mib", cfg.image.headroom_mib, 64, 65536),
        ("image.zstd_level", cfg.image.zstd_level, 1, 19),
        ("image.xz_level", cfg.image.xz_level, 0, 9),
        ("apt.retries", cfg.apt.retries, 0, 20),
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
        if not (cfg.base_dir / repo.key_file).expanduser().is_file():
            fail(f"{key}.key_file",
                 f"{cfg.base_dir / repo.key_file}: no such file (the repository's signing key)")


def agent_settings(cfg: Config) -> dict[str, Any]:
    """/etc/ewindow/agent.json: the site's agent section plus what the agent derives from
    the rest of the config (the VPN backends to probe)."""
    agent = _to_plain(cfg.agent)
    agent["probe"]["vpn_backends"] = [b.value for b in cfg.vpn.backends]
    assert isinstance(agent, dict)
    return agent


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
    plain = _to_plain(vpn)
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


def is_hostname(name: str) -> bool:
    try:
        checks.hostname(name)
    except checks.InvalidValue:
        return False
    return True


# --- generic conversion from YAML data to the dataclasses above ------------------------------


def _to_plain(value: Any, redact: str | None = None) -> Any:
    """Plain data; secret fields that are set become ``redact`` unless it is None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: redact if redact is not None and f.metadata.get("secret") and getattr(value, f.name)
                else _to_plain(getattr(value, f.name), redact)
                for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_to_plain(v, redact) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _collect_secrets(value: Any, found: list[str]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("secret") and isinstance(item, str):
                found.append(item)
            else:
                _collect_secrets(item, found)
    elif isinstance(value, tuple):
        for item in value:
            _collect_secrets(item, found)


def _got(value: Any, secret: bool) -> str:
    """How a message shows a wrong value: shortened, and never a secret's."""
    if secret:
        return "" if isinstance(value, str) else " (write it in quotes)"
    hint = " (write it in quotes)" if isinstance(value, bool | int | float) else ""
    return f", got {checks.shown(value)}{hint}"


def _convert(tp: Any, value: Any, key: str, sources: Mapping[str, str], secret: bool = False) -> Any:
    source = _source(sources, key)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        assert isinstance(tp, type)
        return _build(tp, value, key, sources)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        choices = [m.value for m in tp]
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(source, key, f"{checks.shown(value)} is not one of {', '.join(choices)}")
        return tp(value)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected a list{_got(value, secret)}")
        return tuple(_convert(item_type, item, f"{key}[{i}]", sources, secret)
                     for i, item in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false{_got(value, secret)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer{_got(value, secret)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(source, key, f"expected a number{_got(value, secret)}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if value is False and key.endswith("country"):  # YAML 1.1: a bare NO is false
            raise ConfigError(source, key, 'got false: write the country code in quotes, e.g. "NO"')
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string{_got(value, secret)}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug in this module


def _build(cls: type, data: Any, prefix: str, sources: Mapping[str, str]) -> Any:
    source = _source(sources, prefix) if prefix else "config"
    if not isinstance(data, dict):
        raise ConfigError(source, prefix or "(top level)", f"expected a mapping, got {checks.shown(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in NOT_KEYS}
    for name in data:
        if name not in fields:
            key = f"{prefix}.{name}" if prefix else str(name)
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(fields)}"
            raise ConfigError(_source(sources, key), checks.shown(key).strip("'"), f"unknown key ({hint})")
    values = {}
    for name, spec in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data and spec.default is not dataclasses.MISSING:
            values[name] = spec.default
            continue
        if name not in data:
            raise ConfigError(_source(sources, prefix), key, "missing")
        values[name] = _convert(hints[name], data[name], key, sources, bool(spec.metadata.get("secret")))
    return cls(**values)


# --- layering --------------------------------------------------------------------------------


def _merge(base: dict[str, Any], layer: Mapping[str, Any], source: str,
           sources: dict[str, str], prefix: str = "") -> None:
    """Merge ``layer`` into ``base`` in place; mappings merge, everything else replaces.
    Linear in the number of keys: only a mapping replaced by something else forgets the
    sources of the keys below it."""
    for name, value in layer.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(value, dict) and isinstance(base.get(name), dict):
            sources.setdefault(key, source)
            _merge(base[name], value, source, sources, key)
            continue
        if isinstance(base.get(name), dict):
            _forget_below(base[name], key, sources)
        base[name] = value
        sources[key] = source


def _forget_below(old: dict[str, Any], key: str, sources: dict[str, str]) -> None:
    for name, value in old.items():
        sub = f"{key}.{name}"
        sources.pop(sub, None)
        if isinstance(value, dict):
            _forget_below(value, sub, sources)


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yamlfile.load(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "(top level)", "expected a mapping of keys")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``--set key.sub=value``; the value is YAML (``[xz, zstd]``, ``42``, ``true``)."""
    if "=" not in text:
        raise ConfigError("--set", checks.shown(text), "expected key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(re.fullmatch(r"[a-z0-9_]+", part) for part in path):
        raise ConfigError("--set", checks.shown(key), "not a key like image.compression")
    if len(raw) > 65536:
        raise ConfigError("--set", key, "value longer than 64 KiB")
    try:
        value = yamlfile.parse(raw, f"--set {key}") if raw.strip() else ""
    except ConfigError:
        value = raw  # not YAML: the text as it is (a string check follows)
    return path, value


@dataclass(frozen=True)
class ConfigLayers:
    """Inputs to :func:`load_config`, as given on the command line: site files in order
    (``-c`` may be repeated), then ``--set`` overrides."""

    site_files: tuple[Path, ...] = ()
    overrides: tuple[str, ...] = ()


def _load_secrets_file(path: Path, named_in: str) -> dict[str, Any]:
    """A secrets file must be private to its owner and outside any git checkout."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(named_in, "secrets_file", f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(named_in, "secrets_file", f"{path}: not a file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(str(path), "(file)", f"readable by others (mode {stat.S_IMODE(mode):04o}); "
                          f"chmod 600 {path}")
    for parent in path.resolve().parents:
        if (parent / ".git").exists():
            raise ConfigError(str(path), "(file)", f"inside the git checkout {parent}: secrets "
                              "belong outside it (build.py network init DIR)")
    return _load_yaml(path)


def _overrides_layer(overrides: tuple[str, ...]) -> list[dict[str, Any]]:
    layers = []
    for text in overrides:
        key_path, value = parse_override(text)
        nested: dict[str, Any] = {}
        cursor = nested
        for part in key_path[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[key_path[-1]] = value
        layers.append(nested)
    return layers


def _secrets_path(data: Mapping[str, Any], overrides: list[dict[str, Any]], sources: Mapping[str, str],
                  base_dir: Path) -> tuple[Path, str] | None:
    """The secrets file named by a site file or ``--set secrets_file=…`` (the last wins); a
    relative name is relative to the site file that names it, or to the current folder."""
    named_in, name = sources.get("secrets_file", "config"), data.get("secrets_file")
    for layer in overrides:
        if "secrets_file" in layer:
            named_in, name = "--set", layer["secrets_file"]
    if name in (None, ""):
        return None
    if not isinstance(name, str):
        raise ConfigError(named_in, "secrets_file", f"expected a path{_got(name, False)}")
    try:
        checks.file_path(name)
    except checks.InvalidValue as exc:
        raise ConfigError(named_in, "secrets_file", str(exc)) from None
    relative_to = Path(named_in).resolve().parent if named_in.endswith((".yaml", ".yml")) else (
        Path.cwd() if named_in == "--set" else base_dir)
    return relative_to / Path(name).expanduser(), named_in


def load_config(layers: ConfigLayers = ConfigLayers()) -> Config:
    """Merge defaults, the site files, the secrets file they name, and overrides; validate;
    return the frozen config."""
    sources: dict[str, str] = {}
    data: dict[str, Any] = {}
    _merge(data, _load_yaml(DEFAULTS_FILE), "defaults", sources)
    base_dir = Path.cwd()
    for site_file in layers.site_files:
        _merge(data, _load_yaml(site_file), str(site_file), sources)
        base_dir = site_file.resolve().parent
    overrides = _overrides_layer(layers.overrides)
    secrets = _secrets_path(data, overrides, sources, base_dir)
    if secrets is not None:
        path, named_in = secrets
        _merge(data, _load_secrets_file(path, named_in), str(path), sources)
    for layer in overrides:
        _merge(data, layer, "--set", sources)
    built = _build(Config, data, "", sources)
    assert isinstance(built, Config)
    cfg = dataclasses.replace(built, base_dir=base_dir, origins=dict(sources))
    _check_config(cfg, sources)
    keys_file = cfg.admin.authorized_keys_file
    if keys_file:
        path = (base_dir / keys_file).expanduser()
        if not path.is_file():
            raise ConfigError(_source(sources, "admin.authorized_keys_file"), "admin.authorized_keys_file",
                              f"{path}: no such file")
        text = yamlfile.read_text(path, max_bytes=1 << 20)
        lines = [ln.strip() for ln in text.splitlines()]
        keys = tuple(ln for ln in lines if ln and not ln.startswith("#"))
        for number, key in enumerate(lines, 1):
            if key and not key.startswith("#"):
                try:
                    checks.ssh_public_key(key)
                except checks.InvalidValue as exc:
                    raise ConfigError(str(path), f"line {number}", str(exc)) from None
        admin = dataclasses.replace(cfg.admin, authorized_keys=cfg.admin.authorized_keys + keys)
        cfg = dataclasses.replace(cfg, admin=admin)
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.as_dict(), sort_keys=False)


# What templates see: the resolved config as plain data, e.g. ``{{ image.disk_id }}``,
# with every secret blanked: a template cannot put one into the image.
def template_context(cfg: Config) -> dict[str, Any]:
    data = _to_plain(cfg, "")
    for name in NOT_KEYS:
        data.pop(name, None)
    assert isinstance(data, dict)
    return data



def extra_repo_key(cfg: Config, index: int) -> Path:
    return (cfg.base_dir / cfg.apt.extra_repos[index].key_file).expanduser()
