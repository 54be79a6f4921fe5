# SPDX-License-Identifier: MIT
"""Property-based fuzzing of every input a user or a card hands the tool (issue 10).

Site files and ``--set`` values are generated from the config schema itself (the dataclasses
of ewindow_image/config/schema.py), mostly plausible and then mutated: a value swapped for a hostile
one (shell and YAML metacharacters, line breaks, paths out of the tree, huge or non-ASCII
text), for a value of another type, or an unknown key added. Identity files and inventories
are generated from real identities the same way. For every case:

- the exit status is 0 or 2, stderr has at most two lines and no traceback;
- no secret of the input is in the output;
- nothing is written outside the folders the command was given;
- an accepted config renders into the stages without changing what their shell hooks do
  (the hooks tokenise to the same commands as with the defaults) and into the overlays
  without extra lines; accepted cards give well-formed zone lines and tinc host files.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import shlex
import tempfile
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ewindow_image.config import Config, ConfigLayers, load_config, template_context
from ewindow_image.pipeline.overlay import render_overlay
from ewindow_image.pipeline.stages.definition import Stage, load_stages
from firstboot.files import public_identity
from firstboot.identity import derive

from .clirun import Outcome, build_py
from .keys import ed25519_line, rsa_public_key_block

REPO = Path(__file__).resolve().parent.parent
# EWINDOW_FUZZ_EXAMPLES=5000 for a longer hunt; make test's 250 per test take ~20 s
FUZZ = settings(
    max_examples=int(os.environ.get("EWINDOW_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SECRET_MARK = "qzx"  # every generated secret contains it; no other generated text does

HOSTILE = [
    'Etc/UTC"; touch /tmp/ewindow-fuzz-pwned; echo "',
    "$(touch /tmp/ewindow-fuzz-pwned)",
    "`id`",
    "a\nb: c",
    "x\r\ny",
    "../../../etc/passwd",
    "/etc/shadow",
    "a b",
    "",
    " ",
    "'",
    '"',
    "\\",
    "#comment",
    "key: value",
    "- item",
    "{{ 7*7 }}",
    "{% raw %}",
    "%(x)s",
    "\x00",
    "\x1b[31m",
    "é",
    "ß" * 40,
    "x" * 3000,
    "-rf",
    "--help",
    "*",
    "&amp;",
    "http://evil.example/ x",
    "file:///etc",
    "ff02::1",
    "0.0.0.0/0",
    "Subnet = 0.0.0.0/0",
    "NO",
    "yes",
    "~",
    "null",
    "1e999",
    "0x10",
]

# Plausible values for string fields, by the field's name: what a site file would hold.
PLAUSIBLE: dict[str, list[str]] = {
    "hostname": ["ewindow", "lab-1"],
    "timezone": ["Europe/Berlin", "Etc/UTC", "America/New_York"],
    "mirror": ["http://deb.debian.org/debian", "https://mirror.example.org/debian"],
    "security_mirror": ["http://deb.debian.org/debian-security"],
    "proxy": ["", "http://cache:3142"],
    "user": ["ewindow", "ops"],
    "cmdline_extra": ["", "quiet", "console=ttyS0,115200 quiet"],
    "name": ["ewindow", "hub_1"],
    "disk_id": ["ee1d0c5e", "12345678"],
    "network_name": ["ewindow", "lab_net"],
    "prefix": ["fde1:c0fe::/64", "fd12:3456:789a::/64"],
    "hostname_template": ["ewindow-{mac6}", "w{serial}"],
    "domain": ["ewindow.org", "windows.example"],
    "country": ["DE", "NO", "GB"],
    "ssid": ["lab", "Space 5G"],
    "kind": ["act", "single", "none"],
    "internet_url": ["http://network-test.debian.org/nm"],
    "internet_expect": ["NetworkManager is online"],
    "qemu_cpu": ["max,pauth=off"],
    "cache_max_size": ["20G", "500M", ""],
    "address": ["203.0.113.7:5000", "[2001:db8::1]:5000"],
    "public_key": ["3fdqgz2vtqb0wx02hhvx3wjmjqktyt567fcuvj3m72vw5u6ubu70.k"],
    "uri": ["http://repo.example/x"],
    "suite": ["stable", "./"],
    "key_file": ["key.asc"],
    "local_debs": [""],
    "secrets_file": [""],
    "authorized_keys_file": [""],
    "gateway_public_key": [""],
    "ip4_address": ["10.66.0.2"],
    "ip6_address": [""],
    "extra_packages": ["vim", "htop"],
    "extra_modules": ["vc4"],
    "config_txt_extra": ["dtparam=audio=on", "[pi4]"],
    "authorized_keys": [ed25519_line("fuzz", "a@b")],
    "peers": ["tls://hub.example.org:443"],
    "listen": ["tls://[::]:443"],
    "multicast_interfaces": ["^eth0$"],
    "initpeers": ["203.0.113.7 7777", "hub.example.org 7777"],
    "beacon_interfaces": ["eth0"],
    "allowed_public_keys": ["ab" * 32],
    "vpn_targets": ["fde1:c0fe::1"],
    "mirrors": ["/srv/sources"],
    "addresses": ["203.0.113.7", "hub.example.org"],
    "compression": ["zstd", "xz"],
    "backends": ["peervpn"],
}


# Plausible values that depend on where a name appears, by dotted path (list indices left out).
PLAUSIBLE_AT: dict[str, list[Any]] = {
    "vpn.tinc.hubs.public_key": [rsa_public_key_block("hub")],
    "vpn.tinc.hubs.name": ["hub_1"],
    "apt.extra_repos": [[]],
    "agent.led.pins": [[]],
    "agent.button.pin": [3, 17],
    "agent.button.restart_vpn_s": [3],
    "agent.button.reboot_s": [10],
    "agent.button.stuck_s": [30],
    "image.boot_size_mib": [256],
    "image.headroom_mib": [512],
    "image.zstd_level": [9],
    "image.xz_level": [6],
    "apt.retries": [3],
    "vpn.tinc.port": [655],
    "vpn.peervpn.port": [7777],
    "vpn.tinc.hubs.port": [655],
    "vpn.cjdns.clients.ip4_prefix": [0, 24],
    "vpn.cjdns.clients.ip6_prefix": [0, 64],
    "wifi.country": ["DE", "GB"],
    "build.cache_max_size": ["20G", ""],
}


def secret_value() -> st.SearchStrategy[Any]:
    good = st.text(alphabet="abcdefghijkmnop0123456789-_", min_size=8, max_size=30).map(
        lambda s: f"{SECRET_MARK}{s}"
    )
    hostile = st.sampled_from(HOSTILE).map(lambda s: f"{SECRET_MARK}{s}")
    number = st.integers(10**9, 10**10 - 1).map(lambda n: int(f"7771{n}"))  # unquoted digits in YAML
    return st.one_of(good, good, good, hostile, number)


def hostile_value() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=20),
        st.integers(-(2**31), 2**31),
        st.floats(allow_nan=True),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.sampled_from(["a", "x"]), st.integers(), max_size=1),
    )


def plausible_for(tp: Any, path: str, secret: bool = False) -> st.SearchStrategy[Any]:
    """A value of a config field's type that a site file would plausibly hold."""
    if path in PLAUSIBLE_AT:
        return st.sampled_from(PLAUSIBLE_AT[path])
    if secret:
        return secret_value()
    origin = typing.get_origin(tp)
    name = path.rsplit(".", 1)[-1]
    if dataclasses.is_dataclass(tp):
        assert isinstance(tp, type)
        return plausible_section(tp, f"{path}.")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from([m.value for m in tp])
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        return st.lists(plausible_for(item, path), max_size=2)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(1, 65535)
    if tp is float:
        return st.floats(0.5, 100)
    return st.sampled_from(PLAUSIBLE.get(name, ["x"]))


