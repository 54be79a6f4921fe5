# SPDX-License-Identifier: MIT
"""Stage definitions: numbered folders under ``stages/``, each with a ``stage.yaml``.

A stage.yaml is a jinja2 template over the resolved config (so packages and hooks can depend
on it), rendered and then parsed. Keys, all optional except ``description``:

- ``bootstrap: true``  the stage creates the root filesystem with mmdebstrap (first stage only)
- ``packages: [...]``  Debian packages this stage installs
- ``host: [...]``      shell commands run on the build host; ``$ROOTFS`` is the target tree.
                       Preferred over chroot commands: nothing is emulated.
- ``overlay: NAME``    copy ``overlays/NAME/`` into the target; ``*.j2`` files are rendered
- ``files: [...]``     ``{path, mode, owner, group, source}`` for overlay files and directories
- ``copy: [...]``      ``{source, target}``: a folder of the checkout (e.g. ``firstboot``)
                       copied verbatim (no templating, no ``__pycache__``), root-owned
- ``chroot: [...]``    shell commands run inside the target under qemu-user (slow; avoid)
- ``enable: [...]``    systemd units enabled offline with ``systemctl --root``

Within a stage they run in this order: packages, host, overlay, chroot, enable.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ...config import yamlfile
from ...errors import ConfigError

KNOWN_KEYS = {"description", "bootstrap", "packages", "host", "overlay", "files", "copy", "chroot",
              "enable"}


@dataclass(frozen=True)
class FileSpec:
    """Mode and owner of one overlay path; ``source`` names a template for a computed path."""

    path: str
    mode: int | None = None
    owner: str = "root"
    group: str = "root"
    source: str | None = None


@dataclass(frozen=True)
class CopySpec:
    """A folder of the checkout installed as it is, e.g. the firstboot package."""

    source: str  # relative to the checkout
    target: str  # absolute path in the image


@dataclass(frozen=True)
class Stage:
    name: str
    directory: Path
    description: str
    bootstrap: bool
    packages: tuple[str, ...]
    host: tuple[str, ...]
    overlay: str | None
    files: tuple[FileSpec, ...]
    copies: tuple[CopySpec, ...]
    chroot: tuple[str, ...]
    enable: tuple[str, ...]
    rendered: str  # the rendered stage.yaml text, part of the stage's cache key

    @property
    def stage_file(self) -> Path:
        return self.directory / "stage.yaml"


class UnsafeValue(ValueError):
    """A config value that would change the structure of the stage.yaml it lands in."""


def _one_line(value: Any) -> Any:
    """stage.yaml's ``finalize``: every value printed into it stays on its line. The config's
    checks already refuse such values; this keeps one mistake in a check from becoming a new
    YAML key or a second shell command."""
    if isinstance(value, str) and not value.isprintable():
        raise UnsafeValue(f"{value[:40]!r} has a line break or control character")
    return value


def template_env(search_path: Path, *, one_line_values: bool = False) -> jinja2.Environment:
    """Templates over the config. ``| sh`` quotes a value for the shell (every value in a
    ``host:`` or ``chroot:`` command goes through it)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_one_line if one_line_values else None,
    )
    env.filters["sh"] = shlex.quote
    return env


