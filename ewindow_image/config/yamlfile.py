# SPDX-License-Identifier: MIT
"""Every YAML file the tool reads (site and secrets files, inventories, stage.yaml,
package.yaml) goes through here: bounded in size, UTF-8, no aliases, no duplicate keys, no
deep nesting. YAML aliases make a 453-byte file expand to gigabytes ("billion laughs"), a
duplicate key silently drops the first value, and deep nesting ends in a RecursionError.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from ..errors import ConfigError

MAX_BYTES = 1 << 20  # a site file is a few KiB; an inventory of 10 000 windows ~0.5 MiB
MAX_DEPTH = 32


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases, duplicate keys or nesting beyond :data:`MAX_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed here",
                                              event.start_mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                              self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so
                break
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {str(key)[:40]!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_text(path: Path, *, max_bytes: int = MAX_BYTES, field: str = "(file)") -> str:
    """A user's text file: at most ``max_bytes``, UTF-8; errors name the file."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would wait for a writer forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(str(path), field, "not a regular file")
            raw = stream.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(str(path), field, exc.strerror or str(exc)) from None
    if len(raw) > max_bytes:
        raise ConfigError(str(path), field, f"larger than {max_bytes // 1024} KiB; not a file of this kind")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(str(path), f"line {line}", "not UTF-8 text") from None


def parse(text: str, source: str) -> Any:
    """The document in ``text``; a YAML error names ``source`` and the line."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(source, where, str(problem)) from None
    except RecursionError:
        raise ConfigError(source, "(file)", "nested too deeply") from None


def load(path: Path, *, max_bytes: int = MAX_BYTES) -> Any:
    return parse(read_text(path, max_bytes=max_bytes), str(path))
