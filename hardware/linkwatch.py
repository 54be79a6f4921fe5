# SPDX-License-Identifier: MIT
"""Link changes from rtnetlink, with sysfs as the ground truth.

udev reports only add/remove for network interfaces: carrier and operstate changes arrive only
as RTM_NEWLINK on the RTNLGRP_LINK multicast group (systemd/systemd#11830). A plain
AF_NETLINK socket bound to that group needs no privileges and no library. Each message only
says "look again": the watcher re-reads /sys/class/net/<if>/operstate, so lost or reordered
messages cannot leave a wrong state, and a full resync runs at start, periodically, and when
the socket overflows (ENOBUFS).
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

NETLINK_ROUTE = 0
RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME = 3
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
RTATTR = struct.Struct("=HH")  # length, type
RESYNC = "*"  # "read every interface again"


def parse_link_messages(data: bytes) -> Iterator[str]:
    """The interface names in a buffer of RTM_NEWLINK/RTM_DELLINK messages."""
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _flags, _seq, _port = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            attr = offset + NLMSG_HEADER.size + IFINFOMSG.size
            end = offset + length
            while attr + RTATTR.size <= end:
                attr_len, attr_type = RTATTR.unpack_from(data, attr)
                if attr_len < RTATTR.size:
                    break
                if attr_type == IFLA_IFNAME:
                    yield data[attr + RTATTR.size:attr + attr_len].split(b"\0", 1)[0].decode()
                attr += (attr_len + 3) & ~3
        offset += (length + 3) & ~3


def read_operstate(name: str, root: Path = Path("/sys")) -> bool:
    """True when the interface is up in the RFC 2863 sense (not merely IFF_UP)."""
    try:
        return (root / "class/net" / name / "operstate").read_text().strip() in ("up", "unknown") and \
            _carrier(root / "class/net" / name)
    except OSError:
        return False


def _carrier(entry: Path) -> bool:
    try:
        return (entry / "carrier").read_text().strip() == "1"
    except OSError:  # EINVAL while administratively down
        return False


class LinkWatcher:
    """Calls ``on_change(name)`` from its own thread for every link message (``"*"`` after an
    overflow: read everything again)."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        self.on_change = on_change
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_LINK))
        self.thread = threading.Thread(target=self._run, name="linkwatch", daemon=True)
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def close(self) -> None:
        self.sock.close()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped messages: resync
                    self.on_change(RESYNC)
                    continue
                return  # closed
            for name in parse_link_messages(data):
                self.on_change(name)
