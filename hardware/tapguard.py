# SPDX-License-Identifier: MIT
"""Notices another station sending with this window's tap0 MAC (ewindow-tap-guard.service).

PeerVPN's PSK is its whole access control, and its switch learns MACs from what it sees: a
station with the PSK that sends from this window's tap MAC takes this window's traffic (README
"Who is trusted on layer 2"). Such a station cannot be seen by its answers: a reply to this
window's own address stays inside it, and one with the same MAC and addresses answers
nothing. What cannot be hidden is a frame it sends to everyone (neighbour discovery, MLD,
any multicast or broadcast): it comes in on this window's tap0 with this window's own MAC as
its source.

A packet socket on tap0 with a classic BPF filter passes only incoming frames whose source
MAC is tap0's own, and this window's own multicast and broadcast frames going out, so the
Python process wakes for those alone, not for the calls' traffic. An incoming frame equal to
one this window sent in the last LOOP_S seconds is its own come back (a switch that floods a
frame back to its sender), not another station's. Each other one is recorded in STATE_FILE as
the CLOCK_BOOTTIME second it was seen and a count; the agent (unprivileged, no capabilities)
reads it. The unit runs as a dynamic user with CAP_NET_RAW only. Linux packet filters:
https://www.kernel.org/doc/html/latest/networking/filter.html
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import struct
import sys
import time
from pathlib import Path

log = logging.getLogger("ewindow-tap-guard")
STATE_FILE = Path("/run/ewindow-tap-guard/seen.json")
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE: the frame's packet type
PACKET_OUTGOING = 4
# classic BPF opcodes (linux/bpf_common.h)
LD_W_ABS, LD_H_ABS, LD_B_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x28, 0x30, 0x15, 0x45, 0x06
CAPTURE = 96  # bytes of a matching frame handed up: enough to tell frames apart
LOOP_S = 5.0


def own_mac_filter(mac: str) -> bytes:
    """The filter program: incoming frames whose source MAC (bytes 6-11) is ``mac``, and
    outgoing frames to a group address (the first byte's low bit), kept to recognise loops.
    Jumps count instructions from the next one."""
    raw = bytes.fromhex(mac.replace(":", ""))
    high, low = struct.unpack("!IH", raw)
    program = [
        (LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),  # 0
        (JEQ_K, 0, 2, PACKET_OUTGOING),  # 1: outgoing → 2, incoming → 4
        (LD_B_ABS, 0, 0, 0),  # 2: the destination MAC's first byte
        (JSET_K, 4, 5, 1),  # 3: a group address → keep (8), else drop (9)
        (LD_W_ABS, 0, 0, 6),  # 4: the source MAC
        (JEQ_K, 0, 3, high),  # 5
        (LD_H_ABS, 0, 0, 10),  # 6
        (JEQ_K, 0, 1, low),  # 7
        (RET_K, 0, 0, CAPTURE),  # 8
        (RET_K, 0, 0, 0),  # 9
    ]
    return b"".join(struct.pack("HBBI", *instruction) for instruction in program)


def attach(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER takes a struct sock_fprog: the length and a pointer to the program."""
    import ctypes  # noqa: PLC0415 - only here: the pointer the kernel reads the program from

    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def record(state_file: Path, count: int) -> None:
    tmp = state_file.with_name(f".{state_file.name}.tmp")
    tmp.write_text(json.dumps({"seen_boottime": time.clock_gettime(time.CLOCK_BOOTTIME), "count": count}))
    os.chmod(tmp, 0o644)
    tmp.replace(state_file)


class Loops:
    """This window's own group frames of the last LOOP_S seconds."""

    def __init__(self) -> None:
        self.sent: dict[bytes, float] = {}

    def sent_now(self, frame: bytes, now: float) -> None:
        self.sent = {f: t for f, t in self.sent.items() if now - t <= LOOP_S}
        self.sent[frame] = now

    def came_back(self, frame: bytes, now: float) -> bool:
        sent = self.sent.get(frame)
        return sent is not None and now - sent <= LOOP_S


def watch(interface: str, state_file: Path) -> None:
    mac = (Path("/sys/class/net") / interface / "address").read_text().strip()
    own = bytes.fromhex(mac.replace(":", ""))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        attach(sock, own_mac_filter(mac))
        sock.bind((interface, 0))
        log.info("watching %s for frames from its own MAC %s", interface, mac)
        count, loops = 0, Loops()
        while True:
            frame, address = sock.recvfrom(CAPTURE)
            now = time.monotonic()
            if address[2] == PACKET_OUTGOING:
                loops.sent_now(frame, now)
                continue
            if frame[6:12] != own:  # a frame that came before the filter was attached
                continue
            if loops.came_back(frame, now):
                log.info("%s: this window's own frame came back (%s)", interface, frame[:60].hex())
                continue
            count += 1
            if count == 1 or count % 100 == 0:
                log.warning("<4>%s: a frame from another station with this window's MAC %s (%d so far): %s",
                            interface, mac, count, frame[:60].hex())
            record(state_file, count)


def seen_recently(state_file: Path = STATE_FILE, within_s: float = 60.0) -> bool:
    """The agent's question: did such a frame come in the last ``within_s`` seconds?"""
    try:
        seen = float(json.loads(state_file.read_text())["seen_boottime"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return time.clock_gettime(time.CLOCK_BOOTTIME) - seen <= within_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ewindow-tap-guard", description=__doc__.splitlines()[0])
    parser.add_argument("--interface", default="tap0")
    parser.add_argument("--state-file", type=Path, default=STATE_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        watch(args.interface, args.state_file)
    except FileNotFoundError:
        print(f"{args.interface}: no such interface", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