def plausible_section(cls: type, prefix: str = "") -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    optional = {
        f.name: plausible_for(hints[f.name], f"{prefix}{f.name}", bool(f.metadata.get("secret")))
        for f in dataclasses.fields(cls)
        if f.name not in ("base_dir", "origins")
    }
    return st.fixed_dictionaries({}, optional=optional)


def paths_in(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested dict/list a mutation can go."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths_in(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths_in(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any], max_mutations: int = 2) -> Any:
    """A plausible value with 0 to ``max_mutations`` places replaced by a hostile value or a
    value of another type, or given an unknown key."""
    data = draw(base)
    for _ in range(draw(st.integers(0, max_mutations))):
        places = paths_in(data)
        if not places:
            break
        place = draw(st.sampled_from(places))
        parent = data
        for step in place[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.integers(0, 4)) == 0:
            parent[draw(st.sampled_from(["hostnme", "psk2", "../x", "a b"]))] = draw(hostile_value())
        elif isinstance(parent, dict | list):
            parent[place[-1]] = draw(hostile_value())
    return data


def site_files() -> st.SearchStrategy[dict[str, Any]]:
    return mutated(plausible_section(Config))


def secrets_in(data: Any) -> list[str]:
    """Every generated secret in ``data``, as text."""
    if isinstance(data, dict):
        return [s for value in data.values() for s in secrets_in(value)]
    if isinstance(data, list):
        return [s for value in data for s in secrets_in(value)]
    text = str(data)
    numeric_secret = isinstance(data, int) and text.startswith("7771") and len(text) == 14
    return [text] if SECRET_MARK in text or numeric_secret else []


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))
    }


