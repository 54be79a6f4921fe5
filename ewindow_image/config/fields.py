# SPDX-License-Identifier: MIT
"""What the schema's dataclasses say about a dotted key."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any


def is_secret(root: type, key: str) -> bool:
    """``key`` (``vpn.psk``, ``wifi.networks[0].psk``) names a field of ``root`` (or of the
    dataclasses below it) marked secret in its metadata."""
    cls: Any = root
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    for index, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        spec = fields.get(part)
        if spec is None:
            return False
        if index == len(parts) - 1:
            return bool(spec.metadata.get("secret"))
        hint = typing.get_type_hints(cls)[part]
        cls = typing.get_args(hint)[0] if typing.get_origin(hint) in (tuple, list) else hint
    return False
