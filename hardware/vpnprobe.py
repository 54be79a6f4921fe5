# SPDX-License-Identifier: MIT
"""Is the mesh VPN up? Each backend's own peer count, plus an active check.

The backend's count says whether the daemon has sessions; only an answer from another
window proves the path works (shared/reference/network.md §7: "primary VPN green signal").
The active check pings known addresses (hubs, other windows' ULAs or Yggdrasil addresses)
and, on the layer-2 backends, ``ff02::1`` on tap0, whose link-local responders map back to
each window's MAC (modified EUI-64). Standard library only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RESPONDER_RE = re.compile(r"from ([0-9a-f:]*[0-9a-f])(?:%[^:\s]+)?: ")
CJDNS_ADMIN = ("127.0.0.1", 11234)  # cjdroute.conf admin.bind (firstboot.vpn.cjdns.ADMIN_BIND)
CJDNS_MAX_PAGES = 64


@dataclass(frozen=True)
class VpnStatus:
    backend: str
    peers: int | None  # the backend's own count; None when it cannot say
    reachable: tuple[str, ...]  # targets that answered

    @property
    def up(self) -> bool:
        return bool(self.reachable) or bool(self.peers)


def tinc_peers(state_dir: Path) -> int:
    """Nodes tinc reached: one file each, kept by the host-up/host-down hooks."""
    try:
        return sum(1 for entry in state_dir.iterdir() if entry.is_file())
    except FileNotFoundError:
        return 0


def yggdrasilctl_argv(endpoint: str | None) -> list[str]:
    argv = ["yggdrasilctl", "-json"]
    if endpoint:
        argv.append(f"-endpoint={endpoint}")
    return argv + ["getPeers"]


def parse_yggdrasil_peers(text: str) -> int:
    """0.4.7: ``{"peers": {addr: {…}}}``, every entry connected; 0.5: a list with ``up``."""
    peers = json.loads(text).get("peers", {})
    if isinstance(peers, dict):
        return len(peers)
    return sum(1 for peer in peers if isinstance(peer, dict) and peer.get("up", True))


def yggdrasil_peers(endpoint: str | None = None, timeout: float = 3.0) -> int | None:
    try:
        result = subprocess.run(yggdrasilctl_argv(endpoint), capture_output=True, text=True,
                                timeout=timeout, check=False)
        return parse_yggdrasil_peers(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def ping_argv(target: str, interface: str | None, wait: float) -> list[str]:
    where = f"{target}%{interface}" if interface and target.startswith("fe80") else target
    return ["ping", "-6", "-n", "-c", "1", "-W", str(max(1, round(wait))), where]


def reachable(targets: Sequence[str], *, interface: str | None = None, wait: float = 1.0) -> tuple[str, ...]:
    """The targets that answer one ping within ``wait`` seconds, pinged in parallel."""
    running = [(t, subprocess.Popen(ping_argv(t, interface, wait), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)) for t in targets]
    return tuple(t for t, process in running if process.wait() == 0)


def parse_responders(text: str) -> set[str]:
    return {m.group(1) for m in RESPONDER_RE.finditer(text)}


def responders(interface: str = "tap0", seconds: int = 3) -> set[str]:
    """Who answers ``ping ff02::1%tap0`` (the original's discovery), without this window.

    Answers come from the link-local address, or from the ULA while this window's own
    link-local is still tentative (just after the VPN attached): the kernel then sends the
    request from the ULA. Both map back to the window's MAC."""
    result = subprocess.run(["ping", "-6", "-n", "-c", "2", "-w", str(seconds), f"ff02::1%{interface}"],
                            capture_output=True, text=True, check=False)
    return parse_responders(result.stdout) - own_addresses(interface)


def own_addresses(interface: str) -> set[str]:
    path = Path("/proc/net/if_inet6")
    found = set()
    for line in path.read_text().splitlines() if path.exists() else []:
        fields = line.split()
        if len(fields) >= 6 and fields[5] == interface:
            found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
    return found


# --- cjdns: the admin API's peerStats (bencoded UDP; the call needs no password) ----------


def bencode(value: object) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> object:
    """Decode one bencoded value (strings as str where they are UTF-8). Raises ValueError."""
    def parse(at: int, depth: int) -> tuple[object, int]:
        if depth > 32:
            raise ValueError("nested too deeply")
        kind = data[at:at + 1]
        if kind == b"i":
            end = data.index(b"e", at)
            return int(data[at + 1:end]), end + 1
        if kind in (b"l", b"d"):
            items: list[object] = []
            at += 1
            while data[at:at + 1] != b"e":
                if at >= len(data):
                    raise ValueError("unterminated")
                item, at = parse(at, depth + 1)
                items.append(item)
            if kind == b"l":
                return items, at + 1
            return dict(zip(items[::2], items[1::2], strict=True)), at + 1
        if kind.isdigit():
            colon = data.index(b":", at)
            length = int(data[at:colon])
            raw = data[colon + 1:colon + 1 + length]
            if len(raw) != length:
                raise ValueError("short string")
            try:
                return raw.decode(), colon + 1 + length
            except UnicodeDecodeError:
                return raw, colon + 1 + length
        raise ValueError(f"bad bencode at {at}")
    try:
        value, end = parse(0, 0)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"bad bencode: {exc}") from None
    return value


