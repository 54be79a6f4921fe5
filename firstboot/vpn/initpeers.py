# SPDX-License-Identifier: MIT
"""PeerVPN's init peers, their names resolved with a time limit before it starts.

PeerVPN resolves an init peer's name in its one thread, twice (AF_INET6, then AF_INET;
platform/io.c ``ioResolveName``). With a DNS server that never answers, each call waits out
the resolver's timeout: ~20 s a name, during which PeerVPN tries no other peer and answers
no one (issue 21 measured it).

``python3 -m firstboot.vpn.initpeers CONF OUT`` (from ewindow-peervpn-start, the unit's start)
resolves every name at once, in parallel, for at most RESOLVE_S seconds. A name that resolved
is replaced by its addresses (IPv6 first, as PeerVPN orders them); one that did not is left
out while another peer remains, and kept as it is when none does (PeerVPN then keeps trying
it itself). PeerVPN reads OUT; the card's config is untouched, and names are resolved again
at each start (the unit restarts PeerVPN when NTP sets the clock, and when it fails).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import checks
from .peervpn import MAX_VALUE

RESOLVE_S = 3.0
Resolver = Callable[[str, str], list[str]]  # (host, port) -> addresses


def is_literal(host: str) -> bool:
    """An IP address, not a name (the one address check, checks.ip_address)."""
    try:
        checks.ip_address(host)
    except checks.InvalidValue:
        return False
    return True


def system_resolver(host: str, port: str) -> list[str]:
    """The host's addresses, IPv6 first (PeerVPN's order), each once."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    addresses = [str(info[4][0]) for info in found]
    ordered = [a for a in addresses if ":" in a] + [a for a in addresses if ":" not in a]
    return list(dict.fromkeys(ordered))


def resolve_all(entries: Sequence[tuple[str, str]], resolver: Resolver = system_resolver,
                seconds: float = RESOLVE_S) -> dict[tuple[str, str], list[str]]:
    """Each name's addresses, resolved in parallel; a name not resolved within ``seconds`` (or
    not at all) is missing from the answer. getaddrinfo cannot be cancelled: a thread still
    waiting is left behind (daemon) and ends with the process."""
    answers: dict[tuple[str, str], list[str]] = {}

    def ask(entry: tuple[str, str]) -> None:
        try:
            addresses = resolver(*entry)
        except (OSError, UnicodeError):
            return
        if addresses:
            answers[entry] = addresses

    threads = [threading.Thread(target=ask, args=(entry,), daemon=True)
               for entry in dict.fromkeys(e for e in entries if not is_literal(e[0]))]
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(answers)


def parse_initpeers(value: str) -> list[tuple[str, str]]:
    words = value.split()
    return list(zip(words[::2], words[1::2], strict=False))


def resolved_initpeers(entries: Sequence[tuple[str, str]], answers: dict[tuple[str, str], list[str]]) -> str:
    """The initpeers value PeerVPN gets: literals as they are, resolved names as their addresses
    (within PeerVPN's 511 characters), unresolved names only when nothing else is left."""
    out: list[str] = []
    for host, port in entries:
        candidates = [host] if is_literal(host) else answers.get((host, port), [])
        for address in candidates:
            pair = f"{address} {port}"
            if pair not in out and len(" ".join([*out, pair])) <= MAX_VALUE:
                out.append(pair)
    if not out:
        out = [f"{host} {port}" for host, port in entries]
    return " ".join(out)


def rewrite(conf: str, resolver: Resolver = system_resolver, seconds: float = RESOLVE_S) -> str:
    """The config with its ``initpeers`` line resolved (PeerVPN's keyword: the first word)."""
    lines = conf.splitlines()
    for index, line in enumerate(lines):
        keyword, _, value = line.strip().partition(" ")
        if keyword == "initpeers":
            entries = parse_initpeers(value)
            answers = resolve_all(entries, resolver, seconds)
            lines[index] = f"initpeers {resolved_initpeers(entries, answers)}"
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python3 -m firstboot.vpn.initpeers CONF OUT", file=sys.stderr)
        return 2
    source, target = Path(args[0]), Path(args[1])
    try:
        text = source.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{source}: cannot read: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    resolved = rewrite(text)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the PSK
    with os.fdopen(fd, "w") as out:
        out.write(resolved)
    tmp.replace(target)
    line = next((x for x in resolved.splitlines() if x.startswith("initpeers ")), "no initpeers")
    print(f"{line} (resolved in {time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
