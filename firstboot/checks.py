# SPDX-License-Identifier: MIT
"""What each value may be: one check per value, shared by the builder's config loader,
``build.py personalise``/``flash``/``hosts``/``identity`` and firstboot on the window, so
nothing is accepted when a card is made that the window refuses later.

Standard library only (it runs on the window). A check returns the value in its normal form
or raises :class:`InvalidValue` with a message that says what the value may be; the caller
adds the file and the field. Messages show at most :data:`SHOWN` characters of the value and
never a secret's. Values that reach a shell, a path or a generated file are held to what they
may be here *and* quoted where they are used.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import string
import urllib.parse
from collections.abc import Callable

SHOWN = 60  # characters of a bad value a message repeats


class InvalidValue(ValueError):
    """A value that is not what its field may be; the message never carries a secret."""


def shown(value: object) -> str:
    """``value`` for a message: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 5] + "…" + text[-4:]


def _matching(pattern: str, what: str) -> Callable[[str], str]:
    """A check that the whole value matches ``pattern``; the message says it is not ``what``."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise InvalidValue(f"{shown(value)} is not {what}")
        return value

    return check


# --- names ----------------------------------------------------------------------------------

HOSTNAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def hostname(value: str) -> str:
    """One DNS label (RFC 1123): a-z, 0-9 and '-', not at either end, at most 63."""
    if not HOSTNAME_RE.fullmatch(value):
        raise InvalidValue(f"{shown(value)} is not a host name (a-z, 0-9, '-' inside, at most 63)")
    return value


def domain(value: str) -> str:
    if not value or len(value) > 253 or not all(HOSTNAME_RE.fullmatch(label) for label in value.split(".")):
        raise InvalidValue(f"{shown(value)} is not a domain name like ewindow.org")
    return value


def hostname_template(value: str) -> str:
    """A template for ``str.format`` with ``{mac6}`` and ``{serial}`` giving a host name."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value)
                  if name is not None]
    except ValueError:
        fields = [("", "", None)]
    if any(name not in ("mac6", "serial") or spec or conv for name, spec, conv in fields):
        raise InvalidValue(f"{shown(value)}: only {{mac6}} and {{serial}} can be used")
    sample = value.format(mac6="b83c3c", serial="00000000b83c3c1b")
    if not HOSTNAME_RE.fullmatch(sample):
        raise InvalidValue(f"{shown(value)} gives {shown(sample)}, not a host name")
    return value


LOGIN_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Accounts Debian's base-passwd, the image's packages and its services own: an admin named
# like one of them would take over that account (``useradd`` fails in stage 30 at best).
RESERVED_LOGINS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "messagebus", "sshd", "polkitd",
    "tss", "ntp", "yggdrasil", "tinc", "peervpn", "cjdns", "ewindow-agent", "dnsmasq", "avahi",
    "statd", "uuidd", "input", "kvm", "render", "sgx", "tty", "disk", "adm", "kmem", "dialout",
    "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip", "operator", "src", "shadow",
    "utmp", "video", "sasl", "plugdev", "staff", "users", "nogroup", "netdev", "gpio", "i2c", "spi",
    "systemd-journal", "systemd-network", "systemd-resolve", "systemd-timesync",
})


def login_name(value: str) -> str:
    if not LOGIN_RE.fullmatch(value):
        raise InvalidValue(f"{shown(value)} is not a login name (a-z first, then a-z, 0-9, '_', '-'; "
                           "at most 32)")
    if value in RESERVED_LOGINS or value.startswith(("systemd-", "_")):
        raise InvalidValue(f"{shown(value)} is a system account of the image; choose another name")
    return value


# tinc's net folder and unit instance, PeerVPN's networkname
network_name = _matching(r"[A-Za-z0-9_-]{1,32}", "a network name (1 to 32 letters, digits, '-', '_')")


# a tinc node name: also the name of its file under hosts/
tinc_name = _matching(r"[A-Za-z0-9_]{1,64}", "a tinc node name (letters, digits, '_')")


