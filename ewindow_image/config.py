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
import hashlib
import ipaddress
import json
import re
import stat
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from firstboot.vpn import peervpn as peervpn_rules

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

    def as_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """The resolved config as plain data (what ``build.py config`` prints), secrets
        replaced by "<secret>" unless ``redact`` is False (personalisation only)."""
        data = _to_plain(self, REDACTED if redact else None)
        data.pop("base_dir", None)
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


def _source(sources: Mapping[str, str], key: str) -> str:
    """The layer that set ``key`` or the nearest mapping or list above it
    (``wifi.networks[0].psk`` → the file that set ``wifi.networks``)."""
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    for end in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:end]))
        if found:
            return found
    return "defaults"


def _check_config(cfg: Config, sources: Mapping[str, str]) -> None:
    def fail(key: str, message: str) -> typing.NoReturn:
        raise ConfigError(_source(sources, key), key, message)

    if cfg.arch != "arm64":
        fail("arch", f"'{cfg.arch}' is not supported (only arm64)")
    if not is_hostname(cfg.hostname):
        fail("hostname", f"'{cfg.hostname}' is not a valid host name (a-z, 0-9, '-', ≤ 63)")
    if not _is_username(cfg.admin.user) or cfg.admin.user == "root":
        fail("admin.user", f"'{cfg.admin.user}' is not a valid login name (not root)")
    for key in cfg.admin.authorized_keys:
        if not _looks_like_ssh_key(key):
            fail("admin.authorized_keys", f"'{key[:40]}' is not an SSH public key line")
    if not 64 <= cfg.image.boot_size_mib <= 2048:
        fail("image.boot_size_mib", f"{cfg.image.boot_size_mib} is outside 64..2048")
    if not 64 <= cfg.image.headroom_mib <= 65536:
        fail("image.headroom_mib", f"{cfg.image.headroom_mib} is outside 64..65536")
    if not (len(cfg.image.disk_id) == 8 and _is_hex(cfg.image.disk_id)):
        fail("image.disk_id", f"'{cfg.image.disk_id}' is not 8 hex digits")
    if not 1 <= cfg.image.zstd_level <= 19:
        fail("image.zstd_level", f"{cfg.image.zstd_level} is outside 1..19")
    if not 0 <= cfg.image.xz_level <= 9:
        fail("image.xz_level", f"{cfg.image.xz_level} is outside 0..9")
    if not cfg.image.name or "/" in cfg.image.name:
        fail("image.name", f"'{cfg.image.name}' is not a file name")
    for url_key, url in (("apt.mirror", cfg.apt.mirror), ("apt.security_mirror", cfg.apt.security_mirror)):
        if not url.startswith(("http://", "https://", "file:/")):
            fail(url_key, f"'{url}' is not an http(s):// or file:/ URL")
    if cfg.apt.proxy and not cfg.apt.proxy.startswith(("http://", "https://")):
        fail("apt.proxy", f"'{cfg.apt.proxy}' is not an http(s):// URL")
    for index, repo in enumerate(cfg.apt.extra_repos):
        key = f"apt.extra_repos[{index}]"
        if not repo.uri.startswith(("http://", "https://", "file:/")):
            fail(f"{key}.uri", f"'{repo.uri}' is not an http(s):// or file:/ URL")
        if not repo.suite or " " in repo.suite:
            fail(f"{key}.suite", f"'{repo.suite}' is not a suite name (or ./ for a flat repository)")
        if not (cfg.base_dir / repo.key_file).expanduser().is_file():
            fail(f"{key}.key_file",
                 f"{cfg.base_dir / repo.key_file}: no such file (the repository's signing key)")
    for index, mirror in enumerate(cfg.sources.mirrors):
        if not mirror or any(c.isspace() for c in mirror) or (
                "://" in mirror and not mirror.startswith(("http://", "https://", "file://"))):
            fail(f"sources.mirrors[{index}]", f"'{mirror}' is not a folder or an http(s):// or file:// URL")
    if not 0 <= cfg.apt.retries <= 20:
        fail("apt.retries", f"{cfg.apt.retries} is outside 0..20")
    for module in cfg.boot.extra_modules:
        if not module.replace("_", "").replace("-", "").isalnum():
            fail("boot.extra_modules", f"'{module}' is not a kernel module name")
    for package in cfg.extra_packages:
        if not _is_package_name(package):
            fail("extra_packages", f"'{package}' is not a Debian package name")
    _check_identity(cfg.identity, fail)
    _check_wifi(cfg.wifi, fail)
    _check_vpn(cfg.vpn, fail)
    _check_agent(cfg, fail)
    if cfg.build.cache_max_size:
        from .cache import parse_size

        try:
            parse_size(cfg.build.cache_max_size)
        except ValueError:
            fail("build.cache_max_size", f"'{cfg.build.cache_max_size}' is not a size like 20G")


