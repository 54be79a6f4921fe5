# SPDX-License-Identifier: MIT
"""An OpenPGP public key file as ASCII armour (RFC 4880 §6, https://www.rfc-editor.org/rfc/rfc4880#section-6):
how the image keeps the deployment repository's key in /etc/apt/keyrings (apt reads an
armoured key from a ``.asc`` file named in ``Signed-By``)."""

from __future__ import annotations

import base64

BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
END = "-----END PGP PUBLIC KEY BLOCK-----"


def crc24(data: bytes) -> int:
    """RFC 4880 §6.1."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def packet_tags(data: bytes) -> list[int]:
    """The tags of a binary OpenPGP packet stream (RFC 4880 §4.2, old and new format), which
    must end where the data ends; ValueError otherwise. Partial lengths are for data
    packets, never in a key."""
    tags, at = [], 0
    while at < len(data):
        header = data[at]
        if not header & 0x80:
            raise ValueError(f"no OpenPGP packet at byte {at}")
        if header & 0x40:  # new format: a one-, two- or five-octet length
            tag, first = header & 0x3F, data[at + 1] if at + 1 < len(data) else 255
            if 224 <= first < 255 or (first == 255 and at + 6 > len(data)):
                raise ValueError("a truncated or partial-length packet")
            if first < 192:
                length, at = first, at + 2
            elif first < 224:
                second = data[at + 2] if at + 2 < len(data) else 0
                length, at = ((first - 192) << 8) + second + 192, at + 3
            else:
                length, at = int.from_bytes(data[at + 2:at + 6], "big"), at + 6
        else:
            tag, size = (header >> 2) & 0x0F, {0: 1, 1: 2, 2: 4}.get(header & 3)
            if size is None or at + 1 + size > len(data):
                raise ValueError("a truncated or indeterminate-length packet")
            length, at = int.from_bytes(data[at + 1:at + 1 + size], "big"), at + 1 + size
        if at + length > len(data):
            raise ValueError("a truncated packet")
        tags.append(tag)
        at += length
    return tags


def is_public_key(data: bytes) -> bool:
    """A whole binary OpenPGP packet stream that starts with a public-key packet (tag 6)."""
    try:
        tags = packet_tags(data)
    except ValueError:
        return False
    return bool(tags) and tags[0] == 6


def armored_public_key(data: bytes) -> str:
    """``data`` (a key file: armoured already, or binary as ``gpg --export`` writes it) as
    armour; ValueError when it is neither."""
    if data.lstrip().startswith(BEGIN.encode()):
        text = data.decode("ascii")
        if END not in text:
            raise ValueError("an armoured key without its END line")
        return text.strip() + "\n"
    if not is_public_key(data):
        raise ValueError("not an OpenPGP public key (gpg --export writes one)")
    body = base64.b64encode(data).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    checksum = base64.b64encode(crc24(data).to_bytes(3, "big")).decode()
    return "\n".join([BEGIN, "", *lines, f"={checksum}", END]) + "\n"