def template_error_where(exc: jinja2.TemplateError, template_file: Path) -> str:
    """``line N`` of the template that failed. Syntax errors carry it; undefined-variable
    errors only in the traceback, where jinja2 maps frames to the template's file and line."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(template_file):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"line {line}" if line else "(template)"


def _str_list(data: Mapping[str, Any], key: str, source: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str | None) for v in value):
        raise ConfigError(source, key, "expected a list of strings")
    return tuple(v.strip() for v in value if v and v.strip())


def _parse_mode(value: Any, source: str, key: str) -> int | None:
    if value is None:
        return None
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise ConfigError(source, key, f"'{value}' is not an octal mode like \"0644\"") from None
    if not 0 <= mode <= 0o7777:
        raise ConfigError(source, key, f"'{value}' is out of range")
    return mode


def _mapping_entries(data: Mapping[str, Any], name: str, source: str,
                     shape: str) -> list[tuple[str, dict[str, Any]]]:
    """The list under ``name`` as (``name[i]``, mapping) pairs; anything else is an error."""
    entries = data.get(name) or []
    if not isinstance(entries, list):
        raise ConfigError(source, name, f"expected a list of {shape}")
    found = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(source, f"{name}[{index}]", f"expected a mapping {shape}")
        found.append((f"{name}[{index}]", entry))
    return found


def _parse_files(data: Mapping[str, Any], source: str) -> tuple[FileSpec, ...]:
    specs = []
    for key, entry in _mapping_entries(data, "files", source, "{path, mode, owner, group}"):
        if not isinstance(entry.get("path"), str):
            raise ConfigError(source, key, "expected a mapping with a 'path'")
        unknown = set(entry) - {"path", "mode", "owner", "group", "source"}
        if unknown:
            raise ConfigError(source, f"{key}.{sorted(unknown)[0]}", "unknown key")
        path = entry["path"]
        if not path.startswith("/") or ".." in Path(path).parts:
            raise ConfigError(source, f"{key}.path", f"'{path}' must be absolute, without '..'")
        owner = str(entry.get("owner", "root"))
        specs.append(FileSpec(
            path=path.rstrip("/") or "/",
            mode=_parse_mode(entry.get("mode"), source, f"{key}.mode"),
            owner=owner,
            group=str(entry.get("group", owner)),
            source=entry.get("source"),
        ))
    return tuple(specs)


def _parse_copies(data: Mapping[str, Any], source: str) -> tuple[CopySpec, ...]:
    copies = []
    for key, entry in _mapping_entries(data, "copy", source, "{source, target}"):
        if set(entry) != {"source", "target"}:
            raise ConfigError(source, key, "expected a mapping with 'source' and 'target'")
        src, target = str(entry["source"]), str(entry["target"])
        if src.startswith("/") or ".." in Path(src).parts:
            raise ConfigError(source, f"{key}.source", f"'{src}' must be relative to the checkout")
        if not target.startswith("/") or ".." in Path(target).parts:
            raise ConfigError(source, f"{key}.target", f"'{target}' must be absolute, without '..'")
        copies.append(CopySpec(src.rstrip("/"), target.rstrip("/")))
    return tuple(copies)


def load_stage(directory: Path, context: Mapping[str, Any]) -> Stage:
    """Render and parse one stage folder's stage.yaml."""
    stage_file = directory / "stage.yaml"
    source = str(stage_file)
    try:
        rendered = template_env(directory, one_line_values=True).get_template("stage.yaml").render(context)
    except UnsafeValue as exc:
        raise ConfigError(source, "(template)", f"a config value cannot go in here: {exc}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(source, template_error_where(exc, stage_file), str(exc)) from None
    except OSError as exc:
        raise ConfigError(source, "(file)", exc.strerror or str(exc)) from None
    data = yamlfile.parse(rendered, source) or {}
    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", "expected a mapping")
    unknown = set(data) - KNOWN_KEYS
    if unknown:
        known = ", ".join(sorted(KNOWN_KEYS))
        raise ConfigError(source, sorted(unknown)[0], f"unknown key (known: {known})")
    if not isinstance(data.get("description"), str):
        raise ConfigError(source, "description", "missing (one line saying what the stage does)")
    overlay = data.get("overlay")
    if overlay is not None and (not isinstance(overlay, str) or "/" in overlay):
        raise ConfigError(source, "overlay", "expected the name of a folder under overlays/")
    bootstrap = data.get("bootstrap", False)
    if not isinstance(bootstrap, bool):
        raise ConfigError(source, "bootstrap", "expected true or false")
    return Stage(
        name=directory.name,
        directory=directory,
        description=data["description"],
        bootstrap=bootstrap,
        packages=_str_list(data, "packages", source),
        host=_str_list(data, "host", source),
        overlay=overlay,
        files=_parse_files(data, source),
        copies=_parse_copies(data, source),
        chroot=_str_list(data, "chroot", source),
        enable=_str_list(data, "enable", source),
        rendered=rendered,
    )


def load_stages(stages_dir: Path, context: Mapping[str, Any]) -> list[Stage]:
    """All stages in explicit numeric order (folder names ``NN-name``)."""
    folders = sorted(p for p in stages_dir.iterdir() if p.is_dir() and (p / "stage.yaml").exists())
    stages = []
    for folder in folders:
        prefix = folder.name.split("-", 1)[0]
        if not prefix.isdigit():
            raise ConfigError(str(folder), "(name)", "stage folders are named NN-name, e.g. 20-network")
        stages.append(load_stage(folder, context))
    if not stages:
        raise ConfigError(str(stages_dir), "(folder)", "no stages found")
    if not stages[0].bootstrap or any(s.bootstrap for s in stages[1:]):
        raise ConfigError(str(stages[0].stage_file), "bootstrap",
                          "exactly the first stage must have 'bootstrap: true'")
    return stages


def digest_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