def file_path(value: str) -> str:
    """A path on the build host a site file names (a key file, a folder of .debs)."""
    if not value or len(value) > 4096 or not value.isprintable() or any(
            len(part.encode()) > 255 for part in value.split("/")):
        raise InvalidValue(f"{shown(value)} is not a file path")
    return value


file_name = _matching(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}",
                      "a plain file name (letters, digits, '.', '_', '+', '-')")


# --- time zone ------------------------------------------------------------------------------

TIMEZONE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}")


def timezone(value: str) -> str:
    """The form of a tz database name (Europe/Berlin, Etc/GMT+1); whether it exists is the
    caller's question (the builder asks the tz database, the image's hook its zoneinfo)."""
    if not TIMEZONE_RE.fullmatch(value) or len(value) > 64:
        raise InvalidValue(f"{shown(value)} is not a time zone name like Europe/Berlin")
    return value


# --- addresses ------------------------------------------------------------------------------

MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def mac(value: str) -> str:
    """A unicast, non-zero MAC, normalised to lower case with colons."""
    normal = value.strip().lower().replace("-", ":")
    if not MAC_RE.fullmatch(normal):
        raise InvalidValue(f"{shown(value)} is not a MAC address like f0:de:f1:b8:38:ec")
    if int(normal[:2], 16) & 1:
        raise InvalidValue(f"{shown(value)} is a multicast MAC, not a network card's")
    if normal == "00:00:00:00:00:00":
        raise InvalidValue(f"{shown(value)} is the all-zero MAC, not a network card's")
    return normal


ULA_NETWORK = ipaddress.IPv6Network("fc00::/7")
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def identity_prefix(value: str, *, allow_global: bool = False) -> ipaddress.IPv6Network:
    """The /64 the windows' addresses live in: a unique local one (RFC 4193) unless the
    deployment deliberately opts into a global prefix it owns."""
    try:
        network = ipaddress.IPv6Network(value, strict=True)
    except ValueError:
        raise InvalidValue(f"{shown(value)} is not an IPv6 /64 like fde1:c0fe::/64") from None
    if network.prefixlen != 64:
        raise InvalidValue(f"{shown(value)} is a /{network.prefixlen}; the scheme puts the 48-bit MAC "
                           "into a /64")
    if network.is_multicast or network.is_link_local or network.is_loopback or network.is_unspecified:
        raise InvalidValue(f"{shown(value)} is not a unicast prefix")
    if network.subnet_of(ULA_NETWORK):
        return network
    if not allow_global:
        raise InvalidValue(f"{shown(value)} is not a unique local prefix (fc00::/7); a global one needs "
                           "identity.allow_global_prefix: true")
    # global unicast (RFC 4291 §2.4) and in no special-purpose block of IANA's registry: not
    # ::/64 (loopback's /64), 100::/64 (discard-only, RFC 6666), 2001:db8::/32 (documentation)
    if not network.subnet_of(GLOBAL_UNICAST) or not network.network_address.is_global:
        raise InvalidValue(f"{shown(value)} is not a global unicast prefix (in 2000::/3, not a "
                           "special-purpose block); use the /64 your provider routed to you")
    return network


