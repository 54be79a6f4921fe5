# SPDX-License-Identifier: MIT
"""Well-formed SSH public key lines for tests that need one but never log in with it."""

from __future__ import annotations

import base64
import hashlib
import struct


def ed25519_line(seed: str, comment: str = "") -> str:
    """An ssh-ed25519 line whose 32 key bytes come from ``seed`` (RFC 8709 wire format)."""
    blob = b"".join(struct.pack(">I", len(part)) + part
                    for part in (b"ssh-ed25519", hashlib.sha256(seed.encode()).digest()))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}".rstrip()


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    width = (size.bit_length() + 7) // 8
    length = bytes([size]) if size < 128 else bytes([0x80 | width]) + size.to_bytes(width, "big")
    return bytes([tag]) + length + body


def _der_integer(number: int) -> bytes:
    raw = number.to_bytes(number.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return _der(0x02, raw[1:] if raw[0] == 0 and len(raw) > 1 and not raw[1] & 0x80 else raw)


def rsa_public_key_block(seed: str, bits: int = 2048) -> str:
    """A PEM RSA PUBLIC KEY block (PKCS#1: SEQUENCE of modulus and exponent) shaped like the
    one tincd -K writes; the modulus is made from ``seed``, not a usable key."""
    stream = b"".join(hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(bits // 256))
    modulus = int.from_bytes(stream, "big") | (1 << (bits - 1)) | 1
    encoded = base64.b64encode(_der(0x30, _der_integer(modulus) + _der_integer(65537))).decode()
    lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    return "\n".join(["-----BEGIN RSA PUBLIC KEY-----", *lines, "-----END RSA PUBLIC KEY-----"])
