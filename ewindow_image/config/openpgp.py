# SPDX-License-Identifier: MIT
"""An OpenPGP public key file as ASCII armour (RFC 4880 §6, https://www.rfc-editor.org/rfc/rfc4880#section-6):
how the image keeps the deployment repository's key in /etc/apt/keyrings (apt reads an
armoured key from a ``.asc`` file named in ``Signed-By``)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

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


def packets(data: bytes) -> list[tuple[int, bytes]]:
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
        tags.append((tag, data[at:at + length]))
        at += length
    return tags


PUBLIC_KEY, USER_ID, SIGNATURE = 6, 13, 2
# RFC 4880 §9.1 and RFC 9580 §9.1: RSA, DSA, Elgamal, ECDH, ECDSA, EdDSA(legacy), X25519,
# X448, Ed25519, Ed448
KEY_ALGORITHMS = frozenset({1, 2, 3, 16, 17, 18, 19, 22, 25, 26, 27, 28})


def is_public_key(data: bytes) -> bool:
    """A whole binary OpenPGP packet stream as ``gpg --export`` writes it: a public-key packet
    (version 4, 5 or 6 and a public-key algorithm), then a user id and a signature."""
    try:
        found = packets(data)
    except ValueError:
        return False
    if not found or found[0][0] != PUBLIC_KEY:
        return False
    body = found[0][1]
    tags = {tag for tag, _ in found}
    return (len(body) > 6 and body[0] in (4, 5, 6) and body[5] in KEY_ALGORITHMS
            and USER_ID in tags and SIGNATURE in tags)


MAX_KEY_BYTES = 1 << 20  # a key with its signatures is a few KiB


def dearmor(text: str) -> bytes:
    """The binary packets of an armoured public key block (RFC 4880 §6.2: header lines, a
    blank line, base64, an optional ``=`` CRC-24 line); ValueError when it is not one."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or lines[0] != BEGIN or END not in lines:
        raise ValueError("not an armoured public key block (BEGIN and END PGP PUBLIC KEY BLOCK)")
    body = lines[1:lines.index(END)]
    if "" in body:  # the armour headers end at the first blank line
        body = body[body.index("") + 1:]
    checksum = body.pop() if body and body[-1].startswith("=") else None
    try:
        data = base64.b64decode("".join(body), validate=True)
        if checksum is not None and base64.b64decode(checksum[1:], validate=True) != \
                crc24(data).to_bytes(3, "big"):
            raise ValueError("its CRC-24 checksum does not match")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"a damaged armoured key ({exc})") from None
    return data


def armored_public_key(data: bytes) -> str:
    """``data`` (a key file: armoured already, or binary as ``gpg --export`` writes it) as
    armour; ValueError when it is neither, or not a public key (RFC 4880 packets that start
    with a public-key packet and end where the data ends)."""
    if len(data) > MAX_KEY_BYTES:
        raise ValueError(f"larger than {MAX_KEY_BYTES >> 10} KiB; not a public key")
    if data.lstrip().startswith(BEGIN.encode()):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("an armoured key with non-ASCII bytes") from None
        if not is_public_key(dearmor(text)):
            raise ValueError("the armour holds no OpenPGP public key")
        return text.strip() + "\n"
    if not is_public_key(data):
        raise ValueError("not an OpenPGP public key (gpg --export writes one)")
    body = base64.b64encode(data).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    checksum = base64.b64encode(crc24(data).to_bytes(3, "big")).decode()
    return "\n".join([BEGIN, "", *lines, f"={checksum}", END]) + "\n"


def read_public_key(path: Path) -> str:
    """The armoured public key in the file ``path``; ValueError (with the reason) when the
    file is not a regular file holding one."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ValueError("not a regular file")
        with path.open("rb") as stream:
            return armored_public_key(stream.read(MAX_KEY_BYTES + 1))
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
