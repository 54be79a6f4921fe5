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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESPONDER_RE = re.compile(r"from ([0-9a-f:]*[0-9a-f])(?:%[^:\s]+)?: ")
CJDNS_ADMIN = ("127.0.0.1", 11234)  # cjdroute.conf admin.bind (firstboot.vpn.cjdns.ADMIN_BIND)
CJDNS_MAX_PAGES = 64


@dataclass(frozen=True)
class VpnStatus:
    backend: str
    peers: int | None  # other windows the backend reaches now, hubs apart; None when it cannot say
    reachable: tuple[str, ...]  # targets that answered
    hubs: int = 0  # hubs that answer: what the card names as hubs (active.json "hubs")
    mac_conflict: bool = False  # tap0's duplicate address detection failed: its MAC is in use

    @property
    def up(self) -> bool:
        """Another window (or a target) answers: the hub alone is not "connected to the windows"."""
        return bool(self.reachable) or bool(self.peers)


def tap_mac_of(address: str) -> str:
    """The tap0 MAC behind a window's VPN address: its link-local (modified EUI-64 of the tap
    MAC) or its ULA (the prefix + the base MAC, firstboot/identity.py), "" for neither. A window
    answers ``ff02::1`` from either, so both map to one key."""
    try:
        raw = ipaddress.IPv6Address(address.split("%", 1)[0]).packed
    except ValueError:
        return ""
    if raw[:8] == b"\xfe\x80" + b"\0" * 6 and raw[11:13] == b"\xff\xfe":
        mac = bytearray(raw[8:11] + raw[13:16])
        mac[0] ^= 0x02  # modified EUI-64 inverts the universal/local bit back
    else:
        mac = bytearray(raw[10:16])
        mac[0] = (mac[0] | 0x02) & ~0x01  # firstboot.identity.tap_mac
    return ":".join(f"{b:02x}" for b in mac)


def tinc_peers(state_dir: Path, hub_names: Sequence[str] = ()) -> tuple[int, int]:
    """(windows, hubs) tinc reached: one file each, named by the node and kept by the
    host-up/host-down hooks; the hubs are the nodes the card names (vpn.tinc.hubs)."""
    try:
        names = {entry.name for entry in state_dir.iterdir() if entry.is_file()}
    except FileNotFoundError:
        return 0, 0
    hubs = len(names & set(hub_names))
    return len(names) - hubs, hubs


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


def dad_failed(interface: str, if_inet6: Path = Path("/proc/net/if_inet6")) -> bool:
    """The kernel's duplicate address detection found one of the interface's addresses in use
    (IFA_F_DADFAILED): a station with this window's MAC was there first."""
    try:
        lines = if_inet6.read_text().splitlines()
    except OSError:
        return False
    return any(len(f) == 6 and f[5] == interface and int(f[4], 16) & 0x08 for f in map(str.split, lines))


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


KEY_RE = re.compile(r"([0-9a-z]{52}\.k)$")  # peerStats' addr: v21.0000.0000.0000.0013.<key>.k
# cjdroute pings a peer that has been silent for 3 s (PING_AFTER_MILLISECONDS in
# net/InterfaceController.c, checked every 1024 ms), so a live peer sends something at least
# every ~4.1 s; one silent for longer is gone, though cjdroute says ESTABLISHED for 20 s more.
FRESH_S = 4.5


@dataclass
class PeerActivity:
    """When each cjdns peer's received-bytes counter last moved, on this process's clock.

    peerStats' own ``last`` is on cjdroute's clock (the wall clock when it started, moved on
    monotonically), which NTP setting the clock after the start puts off by the jump; a counter
    that moves needs no clock but ours."""

    fresh_s: float = FRESH_S
    clock: Callable[[], float] = time.monotonic
    moved: dict[str, tuple[object, float]] = field(default_factory=dict)

    def live(self, peer: dict[str, object]) -> bool:
        key, counter, now = str(peer.get("addr", "")), peer.get("bytesIn"), self.clock()
        seen = self.moved.get(key)
        if seen is None or seen[0] != counter:
            self.moved[key] = (counter, now)
            return True
        return now - seen[1] <= self.fresh_s


def established(pages: list[object]) -> list[dict[str, object]]:
    """Peers whose state is ESTABLISHED, over the pages of InterfaceController_peerStats
    (the rule tomeshnet's status uses; shared/reference/network.md §3.4)."""
    found = []
    for page in pages:
        peers = page.get("peers", []) if isinstance(page, dict) else []
        found += [p for p in peers if isinstance(p, dict) and p.get("state") == "ESTABLISHED"]
    return found


def peer_key(peer: dict[str, object]) -> str:
    match = KEY_RE.search(str(peer.get("addr", "")))
    return match.group(1) if match else ""


def split_cjdns(peers: list[dict[str, object]], hub_keys: Sequence[str],
                activity: PeerActivity | None) -> tuple[int, int]:
    """(windows, hubs) among the established peers; with ``activity``, only those that sent
    something lately. The hubs are the peers the card names (vpn.cjdns.peers)."""
    live = [p for p in peers if activity is None or activity.live(p)]
    hubs = sum(1 for p in live if peer_key(p) in hub_keys)
    return len(live) - hubs, hubs


