# SPDX-License-Identifier: MIT
"""What can be set: the config's schema as frozen dataclasses and enums, one per section of
``defaults.yaml`` (README "Config reference"), and the views of a resolved config that the
rest of the builder uses (plain data, template context, secrets).

Read this first; :mod:`.loading` fills these from YAML layers, :mod:`.validation` checks the
values.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fields import is_secret
from .updates import repo_key_armour, schedule


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
    hub_addresses: tuple[str, ...]
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
    vpn_interval_s: float


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
    source_date_epoch: int = 0  # the image's clock (README "Reproducing an image"); 0 = last commit


@dataclass(frozen=True)
class ReleaseConfig:
    """The release files beside the image (README "Releases and Raspberry Pi Imager")."""

    title: str  # the name Raspberry Pi Imager shows
    description: str
    base_url: str  # where out/'s files will be published; "" = file:// URLs of out/
    icon_url: str  # "" = the icon written beside the image, under base_url
    signing_key: str  # gpg key that signs SHA256SUMS; "" = nothing signed
    gnupg_home: str  # its keyring folder; "" = gpg's default


@dataclass(frozen=True)
class UpdatesConfig:
    """Unattended upgrades on the window (README "Updates")."""

    repo: str  # the deployment's apt repository (build.py repo), http(s) URL; "" = Debian only
    key: str  # its public key; "" = ewindow-archive-keyring.gpg beside the secrets file
    window: str  # local time "HH:MM-HH:MM" in which upgrades (and the reboots they ask for) run
    reboot: bool  # reboot in the window when a package asks for it (/run/reboot-required)


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
    release: ReleaseConfig
    updates: UpdatesConfig
    # Where relative paths in the site file are resolved; not a YAML key.
    base_dir: Path = field(default=Path("."), compare=False)
    # Which layer set each dotted key (for messages about values checked later); not a key.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def origin(self, key: str) -> str:
        """The file (or ``--set``, ``defaults``) that set ``key``."""
        return source_of(self.origins, key)

    def blame(self, key: str) -> str:
        """Where ``key`` should have been written when a check finds it missing: the layer that
        set it, else (for a secret) the secrets file, else the last site file, never the
        built-in defaults the admin did not write."""
        found = self.origin(key)
        if found != "defaults":
            return found
        if is_secret(type(self), key) and self.secrets_file:
            return str((self.base_dir / self.secrets_file).expanduser())
        site_files = [o for o in self.origins.values() if o.endswith((".yaml", ".yml"))]
        return site_files[-1] if site_files else "the site file (none given: -c site.yaml)"

    def as_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """The resolved config as plain data (what ``build.py config`` prints), secrets
        replaced by "<secret>" unless ``redact`` is False (personalisation only)."""
        data = to_plain(self, REDACTED if redact else None)
        for name in NOT_KEYS:
            data.pop(name, None)
        assert isinstance(data, dict)
        return data

    def secret_values(self) -> list[str]:
        """Values the image must never contain (VPN keys, Wi-Fi passwords)."""
        found: list[str] = []
        collect_secrets(self, found)
        return [value for value in found if value]

    def digest(self) -> str:
        """A stable hash of the resolved config (secrets redacted), in build-info.json."""
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def image_digest(self) -> str:
        """The hash of what the image's bytes follow from: the config without ``release``
        (where the files are published and who signs them changes no byte of the image)."""
        data = self.as_dict()
        data.pop("release", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# --- views of a resolved config ---------------------------------------------------------------


def source_of(sources: Mapping[str, str], key: str) -> str:
    """The layer that set ``key`` or the nearest mapping or list above it
    (``wifi.networks[0].psk`` → the file that set ``wifi.networks``)."""
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    for end in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:end]))
        if found:
            return found
    return "defaults"


def to_plain(value: Any, redact: str | None = None) -> Any:
    """Plain data; secret fields that are set become ``redact`` unless it is None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: redact if redact is not None and f.metadata.get("secret") and getattr(value, f.name)
                else to_plain(getattr(value, f.name), redact)
                for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_plain(v, redact) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def collect_secrets(value: Any, found: list[str]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("secret") and isinstance(item, str):
                found.append(item)
            else:
                collect_secrets(item, found)
    elif isinstance(value, tuple):
        for item in value:
            collect_secrets(item, found)


def agent_settings(cfg: Config) -> dict[str, Any]:
    """/etc/ewindow/agent.json: the site's agent section plus what the agent derives from
    the rest of the config (the VPN backends to probe)."""
    agent = to_plain(cfg.agent)
    agent["probe"]["vpn_backends"] = [b.value for b in cfg.vpn.backends]
    assert isinstance(agent, dict)
    return agent


# What templates see: the resolved config as plain data, e.g. ``{{ image.disk_id }}``,
# with every secret blanked: a template cannot put one into the image.
def template_context(cfg: Config) -> dict[str, Any]:
    """The config as the stages' templates see it, with values computed from it: the
    deployment repository's key as armour (``updates_repo_key``, "" without ``updates.repo``)
    and the upgrade timer's start and spread (``updates_schedule``)."""
    data = to_plain(cfg, "")
    for name in NOT_KEYS:
        data.pop(name, None)
    assert isinstance(data, dict)
    data["updates_repo_key"] = repo_key_armour(cfg)
    data["updates_schedule"] = schedule(cfg.updates.window)
    return data


def extra_repo_key(cfg: Config, index: int) -> Path:
    return (cfg.base_dir / cfg.apt.extra_repos[index].key_file).expanduser()
