# SPDX-License-Identifier: MIT
"""sd_notify(3) without a library: the protocol is a datagram to $NOTIFY_SOCKET, which systemd
documents as stable (man/notify-selfcontained-example.py)."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send ``READY=1``, ``STATUS=…``, ``WATCHDOG=1``, …; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True