def ipv6_address(value: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(value)
    except ValueError:
        raise InvalidValue(f"{shown(value)} is not an IPv6 address") from None


def ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidValue(f"{shown(value)} is not an IP address") from None


def port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValue(f"{shown(value)} is not a port number (1 to 65535)")
    return value


HOST_RE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def host(value: str) -> str:
    """A DNS name or an IP literal (no brackets)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not HOST_RE.fullmatch(value):
        raise InvalidValue(f"{shown(value)} is not a host name or IP address")
    return value


def host_port(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` (cjdns peers, tinc hub addresses with a port)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^\s:\[\]]+):(\d{1,5})", value)
    if not match:
        raise InvalidValue(f"{shown(value)} is not HOST:PORT or [IPv6]:PORT")
    address = match.group(1) or match.group(3)
    try:
        if match.group(1):
            ipaddress.IPv6Address(address)
        else:
            host(address)
        return address, port(int(match.group(2) or match.group(4)))
    except InvalidValue:
        raise InvalidValue(f"{shown(value)} is not HOST:PORT or [IPv6]:PORT") from None


def url(value: str, schemes: tuple[str, ...]) -> str:
    """An absolute URL of one of ``schemes``: printable, no white space or quotes, a host for
    the network schemes. It goes into apt lines, apt.conf and config files."""
    if not value or len(value) > 2048 or any(c.isspace() or not c.isprintable() or c in "\"'`\\<>{}|^"
                                            for c in value):
        raise InvalidValue(f"{shown(value)} is not a URL ({' or '.join(s + '://' for s in schemes)})")
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in schemes:
        article = "an" if schemes[0][0] in "aehiou" else "a"
        raise InvalidValue(f"{shown(value)} is not {article} {' or '.join(s + '://' for s in schemes)} URL")
    if parsed.scheme != "file" and not parsed.hostname:
        raise InvalidValue(f"{shown(value)} has no host")
    if parsed.scheme == "file" and (parsed.netloc or not parsed.path.startswith("/")):
        # file://host/… names another machine's file, which urllib and apt cannot fetch
        raise InvalidValue(f"{shown(value)} is not an absolute file:/// URL (three slashes, no host)")
    return value


def apt_repository_url(value: str) -> str:
    """A repository apt fetches over the network (``updates.repo``): http or https, a host,
    no user name or password (they would sit in a world-readable sources file), no query or
    fragment, which apt would send on or drop."""
    url(value, ("http", "https"))
    parsed = urllib.parse.urlsplit(value)
    if parsed.username is not None or parsed.password is not None:
        raise InvalidValue(f"{shown(value)} holds a user name or password; apt's sources are world-readable")
    if parsed.query or parsed.fragment or "?" in value or "#" in value:
        raise InvalidValue(f"{shown(value)} has a query or fragment; an apt repository URL has neither")
    try:
        parsed.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise InvalidValue(f"{shown(value)} has a port that is not a number from 1 to 65535") from None
    return value


TIME_WINDOW_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")


def time_window(value: str) -> tuple[int, int]:
    """``HH:MM-HH:MM`` in local time, 24-hour, as minutes after midnight; it may span
    midnight (``23:30-01:00``) but not be empty."""
    match = TIME_WINDOW_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise InvalidValue(f"{shown(value)} is not a time window HH:MM-HH:MM (24-hour), e.g. 03:00-05:00")
    hours, minutes, end_hours, end_minutes = (int(g) for g in match.groups())
    start, end = hours * 60 + minutes, end_hours * 60 + end_minutes
    if start == end:
        raise InvalidValue(f"{shown(value)} is an empty time window")
    return start, end


def one_line_text(value: str, *, max_length: int) -> str:
    """Text shown to a person (Raspberry Pi Imager's name and description): one line of
    printable characters, not empty."""
    if not value.strip() or len(value) > max_length or not value.isprintable():
        raise InvalidValue(f"{shown(value)} is not one line of text of at most {max_length} characters")
    return value


# a gpg key: its fingerprint (40 hex digits), long or short key id, or an e-mail address
gpg_key = _matching(r"(?:0x)?(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{16}|[0-9A-Fa-f]{8})"
                    r"|<?[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+>?",
                    "a gpg key fingerprint, key id or e-mail address")


# --- keys -----------------------------------------------------------------------------------

SSH_KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
SSH_OPTION_RE = re.compile(r'[A-Za-z0-9-]+(?:="(?:[^"\\]|\\.)*")?')


def _split_ssh_options(line: str) -> tuple[str, str]:
    """(options, rest): sshd(8) AUTHORIZED_KEYS FILE FORMAT; options end at the first white
    space outside double quotes."""
    quoted = False
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and quoted:
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            return line[:index], line[index:].strip()
        index += 1
    return line, ""


def ssh_public_key(value: str) -> str:
    """One authorized_keys line: [options] type base64 [comment], the key blob decoding to a
    key of the named type."""
    line = value.strip()
    if not line or len(line) > 16384 or not line.isprintable():
        raise InvalidValue(f"{shown(value[:40])} is not one SSH public key line")
    words = line.split()
    if words[0] not in SSH_KEY_TYPES:
        options, line = _split_ssh_options(line)
        if not _valid_options(options):
            raise InvalidValue(f"{shown(value[:40])} is not an SSH public key line")
        words = line.split()
    if len(words) < 2 or words[0] not in SSH_KEY_TYPES:
        raise InvalidValue(f"{shown(value[:40])} is not an SSH public key line "
                           f"({', '.join(sorted(SSH_KEY_TYPES))})")
    try:
        blob = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"{shown(value[:40])}: the key is not base64") from None
    length = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + length or blob[4:4 + length] != words[0].encode():
        raise InvalidValue(f"{shown(value[:40])}: the key blob is not a {words[0]} key")
    return value.strip()


def _valid_options(options: str) -> bool:
    parts, current, quoted, escaped = [], "", False, False
    for char in options:
        if escaped:
            current, escaped = current + char, False
            continue
        if char == "\\" and quoted:
            current, escaped = current + char, True
            continue
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return not quoted and all(SSH_OPTION_RE.fullmatch(part) for part in parts)


RSA_BLOCK_RE = re.compile(r"-----BEGIN RSA PUBLIC KEY-----\n([A-Za-z0-9+/=\n]+)\n"
                          r"-----END RSA PUBLIC KEY-----")


def rsa_public_key(value: str) -> str:
    """Exactly one PEM ``RSA PUBLIC KEY`` block (a tinc 1.0 node key), nothing around it: the
    block goes into a hub's hosts/ file, where any other line would be a setting."""
    text = value.strip().replace("\r\n", "\n")
    match = RSA_BLOCK_RE.fullmatch(text)
    der = b""
    if match:
        try:
            der = base64.b64decode(match.group(1).replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            der = b""
    if not der.startswith(b"\x30") or len(der) < 64:  # a DER SEQUENCE of modulus and exponent
        raise InvalidValue("expected exactly one -----BEGIN RSA PUBLIC KEY----- block and nothing else")
    return text


# 52 characters of cjdns' base32 alphabet and ".k" (util/Base32.h)
cjdns_public_key = _matching(r"[0-9bcdfghjklmnpqrstuvwxyz]{52}\.k",
                             "a cjdns public key (52 base32 characters + '.k')")


def printable_secret(value: str, *, lengths: tuple[int, int] = (1, 256)) -> str:
    """A password that goes into a JSON config: printable, no white space at either end."""
    low, high = lengths
    if not low <= len(value) <= high or not value.isprintable() or value != value.strip():
        raise InvalidValue(f"{low} to {high} printable characters, no white space at either end")
    return value


YGGDRASIL_SCHEMES = ("tcp", "tls", "quic", "ws", "wss", "socks", "sockstls", "unix")


yggdrasil_public_key = _matching(r"[0-9a-f]{64}", "a Yggdrasil public key (64 hex digits)")


def yggdrasil_uri(value: str) -> str:
    """A peer or listen URI, e.g. tls://hub.example.org:443 or tcp://[::]:12345."""
    if not value or len(value) > 1024 or any(c.isspace() or not c.isprintable() for c in value):
        raise InvalidValue(f"{shown(value)} is not a Yggdrasil URI like tls://host:443")
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in YGGDRASIL_SCHEMES:
        raise InvalidValue(f"{shown(value)}: the scheme is not one of {', '.join(YGGDRASIL_SCHEMES)}")
    if parsed.scheme != "unix":
        try:
            has_port = parsed.port is not None
        except ValueError:
            has_port = False
        if not parsed.hostname and parsed.netloc[:1] != "[" or not has_port:
            raise InvalidValue(f"{shown(value)} is not {parsed.scheme}://HOST:PORT")
    return value


def interface_regex(value: str) -> str:
    """A regular expression over interface names (Yggdrasil's multicast interfaces)."""
    if not value or len(value) > 128 or not value.isprintable():
        raise InvalidValue(f"{shown(value)} is not a regular expression over interface names")
    try:
        re.compile(value)
    except re.error as exc:
        raise InvalidValue(f"{shown(value)} is not a regular expression ({exc})") from None
    return value


# what the kernel takes (dev_valid_name) less what a tool would read as an option or a path:
# no leading "-" (ip, tcpdump) or "." ("." and "..")
interface_name = _matching(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}",
                           "a network interface name (1-15 of A-Z a-z 0-9 _ . -, not starting with - or .)")


# --- Wi-Fi ----------------------------------------------------------------------------------


def wifi_country(value: object) -> str:
    if value is False:  # YAML 1.1 reads a bare NO (Norway) as false
        raise InvalidValue('got false: write the country code in quotes, e.g. country: "NO"')
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{2}", value):
        raise InvalidValue(f"{shown(value)} is not a two-letter country code like DE (in quotes)")
    return value


def wifi_ssid(value: str) -> str:
    if not 1 <= len(value.encode()) <= 32:
        raise InvalidValue("1 to 32 bytes")
    return value


def wifi_psk(value: str) -> str:
    """A WPA passphrase: 8 to 63 printable ASCII characters (IEEE 802.11i annex M.4), or ""
    for an open network. Never repeated in a message."""
    if value and not (8 <= len(value) <= 63 and all(" " <= c <= "~" for c in value)):
        raise InvalidValue("8 to 63 printable ASCII characters (\"\" for an open network)")
    return value


# --- the build's own values -----------------------------------------------------------------

# a Debian package name (Policy §5.6.1)
debian_package = _matching(r"[a-z0-9][a-z0-9+.-]{1,127}", "a Debian package name")
debian_section = _matching(r"(?:[a-z0-9-]{1,32}/)?[a-z0-9-]{1,32}", "a Debian section (e.g. admin, net)")
# the two parts of a Debian version (Policy §5.6.12) this project makes: no epoch (its ':'
# cannot go into a file name) and no '-' in the upstream part, so the .deb's name is a plain one
debian_upstream_version = _matching(r"[0-9][A-Za-z0-9.+~]{0,63}",
                                    "an upstream version (a digit, then letters, digits, '.', '+', '~')")
debian_revision = _matching(r"[A-Za-z0-9][A-Za-z0-9.+~]{0,31}",
                            "a Debian revision (letters, digits, '.', '+', '~')")


APT_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/~-]{0,99}")


def apt_word(value: str) -> str:
    """A suite or component of an apt line (``trixie``, ``main``, ``./``)."""
    if value != "./" and not APT_WORD_RE.fullmatch(value):
        raise InvalidValue(f"{shown(value)} is not a suite or component name "
                           "(or ./ for a flat repository)")
    return value


kernel_module = _matching(r"[A-Za-z0-9_-]{1,64}", "a kernel module name")


CMDLINE_WORD_RE = re.compile(r"[A-Za-z0-9_.,:=/+@-]+")


def cmdline_extra(value: str) -> str:
    """Kernel parameters appended to cmdline.txt, which the firmware reads as one line."""
    words = value.split(" ")
    if value and (not all(CMDLINE_WORD_RE.fullmatch(w) for w in words) or len(value) > 1024):
        raise InvalidValue(f"{shown(value)} is not kernel parameters (words of letters, digits, "
                           "._,:=/+@- separated by single spaces, on one line)")
    return value


def config_txt_line(value: str) -> str:
    """One line of config.txt: printable, no line break."""
    if not value.isprintable() or len(value) > 512:
        raise InvalidValue(f"{shown(value)} is not one printable line")
    return value


def image_disk_id(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{8}", value) or int(value, 16) == 0:
        raise InvalidValue(f"{shown(value)} is not 8 hex digits (not all zero)")
    return value.lower()