def agent_settings(cfg: Config) -> dict[str, Any]:
    """/etc/ewindow/agent.json: the site's agent section plus what the agent derives from
    the rest of the config (the VPN backends to probe)."""
    agent = _to_plain(cfg.agent)
    agent["probe"]["vpn_backends"] = [b.value for b in cfg.vpn.backends]
    assert isinstance(agent, dict)
    return agent


def _check_agent(cfg: Config, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    from hardware.config import AgentConfigError, parse

    try:
        parse(agent_settings(cfg), "agent")
    except AgentConfigError as exc:
        field_name, _, message = str(exc).removeprefix("agent: ").partition(": ")
        fail(f"agent.{field_name}", message)


def _check_vpn(vpn: VpnConfig, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    if len(set(vpn.backends)) != len(vpn.backends):
        fail("vpn.backends", "a backend is listed twice")
    if not (vpn.network_name and all(c.isalnum() or c in "_-" for c in vpn.network_name)):
        fail("vpn.network_name", f"'{vpn.network_name}' must be letters, digits, '-' and '_'")
    # The same checks firstboot makes on the window (firstboot/vpn/peervpn.py), so nothing
    # is accepted here that the window refuses later.
    if VpnBackend.peervpn in vpn.backends and vpn.psk:
        try:
            peervpn_rules.check_psk(vpn.psk)
        except ValueError:
            fail("vpn.psk", f"PeerVPN's parser cuts values at '#', ';' and white space and takes at most "
                 f"{peervpn_rules.MAX_VALUE} characters; build.py network init makes one that fits")
    for index, hub in enumerate(vpn.tinc.hubs):
        if VpnBackend.tinc in vpn.backends and "BEGIN RSA PUBLIC KEY" not in hub.public_key:
            fail(f"vpn.tinc.hubs[{index}].public_key",
                 "the hub's RSA public key block (from its hosts/ file)")
    try:
        peervpn_rules.check_initpeers(vpn.peervpn.initpeers)
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        fail(key, message)


def _check_identity(identity: IdentityConfig, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    try:
        network = ipaddress.IPv6Network(identity.prefix, strict=True)
    except ValueError as exc:
        fail("identity.prefix", f"'{identity.prefix}' is not an IPv6 prefix like fde1:c0fe::/64 ({exc})")
    if network.prefixlen > 80:
        fail("identity.prefix", f"'{identity.prefix}' leaves fewer than 48 bits for the MAC")
    try:
        sample = identity.hostname_template.format(mac6="b83c3c", serial="00000000b83c3c1b")
    except (KeyError, IndexError, ValueError) as exc:
        fail("identity.hostname_template", f"'{identity.hostname_template}': only {{mac6}} and "
             f"{{serial}} can be used ({exc})")
    if not is_hostname(sample):
        fail("identity.hostname_template", f"'{identity.hostname_template}' gives '{sample}', "
             "not a valid host name")
    labels = identity.domain.split(".")
    if not all(is_hostname(label) for label in labels):
        fail("identity.domain", f"'{identity.domain}' is not a domain name")


def _check_wifi(wifi: WifiConfig, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    if wifi.country and not (len(wifi.country) == 2 and wifi.country.isalpha() and wifi.country.isupper()):
        fail("wifi.country", f"'{wifi.country}' is not a two-letter country code like DE")
    if wifi.networks and not wifi.country:
        fail("wifi.country", "required with wifi.networks (the radio's regulatory domain)")
    for index, network in enumerate(wifi.networks):
        if not 1 <= len(network.ssid.encode()) <= 32:
            fail(f"wifi.networks[{index}].ssid", "1 to 32 bytes")
        if network.psk and not 8 <= len(network.psk) <= 63:
            fail(f"wifi.networks[{index}].psk", "8 to 63 characters (\"\" for an open network)")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def is_hostname(name: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    return 0 < len(name) <= 63 and set(name) <= allowed and not name.startswith("-")


def _is_username(name: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
    return 0 < len(name) <= 32 and set(name) <= allowed and name[0].isalpha()


def _is_package_name(name: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789+-.")
    return len(name) >= 2 and set(name) <= allowed and name[0].isalnum()


def _looks_like_ssh_key(line: str) -> bool:
    parts = line.split()
    return len(parts) >= 2 and (parts[0].startswith(("ssh-", "ecdsa-", "sk-")))


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


def _type_name(tp: Any) -> str:
    if tp is str:
        return "a string"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if typing.get_origin(tp) is tuple:
        return "a list"
    return "a mapping"


def _convert(tp: Any, value: Any, key: str, sources: Mapping[str, str]) -> Any:
    source = _source(sources, key)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        assert isinstance(tp, type)
        return _build(tp, value, key, sources)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        choices = [m.value for m in tp]
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(source, key, f"{value!r} is not one of {', '.join(choices)}")
        return tp(value)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected a list, got {value!r}")
        return tuple(_convert(item_type, item, f"{key}[{i}]", sources) for i, item in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug in this module


def _build(cls: type, data: Any, prefix: str, sources: Mapping[str, str]) -> Any:
    source = _source(sources, prefix) if prefix else "config"
    if not isinstance(data, dict):
        raise ConfigError(source, prefix or "(top level)", f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "base_dir"}
    for name in data:
        if name not in fields:
            key = f"{prefix}.{name}" if prefix else str(name)
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(fields)}"
            raise ConfigError(_source(sources, key), key, f"unknown key ({hint})")
    values = {}
    for name, spec in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data and spec.default is not dataclasses.MISSING:
            values[name] = spec.default
            continue
        if name not in data:
            raise ConfigError(_source(sources, prefix), key, "missing")
        values[name] = _convert(hints[name], data[name], key, sources)
    return cls(**values)


# --- layering --------------------------------------------------------------------------------


def _merge(base: dict[str, Any], layer: Mapping[str, Any], source: str,
           sources: dict[str, str], prefix: str = "") -> None:
    """Merge ``layer`` into ``base`` in place; mappings merge, everything else replaces."""
    for name, value in layer.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(value, dict) and isinstance(base.get(name), dict):
            sources.setdefault(key, source)
            _merge(base[name], value, source, sources, key)
        else:
            base[name] = value
            sources[key] = source
            for sub in [k for k in sources if k.startswith(key + ".")]:
                sources[sub] = source


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), "(file)", exc.strerror or str(exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(str(path), where, str(problem)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "(top level)", "expected a mapping of keys")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``--set key.sub=value``; the value is YAML (``[xz, zstd]``, ``42``, ``true``)."""
    if "=" not in text:
        raise ConfigError("--set", text, "expected key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError("--set", key, "empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
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
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(str(path), "(file)", f"readable by others (mode {stat.S_IMODE(mode):04o}); "
                          f"chmod 600 {path}")
    for parent in path.resolve().parents:
        if (parent / ".git").exists():
            raise ConfigError(str(path), "(file)", f"inside the git checkout {parent}: secrets "
                              "belong outside it (build.py network init DIR)")
    return _load_yaml(path)


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
    secrets_file = data.get("secrets_file")
    if isinstance(secrets_file, str) and secrets_file:
        named_in = sources.get("secrets_file", "config")
        relative_to = Path(named_in).resolve().parent if named_in.endswith((".yaml", ".yml")) else base_dir
        path = (relative_to / Path(secrets_file).expanduser())
        _merge(data, _load_secrets_file(path, named_in), str(path), sources)
    for text in layers.overrides:
        key_path, value = parse_override(text)
        nested: dict[str, Any] = {}
        cursor = nested
        for part in key_path[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[key_path[-1]] = value
        _merge(data, nested, "--set", sources)
    built = _build(Config, data, "", sources)
    assert isinstance(built, Config)
    cfg = dataclasses.replace(built, base_dir=base_dir)
    _check_config(cfg, sources)
    keys_file = cfg.admin.authorized_keys_file
    if keys_file:
        path = (base_dir / keys_file).expanduser()
        source = sources.get("admin.authorized_keys_file", "defaults")
        try:
            lines = [ln.strip() for ln in path.read_text().splitlines()]
        except OSError as exc:
            raise ConfigError(source, "admin.authorized_keys_file",
                              f"{path}: {exc.strerror or exc}") from None
        keys = tuple(ln for ln in lines if ln and not ln.startswith("#"))
        for key in keys:
            if not _looks_like_ssh_key(key):
                raise ConfigError(str(path), "admin.authorized_keys_file",
                                  f"'{key[:40]}' is not an SSH public key line")
        admin = dataclasses.replace(cfg.admin, authorized_keys=cfg.admin.authorized_keys + keys)
        cfg = dataclasses.replace(cfg, admin=admin)
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.as_dict(), sort_keys=False)


# What templates see: the resolved config as plain data, e.g. ``{{ image.disk_id }}``,
# with every secret blanked: a template cannot put one into the image.
def template_context(cfg: Config) -> dict[str, Any]:
    data = _to_plain(cfg, "")
    data.pop("base_dir", None)
    assert isinstance(data, dict)
    return data



def extra_repo_key(cfg: Config, index: int) -> Path:
    return (cfg.base_dir / cfg.apt.extra_repos[index].key_file).expanduser()