def assert_clean(outcome: Outcome, secrets: list[str]) -> None:
    event(f"exit status {outcome.status}")  # pytest --hypothesis-show-statistics
    assert outcome.status in (0, 2), outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert len(outcome.stderr.splitlines()) <= 2, outcome.stderr
    if outcome.status == 2:
        assert outcome.stderr.startswith("error: "), outcome.stderr
    for secret in secrets:
        assert secret not in outcome.output, (secret, outcome)


# --- what an accepted config renders into --------------------------------------------------


def command_shape(command: str) -> list[str]:
    """A shell command as the shell would split it: operators kept, every word one WORD."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return [token if set(token) <= set("();<>|&") else "WORD" for token in lexer]


def hook_shapes(stages: list[Stage]) -> list[list[list[str]]]:
    return [[command_shape(c) for c in (*stage.host, *stage.chroot)] for stage in stages]


DEFAULT_SHAPES = hook_shapes(load_stages(REPO / "stages", template_context(load_config())))


def assert_renders_safely(cfg: Config) -> None:
    context = template_context(cfg)
    stages = load_stages(REPO / "stages", context)
    assert hook_shapes(stages) == DEFAULT_SHAPES
    rendered: dict[str, bytes] = {}
    for stage in stages:
        if stage.overlay:
            files, _ = render_overlay(REPO / "overlays" / stage.overlay, stage.files, context)
            rendered.update({f.path: f.content for f in files})
    for path, content in rendered.items():
        text = content.decode()
        assert all(line.replace("\t", " ").isprintable() for line in text.splitlines()), path
    assert rendered["/etc/default/raspi-extra-cmdline"].decode().count("\n") <= 1
    assert rendered["/etc/hostname"].decode() == cfg.hostname + "\n"
    keys = [k for k in rendered[f"/home/{cfg.admin.user}/.ssh/authorized_keys"].decode().splitlines() if k]
    assert keys == list(cfg.admin.authorized_keys)
    for json_file in ("/etc/ewindow/agent.json", "/etc/ewindow/firstboot.json"):
        json.loads(rendered[json_file])
    sudoers = rendered["/etc/sudoers.d/ewindow-admin"].decode()
    assert f"\n{cfg.admin.user} ALL=(ALL:ALL) NOPASSWD: ALL\n" in f"\n{sudoers}"


# --- the fuzz tests ---------------------------------------------------------------------------


@FUZZ
@given(data=site_files(), raw_mutation=st.sampled_from([None, None, None, "truncate", "bytes", "tab"]))
def test_generated_site_files(data: dict[str, Any], raw_mutation: str | None) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    if raw_mutation == "truncate":
        text = text[: len(text) // 2]
    elif raw_mutation == "tab":
        text = text.replace("  ", "\t", 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site = folder / "site.yaml"
        site.write_bytes(text.encode() if raw_mutation != "bytes" else text.encode()[:-1] + b"\xff")
        before = snapshot(folder)
        outcome = build_py("config", "-c", str(site), cwd=folder)
        assert_clean(outcome, secrets_in(data))
        assert snapshot(folder) == before
        if outcome.status == 0:
            assert_renders_safely(load_config(ConfigLayers((site,))))


def dotted_keys(cls: type, prefix: str = "") -> dict[str, st.SearchStrategy[Any]]:
    """Every key ``--set`` can name, with a plausible value for it."""
    hints = typing.get_type_hints(cls)
    keys: dict[str, st.SearchStrategy[Any]] = {}
    for f in dataclasses.fields(cls):
        if f.name in ("base_dir", "origins"):
            continue
        key = f"{prefix}{f.name}"
        keys[key] = plausible_for(hints[f.name], key, bool(f.metadata.get("secret")))
        if dataclasses.is_dataclass(hints[f.name]):
            keys.update(dotted_keys(hints[f.name], f"{key}."))
    return keys


SET_KEYS = dotted_keys(Config)
SET_TEXT = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.sampled_from(["[xz, zstd]", "42", "true", "{a: 1}", "[", "&a [*a]", "!!python/object:os.system x"]),
)


@st.composite
def overrides(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """(``--set`` arguments, the secrets among their values)."""
    found, secrets = [], []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(
            st.one_of(st.sampled_from(sorted(SET_KEYS)), st.sampled_from(["hostnme", "a..b", "", "x y"]))
        )
        if key in SET_KEYS and draw(st.booleans()):
            value = draw(SET_KEYS[key])
            secrets += secrets_in(value)
            text = (
                yaml.safe_dump(value, default_flow_style=True, width=10**6)
                .strip()
                .removesuffix("...")
                .strip()
            )
        else:
            text = draw(SET_TEXT)
        found.append(f"{key}={text}")
    return found, secrets


@FUZZ
@given(generated=overrides())
def test_generated_set_values(generated: tuple[list[str], list[str]]) -> None:
    settings_given, secrets = generated
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        outcome = build_py("config", *[a for text in settings_given for a in ("--set", text)], cwd=folder)
        assert_clean(outcome, secrets)
        assert snapshot(folder) == {}
        if outcome.status == 0:
            assert_renders_safely(load_config(ConfigLayers((), tuple(settings_given))))


MACS = ["b8:27:eb:27:35:ed", "dc:a6:32:01:02:03", "e4:5f:01:aa:bb:cc"]


def identity_file(mac: str, index: int) -> Any:
    window = derive("", mac)
    return json.loads(
        public_identity(
            window,
            window.hostname,
            {"ed25519": "SHA256:x"},
            {
                "tinc_name": window.hostname.replace("-", "_"),
                "tinc_public_key": rsa_public_key_block(str(index)),
            },
        )
    )


IDENTITY_KEYS = ["hostname", "ula", "base_mac", "tap_mac", "link_local", "serial", "vpn", "extra"]
VPN_KEYS = ["tinc_name", "tinc_public_key", "cjdns_public_key", "yggdrasil_address", "other"]


@st.composite
def cards(draw: st.DrawFn) -> list[Any]:
    chosen = draw(st.lists(st.sampled_from(MACS), min_size=1, max_size=3, unique=True))
    files: list[Any] = []
    for index, mac in enumerate(chosen):
        data: Any = identity_file(mac, index)
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from(IDENTITY_KEYS + ["vpn." + k for k in VPN_KEYS]))
            smuggled = rsa_public_key_block("x") + "\nSubnet = 0.0.0.0/0"
            value = draw(st.one_of(hostile_value(), st.just(smuggled)))
            if key.startswith("vpn.") and isinstance(data.get("vpn"), dict):
                data["vpn"][key[4:]] = value
            else:
                data[key] = value
        if draw(st.integers(0, 9)) == 0:
            data = draw(hostile_value())  # not even an object
        files.append(data)
    return files


ZONE_LINE = re.compile(r"[a-z0-9-]+\.ewindow\.org\.\tIN\tAAAA\t[0-9a-f:]+")


@FUZZ
@given(files=cards())
def test_generated_identity_files_from_cards(files: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = []
        for index, data in enumerate(files):
            path = folder / f"card-{index}.json"
            path.write_text(json.dumps(data))
            paths.append(str(path))
        before = snapshot(folder)
        hub = folder / "hub-hosts"
        outcome = build_py("hosts", "--format", "zone", "--tinc-hosts", str(hub), *paths, cwd=folder)
        assert_clean(outcome, [])
        written = {k: v for k, v in snapshot(folder).items() if not k.startswith("hub-hosts")}
        assert written == before  # nothing outside the folder it was given
        if outcome.status == 2:
            assert not hub.exists()
            return
        assert all(ZONE_LINE.fullmatch(line) for line in outcome.stdout.splitlines()), outcome.stdout
        for host_file in hub.iterdir():
            assert re.fullmatch(r"[A-Za-z0-9_]+", host_file.name)
            text = host_file.read_text()
            assert text.count("-----BEGIN RSA PUBLIC KEY-----") == 1 and "Subnet" not in text


INVENTORY_ENTRY = st.one_of(
    st.fixed_dictionaries(
        {"mac": st.sampled_from(MACS)}, optional={"hostname": st.sampled_from(["lab", "w-1"])}
    ),
    st.fixed_dictionaries({"serial": st.just("00000000b83c3c1b")}),
)


@FUZZ
@given(entries=mutated(st.lists(INVENTORY_ENTRY, max_size=4), max_mutations=1))
def test_generated_inventories(entries: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inventory = folder / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(entries, allow_unicode=True))
        outcome = build_py("hosts", "--format", "zone", str(inventory), cwd=folder)
        assert_clean(outcome, [])
        assert [p.name for p in folder.iterdir()] == ["inventory.yaml"]
        if outcome.status == 0:
            assert all(ZONE_LINE.fullmatch(line) for line in outcome.stdout.splitlines()), outcome.stdout
