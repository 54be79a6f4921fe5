# SPDX-License-Identifier: MIT
"""The classes of hostile and malformed input found by the corpus of issue 10, one example
each: a clean one-line error naming the file and field, exit status 2, nothing written and
nothing run. tests/test_fuzz_input.py generates many more."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ewindow_image.cards.personalise import deployment
from ewindow_image.config import ConfigLayers, load_config
from ewindow_image.errors import ConfigError
from firstboot.files import public_identity
from firstboot.identity import derive

from .clirun import Outcome, build_py
from .keys import ed25519_line, rsa_public_key_block

WINDOW = derive("", "b8:27:eb:27:35:ed")


def refused(outcome: Outcome, *expected: str) -> None:
    """Exit 2, one or two lines on stderr, each expected text in them, no traceback."""
    lines = outcome.stderr.splitlines()
    assert outcome.status == 2, outcome
    assert 1 <= len(lines) <= 2, outcome.stderr
    assert "Traceback" not in outcome.stderr
    for text in expected:
        assert text in outcome.stderr, outcome.stderr


def site(tmp_path: Path, text: str | bytes, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- 1. nothing reaches a shell, a path, an apt line or cmdline.txt unchecked --------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("timezone: 'Etc/UTC\"; touch /tmp/PWNED; echo \"'\n", "timezone"),
        ("timezone: ../../etc/passwd\n", "timezone"),
        ("timezone: Mars/Olympus_Mons\n", "timezone"),
        ('apt:\n  mirror: "http://deb.debian.org/debian\\ndeb http://evil.example/ x main"\n', "apt.mirror"),
        ('apt:\n  proxy: "http://proxy:3142\\"; Acquire::x \\"y"\n', "apt.proxy"),
        ('boot:\n  cmdline_extra: "quiet\\ninit=/bin/sh"\n', "boot.cmdline_extra"),
        ('boot:\n  config_txt_extra: ["dtparam=audio=on\\n[all]"]\n', "boot.config_txt_extra[0]"),
        ('admin:\n  user: "ops; rm -rf /"\n', "admin.user"),
        ("image:\n  name: ../../etc/cron.d/x\n", "image.name"),
        ('extra_packages: ["vim\\nbash"]\n', "extra_packages[0]"),
        ('vpn:\n  network_name: "ewindow\\n[x]"\n', "vpn.network_name"),
        ('sources:\n  mirrors: ["http://mirror.example/ x"]\n', "sources.mirrors[0]"),
    ],
)
def test_values_that_would_reach_a_shell_or_file_are_refused(tmp_path: Path, text: str, field: str) -> None:
    pwned = Path("/tmp/PWNED")
    pwned.unlink(missing_ok=True)
    refused(build_py("config", "-c", str(site(tmp_path, text))), f"site.yaml: {field}:")
    assert not pwned.exists()


def test_a_timezone_that_slipped_past_the_check_is_still_one_quoted_word(tmp_path: Path) -> None:
    """The second line of defence: the hook quotes the value (``| sh``)."""
    from ewindow_image.pipeline.stages.definition import template_env

    env = template_env(tmp_path, one_line_values=True)
    rendered = env.from_string("test -e /usr/share/zoneinfo/{{ tz | sh }}").render(tz='x"; touch /tmp/P; "')
    assert rendered == "test -e /usr/share/zoneinfo/'x\"; touch /tmp/P; \"'"
    with pytest.raises(ValueError, match="line break"):
        env.from_string("- {{ v }}").render(v="a\nkey: value")


# --- 2. files from the cards ----------------------------------------------------------------


def card(tmp_path: Path, **changes: object) -> Path:
    data = json.loads(
        public_identity(
            WINDOW,
            WINDOW.hostname,
            {"ed25519": "SHA256:abc"},
            {"tinc_name": "ewindow_2735ed", "tinc_public_key": rsa_public_key_block("w")},
        )
    )
    for key, value in changes.items():
        if key.startswith("vpn_"):
            data["vpn"][key.removeprefix("vpn_")] = value
        else:
            data[key] = value
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"vpn_tinc_name": "../OUTSIDE"}, "vpn.tinc_name"),
        ({"vpn_tinc_public_key": rsa_public_key_block("w") + "\nSubnet = 0.0.0.0/0"}, "vpn.tinc_public_key"),
        (
            {
                "vpn_tinc_public_key": "-----BEGIN RSA PUBLIC KEY-----\nSubnet = 0.0.0.0/0\n"
                "-----END RSA PUBLIC KEY-----"
            },
            "vpn.tinc_public_key",
        ),
        ({"hostname": "evil\nwww.bank.example.\tIN\tAAAA\t::1"}, "hostname"),
        ({"ula": "not-an-ip"}, "ula"),
        ({"ula": "fde1:c0fe::1"}, "ula"),
        ({"base_mac": "01:00:5e:00:00:01"}, "base_mac"),
        ({"vpn_wireguard_key": "x"}, "vpn."),
    ],
)
def test_hostile_identity_files_are_refused_and_nothing_is_written(
    tmp_path: Path, changes: dict[str, object], field: str
) -> None:
    hub_dir = tmp_path / "hub" / "hosts"
    outcome = build_py(
        "hosts", "--format", "zone", "--tinc-hosts", str(hub_dir), str(card(tmp_path, **changes))
    )
    refused(outcome, f"card.json: {field}")
    assert not (tmp_path / "OUTSIDE").exists() and not (tmp_path / "hub").exists()
    assert outcome.stdout == ""


@pytest.mark.parametrize("content", [b"[1, 2]", b"\xff\xfe{}", b"[" * 20000 + b"]" * 20000, b"{" * 3])
def test_malformed_identity_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "card.json"
    path.write_bytes(content)
    refused(build_py("hosts", str(path)), "card.json")


def test_a_good_card_gives_its_hosts_line_and_tinc_file(tmp_path: Path) -> None:
    outcome = build_py("hosts", "--tinc-hosts", str(tmp_path / "hosts"), str(card(tmp_path)))
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout == f"{WINDOW.ula}\tewindow-2735ed.ewindow.org ewindow-2735ed\n"
    assert [p.name for p in (tmp_path / "hosts").iterdir()] == ["ewindow_2735ed"]


def test_two_cards_with_one_tinc_name_are_refused(tmp_path: Path) -> None:
    other = derive("", "dc:a6:32:01:02:03")
    second = tmp_path / "other.json"
    second.write_text(
        public_identity(
            other,
            other.hostname,
            {},
            {"tinc_name": "ewindow_2735ed", "tinc_public_key": rsa_public_key_block("o")},
        )
    )
    outcome = build_py("hosts", "--tinc-hosts", str(tmp_path / "hosts"), str(card(tmp_path)), str(second))
    refused(outcome, "vpn.tinc_name: ewindow_2735ed is also the tinc name of")
    assert not (tmp_path / "hosts").exists()


# --- 3. resources ---------------------------------------------------------------------------

ALIAS_BOMB = (
    "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)}]\n"
        for i in range(8)
    )
    + "hostname: *i\n"
)


@pytest.mark.timeout(60)
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB) < 1024
    outcome = build_py("config", "-c", str(site(tmp_path, ALIAS_BOMB)))
    refused(outcome, "site.yaml: line 2: aliases")
    assert len(outcome.stderr) < 300


@pytest.mark.timeout(60)
def test_a_large_key_file_is_merged_in_linear_time_and_a_huge_one_refused(tmp_path: Path) -> None:
    many = "".join(f"key{i}: value{i}\n" for i in range(45000))  # ~0.9 MB, under the limit
    refused(build_py("config", "-c", str(site(tmp_path, many))), "site.yaml: key0: unknown key")
    huge = tmp_path / "huge.yaml"
    with huge.open("w") as stream:
        stream.truncate(50 << 20)
    refused(build_py("config", "-c", str(huge)), "huge.yaml: (file): larger than 1024 KiB")


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    refused(
        build_py("config", "-c", str(site(tmp_path, "extra_packages: " + "[" * 20000 + "]" * 20000))),
        "nested deeper than",
    )


# --- 4. what used to end in a traceback ---------------------------------------------------


def test_what_used_to_end_in_a_traceback(tmp_path: Path) -> None:
    refused(
        build_py("config", "-c", str(site(tmp_path, b"hostname: caf\xe9\n"))), "site.yaml: line 1: not UTF-8"
    )
    keys = tmp_path / "keys.pub"
    keys.write_bytes(b"ssh-ed25519 \xff\xfe\n")
    refused(
        build_py("config", "-c", str(site(tmp_path, "admin:\n  authorized_keys_file: keys.pub\n"))),
        "keys.pub: line 1: not UTF-8",
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_bytes(b"- {mac: '\xff'}\n")
    refused(build_py("hosts", str(inventory)), "inventory.yaml: line 1: not UTF-8")
    refused(build_py("identity", "--mac", ""), "--mac: '' is not a MAC address")
    refused(build_py("config", "--set", "build.cache_max_size=inf"), "build.cache_max_size")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    refused(build_py("network", "init", str(a_file)), "exists and is not a folder")


# --- 5. accepted then, refused later or harmful: refused now --------------------------------


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("identity.prefix='2001:4860:4860::/64'", "identity.prefix"),
        ("identity.prefix='ff02::/64'", "identity.prefix"),
        ("identity.prefix='fde1:c0fe::/48'", "identity.prefix"),
        ("vpn.peervpn.port=70000", "vpn.peervpn.port"),
        ("vpn.tinc.port=-1", "vpn.tinc.port"),
        ("agent.probe.interval_s=0", "agent.probe.interval_s"),
        ("agent.probe.vpn_interval_s=.inf", "agent.probe.vpn_interval_s"),
        ("vpn.hub_addresses=['hub.example.org']", "vpn.hub_addresses[0]"),
        ("build.cache_max_size=-5G", "build.cache_max_size"),
        ("admin.user=daemon", "admin.user"),
        ("hostname=window-", "hostname"),
        ("admin.authorized_keys=['ssh-ed25519 notakey']", "admin.authorized_keys[0]"),
        ("vpn.cjdns.peers=[{address: 'hub:999999', public_key: x}]", "vpn.cjdns.peers[0].address"),
        ("vpn.yggdrasil.peers=['tls://hub.example.org']", "vpn.yggdrasil.peers[0]"),
        ("vpn.psk='two words'", "vpn.psk"),
    ],
)
def test_values_the_window_would_refuse_are_refused_now(setting: str, field: str) -> None:
    refused(build_py("config", "--set", setting), f"--set: {field}:")


def test_cache_prune_refuses_negative_ages_and_sizes(tmp_path: Path) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    refused(build_py("cache", "prune", "--max-age", "-3", *cache), "--max-age: -3 is not a number of days")
    refused(build_py("cache", "prune", "--max-size=-5G", *cache), "--max-size: '-5G' is not a size")
    assert not (tmp_path / "cache").exists()


def test_a_global_prefix_needs_a_deliberate_opt_in() -> None:
    cfg = load_config(
        ConfigLayers((), ("identity.prefix='2a01:4f8:1:2::/64'", "identity.allow_global_prefix=true"))
    )
    assert cfg.identity.prefix == "2a01:4f8:1:2::/64"


def test_a_card_without_the_peervpn_key_is_refused_when_it_is_made(tmp_path: Path) -> None:
    """The missing key is blamed on a file the admin wrote, never on the built-in defaults."""
    cfg = load_config(ConfigLayers((), ("vpn.peervpn.initpeers=['203.0.113.7 7777']",)))
    with pytest.raises(ConfigError, match="^the site file \\(none given: -c site.yaml\\): vpn.psk: PeerVPN "
                       "needs the deployment's pre-shared key"):
        deployment(cfg)
    written = site(tmp_path, "vpn:\n  peervpn:\n    initpeers: ['203.0.113.7 7777']\n")
    with pytest.raises(ConfigError, match=f"^{written}: vpn.psk: PeerVPN needs"):
        deployment(load_config(ConfigLayers((written,))))
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("wifi:\n  country: DE\n")
    secrets.chmod(0o600)
    named = site(tmp_path, written.read_text() + "secrets_file: secrets.yaml\n", "named.yaml")
    with pytest.raises(ConfigError, match=f"^{secrets}: vpn.psk: PeerVPN needs"):
        deployment(load_config(ConfigLayers((named,))))
    # a secrets file that names a secrets file is refused, not ignored
    secrets.write_text("secrets_file: other.yaml\n")
    refused(build_py("config", "-c", str(named)), f"{secrets}: secrets_file: a secrets file cannot name")


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"])
def test_macs_that_are_no_cards_are_refused(mac: str, tmp_path: Path) -> None:
    refused(build_py("identity", "--mac", mac), "--mac:")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"- {{mac: '{mac}'}}\n")
    refused(build_py("hosts", str(inventory)), "inventory.yaml: [0]:")


def test_duplicate_keys_and_inventory_typos_are_refused(tmp_path: Path) -> None:
    refused(
        build_py("config", "-c", str(site(tmp_path, "hostname: a\nhostname: b\n"))),
        "site.yaml: line 2: duplicate key 'hostname'",
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("- {mac: 'dc:a6:32:01:02:03', hostnme: lab}\n")
    refused(
        build_py("hosts", str(inventory)),
        "inventory.yaml: [0].'hostnme': unknown key (did you mean 'hostname'?)",
    )
    inventory.write_text("- {mac: 'dc:a6:32:01:02:03'}\n- {mac: [\n")
    refused(build_py("hosts", str(inventory)), "inventory.yaml: line 3:")


def test_set_secrets_file_is_read(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("vpn:\n  psk: from-the-secrets-file-0123\n")
    secrets.chmod(0o600)
    cfg = load_config(ConfigLayers((), (f"secrets_file={secrets}",)))
    assert cfg.vpn.psk == "from-the-secrets-file-0123"


# --- 6. side effects ------------------------------------------------------------------------


def test_network_init_leaves_an_existing_folders_mode_and_refuses_a_shared_one(tmp_path: Path) -> None:
    private = tmp_path / "net"
    private.mkdir(mode=0o750)
    private.chmod(0o750)
    assert build_py("network", "init", str(private)).status == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o750
    assert stat.S_IMODE((private / "secrets.yaml").stat().st_mode) == 0o600
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    refused(build_py("network", "init", str(shared)), "others can write to it (mode 1777)")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777 and not any(shared.iterdir())


# --- 7. messages ----------------------------------------------------------------------------


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    text = "wifi:\n  country: DE\n  networks:\n    - {ssid: lab, psk: 98765432109876}\n"
    outcome = build_py("config", "-c", str(site(tmp_path, text)))
    refused(outcome, "wifi.networks[0].psk: expected a string (write it in quotes)")
    assert "98765432109876" not in outcome.output
    outcome = build_py("config", "--set", "vpn.psk=55443322110099")
    refused(outcome, "vpn.psk: expected a string (write it in quotes)")
    assert "55443322110099" not in outcome.output


def test_messages_blame_the_right_file_and_help(tmp_path: Path) -> None:
    refused(
        build_py("config", "-c", str(site(tmp_path, "wifi:\n  networks: [{ssid: lab, psk: ''}]\n"))),
        "site.yaml: wifi.networks: needs wifi.country",
    )
    refused(
        build_py("config", "-c", str(site(tmp_path, "wifi:\n  country: NO\n"))),
        'site.yaml: wifi.country: got false: write the country code in quotes, e.g. "NO"',
    )


def test_ssh_key_lines_with_options_are_accepted() -> None:
    line = 'from="10.0.0.0/8",no-pty ' + ed25519_line("opt", "admin@site")
    cfg = load_config(ConfigLayers((), (f"admin.authorized_keys=['{line}']",)))
    assert cfg.admin.authorized_keys == (line,)


# --- 8. help ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "build",
        "config",
        "plan",
        "packages",
        "cache",
        "identity",
        "personalise",
        "flash",
        "station",
        "network",
        "hosts",
        "boot-test",
        "verify-repro",
    ],
)
def test_every_command_says_what_it_does_changes_and_returns(command: str) -> None:
    outcome = build_py(command, "--help")
    assert outcome.status == 0
    usage, description = outcome.stdout.split("\n\n", 2)[:2]
    assert len(description.strip()) > 20 and "``" not in outcome.stdout
    assert "exit status:" in outcome.stdout and "  2    bad usage or bad input" in outcome.stdout
    for option in ("--out", "--cache-dir", "--format", "--set"):
        if option in usage:
            assert f"{option} " in outcome.stdout.split("options:", 1)[1]
    assert all(
        line.strip() != option
        for option in ("--out DIR", "--cache-dir DIR")
        for line in outcome.stdout.splitlines()
    )  # every option has its help text
    if command == "flash":
        assert "ERASES EVERYTHING ON DEVICE" in outcome.stdout


@pytest.mark.parametrize(("args", "inventory", "expected"), [
    (("--parallel", "100"), None, "station: --parallel: 100 is outside 0..64"),
    (("--count", "-1"), None, "station: --count: -1 is negative"),
    (("--device", "./sdb"), None, "station: --device: sdb: expected a block device under /dev"),
    (("--device", "/dev/null"), None, "station: --device: /dev/null: expected a block device under /dev"),
    ((), "- lab-1\n- lab-1\n", "inventory.yaml: [1].hostname: lab-1 is entry [0] already"),
    ((), "- {hostname: x, suite: bookworm}\n", "inventory.yaml: [0].suite: not a per-window setting"),
    ((), "- {hostname: 'a;reboot'}\n", "inventory.yaml: [0].hostname: "),
    ((), "- {hostname: a, wifi: {country: France}}\n", "inventory.yaml: [0]: wifi.country: "),
    ((), "[]\n", "inventory.yaml: (top level): no names"),
])
def test_the_station_refuses_bad_options_and_inventories_before_anything(
        tmp_path: Path, args: tuple[str, ...], inventory: str | None, expected: str) -> None:
    """Before a card, an image or the station log is touched: nothing is written."""
    extra: list[str] = []
    if inventory is not None:
        extra = ["--inventory", str(site(tmp_path, inventory, "inventory.yaml"))]
    before = sorted(os.listdir(tmp_path))
    outcome = build_py("station", *args, *extra, "--image", str(tmp_path / "none.img"), cwd=tmp_path)
    refused(outcome, expected)
    assert sorted(os.listdir(tmp_path)) == before


def test_a_usage_error_is_one_line() -> None:
    refused(build_py("hosts"), "error: build.py hosts: the following arguments are required: inputs")


def test_the_environment_is_untouched_by_refused_input(tmp_path: Path) -> None:
    before = sorted(os.listdir(tmp_path))
    build_py("config", "-c", str(site(tmp_path, "timezone: 'a b'\n")), cwd=tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "site.yaml"])


# --- issue 22: other values -------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["::/64", "100::/64", "2001:db8::/64", "ff02::/64"])
def test_a_global_prefix_must_be_global_unicast(tmp_path: Path, prefix: str) -> None:
    text = f"identity:\n  allow_global_prefix: true\n  prefix: '{prefix}'\n"
    refused(build_py("config", "-c", str(site(tmp_path, text))), "identity.prefix", "unicast prefix")


@pytest.mark.parametrize("content", [None, b"root:x:0:0\n", b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n"
                                     b"-----END PGP PUBLIC KEY BLOCK-----\n", b"\x99\x00\x05hello"])
def test_a_key_file_must_hold_an_openpgp_public_key(tmp_path: Path, content: bytes | None) -> None:
    key = Path("/etc/shadow") if content is None else tmp_path / "repo.asc"
    if content is not None:
        key.write_bytes(content)
    text = (f"apt:\n  extra_repos:\n    - {{uri: 'https://repo.example.org/debian', suite: stable, "
            f"components: [main], key_file: '{key}'}}\n")
    refused(build_py("config", "-c", str(site(tmp_path, text))), "apt.extra_repos[0].key_file", str(key),
            "gpg --export")


def test_file_urls_name_no_other_host(tmp_path: Path) -> None:
    text = "sources:\n  mirrors: ['file://fileserver/srv/sources']\n"
    refused(build_py("config", "-c", str(site(tmp_path, text))), "sources.mirrors[0]", "no host")


@pytest.mark.timeout(30)
def test_a_site_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "site.yaml"
    os.mkfifo(fifo)
    refused(build_py("config", "-c", str(fifo)), f"{fifo}: (file): not a regular file")


def test_tinc_hosts_into_a_file_is_one_line(tmp_path: Path) -> None:
    identity = tmp_path / "identity.json"
    identity.write_text(public_identity(WINDOW, WINDOW.hostname, {}, {}))
    not_a_folder = tmp_path / "hosts"
    not_a_folder.write_text("")
    refused(build_py("hosts", str(identity), "--tinc-hosts", str(not_a_folder)),
            f"{not_a_folder}: not a folder")
    assert not_a_folder.read_text() == ""


def test_network_init_refuses_a_folder_of_another_user(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    refused(build_py("network", "init", str(theirs)), "owned by another user (uid 65534")
    assert not any(theirs.iterdir())


@pytest.mark.parametrize("content", [b"\x00\x01\x02\xff" * 100,
                                     "nano\t7.2-1\tarm64\tcafé\n".encode("latin-1"), None])
def test_plan_refuses_a_manifest_that_is_none_before_planning(tmp_path: Path, content: bytes | None) -> None:
    manifest = tmp_path / "old.manifest"
    if content is None:
        os.mkfifo(manifest)
    else:
        manifest.write_bytes(content)
    outcome = build_py("plan", "--manifest", str(manifest), "--cache-dir", str(tmp_path / "cache"))
    refused(outcome, f"{manifest}: ")
    assert "==>" not in outcome.stderr  # nothing planned


def test_a_manifest_name_with_an_escape_sequence_is_shown_escaped(tmp_path: Path) -> None:
    """``plan`` prints the manifest's name: a terminal must not act on what it holds."""
    manifest = tmp_path / "old\x1b[2J\x1b]0;pwned\x07.manifest"
    manifest.write_text("nano\t0.1-1\tarm64\t" + "0" * 64 + "\tdebian\n")
    outcome = build_py("plan", "--manifest", str(manifest))
    assert outcome.status == 0, outcome.stderr
    assert "\x1b" not in outcome.stdout and "\x07" not in outcome.stdout
    assert "old\\x1b[2J\\x1b]0;pwned\\x07.manifest" in outcome.stdout


def test_which_keys_are_secret_comes_from_the_schema() -> None:
    from ewindow_image.config.fields import is_secret
    from ewindow_image.config.schema import Config
    assert is_secret(Config, "vpn.psk") and is_secret(Config, "wifi.networks[3].psk")
    assert not any(is_secret(Config, k) for k in ("vpn.network_name", "wifi.country", "no.such.key", "vpn"))
