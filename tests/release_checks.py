# SPDX-License-Identifier: MIT
"""Checks of the release files against independent readers: the Imager list against the
schema of what Imager needs (and every hash against the files), the SBOM with spdx-tools'
SPDX 2.3 parser and validator. Shared by the fast tests and the built-image tests."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
from spdx_tools.spdx.model.document import Document
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

SCHEMA = Path(__file__).with_name("imager_os_list.schema.json")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def local_file(url: str, out_dir: Path) -> Path:
    """The file behind a list's URL: file:// as is, a published URL by its name in out/."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    return out_dir / urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])


def check_imager_list(path: Path, image: Path) -> dict[str, Any]:
    """Valid for Imager, and every size and hash is the files' own; returns the entry."""
    listing = json.loads(path.read_text())
    jsonschema.validate(listing, json.loads(SCHEMA.read_text()))
    (entry,) = listing["os_list"]
    download = local_file(entry["url"], path.parent)
    assert entry["image_download_size"] == download.stat().st_size
    assert entry["image_download_sha256"] == sha256(download)
    assert entry["extract_size"] == image.stat().st_size
    assert entry["extract_sha256"] == sha256(image)
    assert local_file(entry["icon"], path.parent).read_text().startswith("<svg")
    return dict(entry)


def check_sbom(path: Path) -> Document:
    """Parsed and validated as SPDX 2.3 by spdx-tools; no validation message."""
    document = parse_file(str(path))
    messages = [m.validation_message for m in validate_full_spdx_document(document)]
    assert messages == []
    return document
