# SPDX-License-Identifier: MIT
"""The names the station hands out, and each window's own settings.

An inventory is a YAML list; each entry is a host name, or a mapping with ``hostname`` and
that window's own settings over the site's (``wifi``, ``vpn``, ``admin.authorized_keys``:
what a card carries; the image's settings cannot differ per card)::

    - lab-1
    - hostname: cafe-1
      wifi: {country: DE, networks: [{ssid: cafe, psk: "..."}]}

Every entry is checked as a whole config before the first card is written, errors naming
the inventory and the entry. A name is taken when its card is complete (the station log
says so) and reserved while a card is written, so two cards never get one name and a card
that fails gives its name back.
"""

from __future__ import annotations

import re
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firstboot import checks

from ..config import Config, ConfigLayers, load_config, yamlfile
from ..errors import ConfigError

PER_CARD = {"wifi": None, "vpn": None, "admin": {"authorized_keys"}}  # None: the whole section


@dataclass(frozen=True)
class Window:
    hostname: str  # "" without an inventory: firstboot names it from its MAC
    config: Config  # the site's config with this window's own settings over it


@dataclass(frozen=True)
class Entry:
    hostname: str
    settings: Mapping[str, Any]
    source: str  # "inventory.yaml: [3]", for messages


def _key(key: object) -> str:
    """A key as a message shows it: plain when it looks like one, quoted and cut otherwise."""
    return str(key) if isinstance(key, str) and re.fullmatch(r"[a-z0-9_]{1,40}", key) else checks.shown(key)


def parse_entries(data: Any, path: Path) -> list[Entry]:
    if not isinstance(data, list):
        raise ConfigError(str(path), "(top level)", "expected a list of host names or {hostname: …} entries")
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for number, item in enumerate(data):
        where = f"[{number}]"
        settings: dict[str, Any] = {}
        if isinstance(item, dict):
            settings = {k: v for k, v in item.items() if k != "hostname"}
            name = item.get("hostname")
        else:
            name = item
        if not isinstance(name, str):
            raise ConfigError(str(path), f"{where}.hostname", "expected a host name (a string)")
        try:
            checks.hostname(name)
        except checks.InvalidValue as exc:
            raise ConfigError(str(path), f"{where}.hostname", str(exc)) from None
        if name in seen:
            raise ConfigError(str(path), f"{where}.hostname", f"{name} is entry [{seen[name]}] already")
        seen[name] = number
        for key, value in settings.items():
            if str(key) not in PER_CARD:
                raise ConfigError(str(path), f"{where}.{_key(key)}", "not a per-window setting "
                                  "(an entry may set wifi, vpn, admin.authorized_keys)")
            allowed = PER_CARD[str(key)]
            if allowed is not None:
                extra = (sorted(str(k) for k in value if k not in allowed) if isinstance(value, dict)
                         else ["(not a mapping)"])
                if extra:
                    raise ConfigError(str(path), f"{where}.{key}.{_key(extra[0])}",
                                      f"not a per-window setting (only {key}.{', '.join(sorted(allowed))})")
        entries.append(Entry(name, settings, f"{path}: {where}"))
    return entries


def load_entries(path: Path) -> list[Entry]:
    return parse_entries(yamlfile.load(path), path)


def windows(layers: ConfigLayers, entries: Iterable[Entry], path: Path) -> dict[str, Window]:
    """Each entry's whole config, checked now: a bad entry stops the station before it
    starts. An entry that sets a secret (the schema's secret fields: a Wi-Fi or VPN key) makes
    the inventory a secrets file: it must be private to its owner."""
    site_secrets = set(load_config(layers).secret_values())
    found = {e.hostname: Window(e.hostname, load_config(ConfigLayers(
        layers.site_files, layers.overrides, ((e.source, e.settings),)))) for e in entries}
    mode = path.stat().st_mode
    own_secrets = any(set(w.config.secret_values()) - site_secrets for w in found.values())
    if own_secrets and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(str(path), "(file)", f"holds Wi-Fi or VPN secrets and is readable by others "
                          f"(mode {stat.S_IMODE(mode):04o}); chmod 600 {path}")
    return found


@dataclass
class Names:
    """Free names in inventory order; thread-safe (cards are written in parallel)."""

    order: list[str]
    taken: set[str] = field(default_factory=set)  # complete cards, from the station log
    reserved: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self) -> str | None:
        with self._lock:
            for name in self.order:
                if name not in self.taken and name not in self.reserved:
                    self.reserved.add(name)
                    return name
            return None

    def give_back(self, name: str) -> None:
        with self._lock:
            self.reserved.discard(name)

    def take(self, name: str) -> None:
        with self._lock:
            self.reserved.discard(name)
            self.taken.add(name)

    def free(self) -> int:
        with self._lock:
            return len([n for n in self.order if n not in self.taken and n not in self.reserved])