def cjdns_peer_stats(admin: tuple[str, int] = CJDNS_ADMIN,
                     timeout: float = 2.0) -> list[dict[str, object]] | None:
    """The established cjdns peers, or None when cjdroute's admin API does not answer."""
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


def cjdns_peers(admin: tuple[str, int] = CJDNS_ADMIN, hub_keys: Sequence[str] = (),
                activity: PeerActivity | None = None) -> tuple[int | None, int]:
    """(windows, hubs) cjdroute is peered with; (None, 0) when its admin API does not answer."""
    peers = cjdns_peer_stats(admin)
    return (None, 0) if peers is None else split_cjdns(peers, hub_keys, activity)


def split_hubs(answering: set[str], hubs: Sequence[str]) -> tuple[set[str], set[str]]:
    """(windows, hubs) among the stations that answered on tap0, as tap MACs: a hub is one
    whose MAC is behind one of the addresses the settings name as hubs."""
    hub_macs = {tap_mac_of(h) for h in hubs} - {""}
    macs = {tap_mac_of(a) or a for a in answering}
    return macs - hub_macs, macs & hub_macs


def layer2_peers(tap: str = "tap0", hubs: Sequence[str] = ()) -> tuple[int | None, int, bool]:
    """(windows, hubs, the kernel found tap0's address in use) PeerVPN or tinc reach now: other
    stations answering ``ff02::1`` on the tap.

    PeerVPN's own ``N peers connected.`` line comes late (up to ~11 s), drops a dead peer only
    after its 100 s session timeout and over-counts after restarts (shared/reference/network.md
    §2.3, §7), so the count is what answers now."""
    if not Path(f"/sys/class/net/{tap}").exists():
        return None, 0, False
    windows, hub_macs = split_hubs(responders(tap), hubs)
    return len(windows), len(hub_macs), dad_failed(tap)


def probe(backend: str, targets: Sequence[str], *, hubs: Sequence[str] = (), hub_keys: Sequence[str] = (),
          activity: PeerActivity | None = None, state_dir: Path = Path("/run/ewindow/vpn"),
          yggdrasil_endpoint: str | None = None, interface: str | None = None,
          tap: str = "tap0", cjdns_admin: tuple[str, int] = CJDNS_ADMIN) -> VpnStatus:
    """One backend's status. ``hubs``: the hubs' VPN addresses (pinged, and told apart from
    windows on tap0); ``hub_keys``: the hubs as the backend names them (cjdns public keys, tinc
    node names); ``activity``: count a cjdns peer only while it sends (kept between calls by
    the agent)."""
    hub_count, conflict = 0, False
    peers: int | None
    if backend == "tinc":
        peers, hub_count = tinc_peers(state_dir / "tinc", hub_keys)
    elif backend == "yggdrasil":
        peers = yggdrasil_peers(yggdrasil_endpoint)
    elif backend == "peervpn":
        peers, hub_count, conflict = layer2_peers(tap, hubs)
    elif backend == "cjdns":
        peers, hub_count = cjdns_peers(cjdns_admin, hub_keys, activity)
    else:
        peers = None
    answered = reachable([*targets, *hubs], interface=interface)
    hub_count = max(hub_count, sum(1 for h in hubs if h in answered))
    return VpnStatus(backend, peers, tuple(t for t in answered if t in targets), hub_count, conflict)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    """``python3 -m hardware.vpnprobe BACKEND [TARGET …]``: the status as JSON."""
    parser = argparse.ArgumentParser(prog="vpnprobe", description=main.__doc__)
    parser.add_argument("backend", choices=["tinc", "yggdrasil", "peervpn", "cjdns"])
    parser.add_argument("targets", nargs="*", help="addresses that should answer")
    parser.add_argument("--hub", action="append", default=[], metavar="ADDRESS",
                        help="a hub's VPN address (counted apart from the windows)")
    parser.add_argument("--hub-key", action="append", default=[], metavar="KEY",
                        help="a hub's cjdns public key")
    parser.add_argument("--watch", type=float, default=0, metavar="SECONDS",
                        help="probe again every SECONDS, one JSON line each, counting a cjdns peer "
                             "only while it sends (as the agent does)")
    parser.add_argument("--state-dir", type=Path, default=Path("/run/ewindow/vpn"))
    parser.add_argument("--yggdrasil-endpoint", default=None)
    parser.add_argument("--responders", metavar="IFACE", help="also list ff02::1 responders on IFACE")
    parser.add_argument("--tap", default="tap0", help="PeerVPN's tap interface")
    parser.add_argument("--cjdns-admin", type=_host_port, default=CJDNS_ADMIN, metavar="HOST:PORT",
                        help="cjdroute's admin API (default 127.0.0.1:11234)")
    args = parser.parse_args(argv)
    activity = PeerActivity() if args.watch > 0 else None
    while True:
        status = probe(args.backend, args.targets, hubs=args.hub, hub_keys=args.hub_key, activity=activity,
                       state_dir=args.state_dir, yggdrasil_endpoint=args.yggdrasil_endpoint, tap=args.tap,
                       cjdns_admin=args.cjdns_admin)
        out = {**asdict(status), "up": status.up}
        if args.responders:
            out["responders"] = sorted(responders(args.responders))
        print(json.dumps(out), flush=True)
        if args.watch <= 0:
            return 0
        time.sleep(args.watch)


if __name__ == "__main__":
    sys.exit(main())
