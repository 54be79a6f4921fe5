# SPDX-License-Identifier: MIT
"""A Raspberry Pi Imager repository file for the image (``NAME.rpi-imager.json``).

An admin opens it with ``rpi-imager --repo URL-or-file`` and picks the EWindow image from
"Choose OS"; Imager downloads the compressed image, checks ``image_download_sha256`` and,
after writing, ``extract_sha256`` (a wrong one makes it abort and spoil the card's first MB,
so both are the files' own). Format: the ``os_list`` of
https://github.com/raspberrypi/rpi-imager/blob/main/doc/json-schema/os-list-schema.json;
``devices`` holds Imager's device tags, so it lists the image only for a Pi 3, Zero 2 W, 4 or
400 (``pi3-64bit``, ``pi4-64bit``). No ``init_format``: Imager's OS customisation writes a
firstrun.sh that this image does not run; a window is personalised by ``build.py
personalise`` or a card file.
"""

from __future__ import annotations

import datetime
import urllib.parse
from pathlib import Path
from typing import Any

# Imager's device tags for the boards the arm64 image boots (the Zero 2 W is a pi3 to Imager).
DEVICES = {"arm64": ["pi4-64bit", "pi3-64bit"]}

# A window pane on a screen: the icon Imager shows beside the name.
ICON_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
<rect x="4" y="8" width="56" height="40" rx="4" fill="#1d3557"/>
<rect x="10" y="14" width="20" height="13" fill="#a8dadc"/>
<rect x="34" y="14" width="20" height="13" fill="#a8dadc"/>
<rect x="10" y="30" width="20" height="13" fill="#a8dadc"/>
<rect x="34" y="30" width="20" height="13" fill="#a8dadc"/>
<rect x="24" y="50" width="16" height="6" fill="#1d3557"/><circle cx="50" cy="53" r="3" fill="#2a9d8f"/>
</svg>
"""


def file_url(base_url: str, path: Path) -> str:
    """Where Imager finds ``path``: under ``base_url`` when the release is published there,
    else the file on this machine (file://), for Imager on the build host."""
    if base_url:
        return urllib.parse.urljoin(base_url if base_url.endswith("/") else base_url + "/",
                                    urllib.parse.quote(path.name))
    return path.resolve().as_uri()


def os_list(*, title: str, description: str, arch: str, epoch: int, image_size: int, image_sha256: str,
            download: Path, download_sha256: str, icon: Path, base_url: str,
            icon_url: str = "") -> dict[str, Any]:
    release_date = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d")
    return {"os_list": [{
        "name": title,
        "description": description,
        "icon": icon_url or file_url(base_url, icon),
        "url": file_url(base_url, download),
        "extract_size": image_size,
        "extract_sha256": image_sha256,
        "image_download_size": download.stat().st_size,
        "image_download_sha256": download_sha256,
        "release_date": release_date,
        "devices": DEVICES.get(arch, []),
    }]}
