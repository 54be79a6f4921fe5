# SPDX-License-Identifier: MIT
"""Loading the config: built-in defaults, then site files, then the secrets file they name,
then ``--set key=value``, merged while remembering which layer set each dotted key, so that
an error names the file the bad value came from:
``site.yaml: vpn.backends[0]: 'peervpnn' is not one of tinc, yggdrasil, peervpn, cjdns``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import math
import re
import stat
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from firstboot import checks

from ..errors import ConfigError
from . import yamlfile
from .schema import NOT_KEYS, Config, source_of
from .validation import check_config

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


def _got(value: Any, secret: bool) -> str:
    """How a message shows a wrong value: shortened, and never a secret's."""
    if secret:
        return "" if isinstance(value, str) else " (write it in quotes)"
    hint = " (write it in quotes)" if isinstance(value, bool | int | float) else ""
    return f", got {checks.shown(value)}{hint}"


def _convert(tp: Any, value: Any, key: str, sources: Mapping[str, str], secret: bool = False) -> Any:
    source = source_of(sources, key)
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
    source = source_of(sources, prefix) if prefix else "config"
    if not isinstance(data, dict):
        raise ConfigError(source, prefix or "(top level)", f"expected a mapping, got {checks.shown(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in NOT_KEYS}
    for name in data:
        if name not in fields:
            key = f"{prefix}.{name}" if prefix else str(name)
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(fields)}"
            raise ConfigError(source_of(sources, key), checks.shown(key).strip("'"), f"unknown key ({hint})")
    values = {}
    for name, spec in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data and spec.default is not dataclasses.MISSING:
            values[name] = spec.default
            continue
        if name not in data:
            raise ConfigError(source_of(sources, prefix), key, "missing")
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
    (``-c`` may be repeated), then ``--set`` overrides. ``card_layers``: one window's own
    settings (an inventory entry of the flashing station), named by where they came from,
    over the secrets file and under ``--set``."""

    site_files: tuple[Path, ...] = ()
    overrides: tuple[str, ...] = ()
    card_layers: tuple[tuple[str, Mapping[str, Any]], ...] = ()


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
    data = _load_yaml(path)
    if isinstance(data, dict) and "secrets_file" in data:
        raise ConfigError(str(path), "secrets_file", "a secrets file cannot name a secrets file (only a "
                          "site file or --set can); remove the line")
    return data


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
    for source, card_layer in layers.card_layers:
        _merge(data, copy.deepcopy(dict(card_layer)), source, sources)
    for layer in overrides:
        _merge(data, layer, "--set", sources)
    built = _build(Config, data, "", sources)
    assert isinstance(built, Config)
    cfg = dataclasses.replace(built, base_dir=base_dir, origins=dict(sources))
    check_config(cfg, sources)
    keys_file = cfg.admin.authorized_keys_file
    if keys_file:
        path = (base_dir / keys_file).expanduser()
        if not path.is_file():
            raise ConfigError(source_of(sources, "admin.authorized_keys_file"), "admin.authorized_keys_file",
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