def established(pages: list[object]) -> int:
    """Peers whose state is ESTABLISHED, over the pages of InterfaceController_peerStats
    (the rule tomeshnet's status uses; shared/reference/network.md §3.4)."""
    count = 0
    for page in pages:
        peers = page.get("peers", []) if isinstance(page, dict) else []
        count += sum(1 for p in peers if isinstance(p, dict) and p.get("state") == "ESTABLISHED")
    return count


def cjdns_peers(admin: tuple[str, int] = CJDNS_ADMIN, timeout: float = 2.0) -> int | None:
    """Established cjdns peers, or None when cjdroute's admin API does not answer."""
    pages: list[object] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            for page in range(CJDNS_MAX_PAGES):
                txid = os.urandom(4).hex()
                query = {"q": "InterfaceController_peerStats", "args": {"page": page}, "txid": txid}
                sock.sendto(bencode(query), admin)
                reply = bdecode(sock.recv(65536))
                pages.append(reply)
                if not isinstance(reply, dict) or not reply.get("more"):
                    break
    except (OSError, ValueError):
        return None
    return established(pages)


def peervpn_peers(tap: str = "tap0") -> int | None:
    """The windows PeerVPN reaches now: other stations answering ``ff02::1`` on its tap.

    PeerVPN's own ``N peers connected.`` line comes late (up to ~11 s), drops a dead peer only
    after its 100 s session timeout and over-counts after restarts (shared/reference/network.md
    §2.3, §7), so the count is what answers now."""
    if not Path(f"/sys/class/net/{tap}").exists():
        return None
    return len(responders(tap))


def probe(backend: str, targets: Sequence[str], *, state_dir: Path = Path("/run/ewindow/vpn"),
          yggdrasil_endpoint: str | None = None, interface: str | None = None,
          tap: str = "tap0", cjdns_admin: tuple[str, int] = CJDNS_ADMIN) -> VpnStatus:
    if backend == "tinc":
        peers: int | None = tinc_peers(state_dir / "tinc")
    elif backend == "yggdrasil":
        peers = yggdrasil_peers(yggdrasil_endpoint)
    elif backend == "peervpn":
        peers = peervpn_peers(tap)
    elif backend == "cjdns":
        peers = cjdns_peers(cjdns_admin)
    else:
        peers = None
    return VpnStatus(backend, peers, reachable(targets, interface=interface))


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    """``python3 -m hardware.vpnprobe BACKEND [TARGET …]``: the status as JSON."""
    parser = argparse.ArgumentParser(prog="vpnprobe", description=main.__doc__)
    parser.add_argument("backend", choices=["tinc", "yggdrasil", "peervpn", "cjdns"])
    parser.add_argument("targets", nargs="*", help="addresses that should answer")
    parser.add_argument("--state-dir", type=Path, default=Path("/run/ewindow/vpn"))
    parser.add_argument("--yggdrasil-endpoint", default=None)
    parser.add_argument("--responders", metavar="IFACE", help="also list ff02::1 responders on IFACE")
    parser.add_argument("--tap", default="tap0", help="PeerVPN's tap interface")
    parser.add_argument("--cjdns-admin", type=_host_port, default=CJDNS_ADMIN, metavar="HOST:PORT",
                        help="cjdroute's admin API (default 127.0.0.1:11234)")
    args = parser.parse_args(argv)
    status = probe(args.backend, args.targets, state_dir=args.state_dir,
                   yggdrasil_endpoint=args.yggdrasil_endpoint, tap=args.tap, cjdns_admin=args.cjdns_admin)
    out = {**asdict(status), "up": status.up}
    if args.responders:
        out["responders"] = sorted(responders(args.responders))
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
