# SPDX-License-Identifier: MIT
"""Updates (README "Updates"): the window's upgrade run (updates/), the repository key and its
armour, the image's apt files for updates.repo, and the deployment repository end to end:
``network init`` → ``repo`` → the image's sources file and keyring → real apt on this host,
which takes the packages with the right key and refuses them with another."""

from __future__ import annotations

import datetime
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ewindow_image.config import ConfigLayers, load_config, template_context
from ewindow_image.config.openpgp import armored_public_key
from ewindow_image.errors import ConfigError
from ewindow_image.packages.repository import refuse_dirty
from ewindow_image.pipeline.driver import RepoPaths
from ewindow_image.pipeline.overlay import render_overlay
from updates import upgrade

from .conftest import requires_root

REPO = Path(__file__).resolve().parent.parent


# --- the run on the window ------------------------------------------------------------


@given(st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 1439))
def test_the_window_is_the_minutes_from_start_to_end_even_across_midnight(start: int, end: int,
                                                                          minute: int) -> None:
    if start == end:
        return
    window = (start, end)
    inside = {(start + k) % 1440 for k in range((end - start) % 1440)}
    now = datetime.datetime(2026, 12, 2, minute // 60, minute % 60)
    assert upgrade.in_window(now, window) == (minute in inside)


UNSIGNED = "E: The repository 'http://hub/ewindow trixie InRelease' is not signed."


def fake_commands(results: dict[str, tuple[int, str]]) -> tuple[upgrade.Run, list[str]]:
    ran: list[str] = []

    def run(argv: Sequence[str]) -> tuple[int, str]:
        ran.append(argv[0])
        return results.get(argv[0], (0, ""))

    return run, ran


@pytest.mark.parametrize(("results", "required", "reboot", "at", "expected"), [
    ({}, False, True, 3, ("ok", "ok", "ok", "not needed")),
    ({}, True, True, 3, ("ok", "ok", "ok", "rebooting")),
    ({}, True, True, 12, ("ok", "ok", "ok", "outside the window")),
    ({}, True, False, 3, ("ok", "ok", "ok", "off")),
    ({"apt-get": (100, UNSIGNED)}, False, True, 3,
     ("failed", f"apt-get update failed (100): {UNSIGNED}", "ok", "not needed")),
    ({"unattended-upgrade": (1, "dpkg: error processing package x")}, False, True, 3,
     ("failed", "ok", "unattended-upgrade failed (1): dpkg: error processing package x", "not needed")),
])
def test_a_run_keeps_what_failed_and_reboots_only_when_asked_inside_the_window(
        tmp_path: Path, results: dict[str, tuple[int, str]], required: bool, reboot: bool, at: int,
        expected: tuple[str, str, str, str]) -> None:
    flag = tmp_path / "reboot-required"
    if required:
        flag.touch()
    run, ran = fake_commands(results)
    clock = datetime.datetime(2026, 12, 2, at, 30).astimezone()
    outcome = upgrade.upgrade(upgrade.Settings((3 * 60, 5 * 60), reboot), run, lambda: clock, flag)
    assert ran == ["apt-get", "unattended-upgrade"]  # the lists fail: apt keeps the old ones, u-u runs
    assert (outcome.result, outcome.lists, outcome.upgrade, outcome.reboot) == expected
    upgrade.write_state(outcome, tmp_path / "upgrade.json")
    assert json.loads((tmp_path / "upgrade.json").read_text())["result"] == expected[0]


@pytest.mark.parametrize(("text", "message"), [
    ('{"window": "3-5", "reboot": true}', "window: '3-5' is not a time window"),
    ('{"window": "03:00-03:00", "reboot": true}', "is an empty time window"),
    ('{"window": "03:00-05:00", "reboot": "yes"}', "reboot: expected true or false"),
    ('{"reboot": true}', "window: expected HH:MM-HH:MM"),
    ("[", "updates.json: Expecting value"),
])
def test_bad_settings_on_the_window_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "updates.json"
    path.write_text(text)
    with pytest.raises(upgrade.SettingsError, match=message.replace("(", r"\(")) as info:
        upgrade.load_settings(path)
    assert str(info.value).startswith(str(path))


# --- the key and the image's apt files --------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deployment") / "net"
    subprocess.run([sys.executable, str(REPO / "build.py"), "network", "init", str(folder)], check=True,
                   capture_output=True)
    return folder


def test_network_init_makes_a_private_repository_key_and_nothing_keeps_running(deployment: Path) -> None:
    home = deployment / "repo-gnupg"
    assert home.stat().st_mode & 0o777 == 0o700
    assert (deployment / "ewindow-archive-keyring.gpg").is_file()
    agents = subprocess.run(["pgrep", "-f", "gpg-agent.*ewindow-gpg-"], capture_output=True, text=True)
    assert agents.stdout == ""
    again = subprocess.run([sys.executable, str(REPO / "build.py"), "network", "init", str(deployment)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "never overwritten" in again.stderr


def test_the_armour_is_the_key_gpg_reads(deployment: Path, tmp_path: Path) -> None:
    binary = (deployment / "ewindow-archive-keyring.gpg").read_bytes()
    armour = armored_public_key(binary)
    dearmored = subprocess.run(["gpg", "--batch", "--dearmor"], input=armour.encode(), capture_output=True,
                               check=True).stdout
    assert dearmored == binary
    assert armored_public_key(armour.encode()) == armour  # armour stays as it is
    for bad in (b"", b"hello", b"\x99" + binary[1:2], binary[:-1], binary + b"\x00",
                b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc"):
        with pytest.raises(ValueError):
            armored_public_key(bad)


@given(st.binary(max_size=300))
def test_any_bytes_are_armoured_only_when_they_are_a_whole_key(data: bytes) -> None:
    try:
        armour = armored_public_key(data)
    except ValueError:
        return
    assert armour.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def site(tmp_path: Path, deployment: Path, repo: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(f"secrets_file: {deployment / 'secrets.yaml'}\nupdates:\n  repo: {repo}\n"
                    "  window: '23:30-01:30'\n")
    return path


def rendered_updates(config: Path) -> dict[str, str]:
    cfg = load_config(ConfigLayers((config,), ()))
    files, _ = render_overlay(REPO / "overlays/updates", [], template_context(cfg))
    return {f.path: f.content.decode() for f in files}


def test_the_image_trusts_the_deployment_key_for_its_repository_only_when_set(
        deployment: Path, tmp_path: Path) -> None:
    files = rendered_updates(site(tmp_path, deployment, "http://[fde1:c0fe::1]/ewindow"))
    sources = files["/etc/apt/sources.list.d/ewindow-deployment.sources"]
    assert "URIs: http://[fde1:c0fe::1]/ewindow\nSuites: trixie\n" in sources
    assert "Signed-By: /etc/apt/keyrings/ewindow-deployment.asc" in sources
    assert files["/etc/apt/keyrings/ewindow-deployment.asc"].startswith("-----BEGIN PGP PUBLIC KEY")
    assert '"origin=EWindow,codename=${distro_codename}";' in files[
        "/etc/apt/apt.conf.d/52ewindow-unattended-upgrades"]
    timer = files["/etc/systemd/system/apt-daily-upgrade.timer.d/ewindow-window.conf"]
    assert "OnCalendar=*-*-* 23:30:00\nRandomizedDelaySec=90min\n" in timer and "Persistent=false" in timer
    assert json.loads(files["/etc/ewindow/updates.json"]) == {"window": "23:30-01:30", "reboot": True}
    # without updates.repo: Debian's security updates only, no source, no key
    plain = rendered_updates(site(tmp_path, deployment, '""'))
    assert not any("ewindow-deployment" in path for path in plain)
    assert "origin=EWindow" not in plain["/etc/apt/apt.conf.d/52ewindow-unattended-upgrades"]
    assert "label=Debian-Security" in plain["/etc/apt/apt.conf.d/52ewindow-unattended-upgrades"]


@pytest.mark.parametrize(("setting", "message"), [
    ("repo: ftp://hub/ewindow", "updates.repo: 'ftp://hub/ewindow' is not an http:// or https:// URL"),
    ("repo: http://user:secret@hub/ewindow", "holds a user name or password"),
    ("repo: 'http://hub/ewindow?x=1'", "has a query or fragment"),
    ("repo: 'http://hub/ewindow deb'", "is not a URL"),
    ("repo: http://hub:99999/ewindow", "has a port that is not a number"),
    ("window: '25:00-01:00'", "updates.window: '25:00-01:00' is not a time window"),
    ("key: /nonexistent.gpg\n  repo: http://hub/e", "updates.key: /nonexistent.gpg: no such file"),
])
def test_bad_update_settings_name_the_file_and_field(tmp_path: Path, setting: str, message: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(f"updates:\n  {setting}\n")
    with pytest.raises(ConfigError) as info:
        load_config(ConfigLayers((path,), ()))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_packages_from_uncommitted_changes_are_not_published() -> None:
    refuse_dirty([Path("ewindow-agent_0.1.0+12.gabc_all.deb")])
    with pytest.raises(Exception, match="uncommitted changes") as info:
        refuse_dirty([Path("ewindow-agent_0.1.0+12.gabc.dirty_all.deb")])
    assert "--allow-dirty" in str(getattr(info.value, "hint", ""))


# --- the repository, end to end ----------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on this host, and its URL."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/repo"
    finally:
        server.shutdown()


def apt(state: Path, files: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """This host's apt with only the image's sources file and key (arm64 lists)."""
    parts = state / "sources.list.d"
    parts.mkdir(parents=True, exist_ok=True)
    (state / "lists/partial").mkdir(parents=True, exist_ok=True)
    keyring = state / "ewindow-deployment.asc"
    keyring.write_text(files["/etc/apt/keyrings/ewindow-deployment.asc"])
    sources = files["/etc/apt/sources.list.d/ewindow-deployment.sources"]
    (parts / "ewindow-deployment.sources").write_text(
        sources.replace("/etc/apt/keyrings/ewindow-deployment.asc", str(keyring)))
    options = ["-oDir::Etc::SourceList=/dev/null", f"-oDir::Etc::SourceParts={parts}",
               f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}",
               "-oAPT::Architecture=arm64", "-oAPT::Architectures=arm64", "-oAPT::Sandbox::User=root"]
    return subprocess.run([args[0], *options, *args[1:]], capture_output=True, text=True, check=False)


def repo_cli(checkout: Path, config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EWINDOW_SOURCE_MIRRORS": os.environ.get("EWINDOW_SOURCE_MIRRORS",
                                                                   "/work/shared/sources")}
    return subprocess.run([sys.executable, str(checkout / "build.py"), "repo", "-c", str(config), "--out",
                           str(out), "--allow-dirty", "--hub-arch", "amd64"], capture_output=True, text=True,
                          env=env, check=False)


@pytest.mark.slow
@requires_root
def test_the_repository_serves_the_packages_to_apt_with_the_key_and_refuses_another(
        deployment: Path, served: tuple[Path, str], tmp_path: Path) -> None:
    www, url = served
    config = site(tmp_path, deployment, url)
    result = repo_cli(REPO, config, www / "repo")
    assert result.returncode == 0, result.stderr[-2000:]
    files = rendered_updates(config)
    listed = apt(tmp_path / "apt", files, "apt-get", "update")
    assert listed.returncode == 0 and "W:" not in listed.stderr and "E:" not in listed.stderr, listed.stderr
    for name in ("ewindow-agent", "ewindow-firstboot", "ewindow-updates", "peervpn", "cjdns"):
        policy = apt(tmp_path / "apt", files, "apt-cache", "policy", name).stdout
        assert "Candidate: (none)" not in policy and "Candidate:" in policy, (name, policy)
    assert "release o=EWindow,a=trixie,n=trixie,l=EWindow deployment,c=main,b=arm64" in apt(
        tmp_path / "apt", files, "apt-cache", "policy").stdout
    agents = subprocess.run(["pgrep", "-f", "gpg-agent.*ewindow-gpg-"], capture_output=True,
                            text=True)
    assert agents.stdout == ""  # the command stopped the agent gpg started

    # another deployment's key: apt refuses the repository and keeps nothing from it
    other = tmp_path / "other"
    subprocess.run([sys.executable, str(REPO / "build.py"), "network", "init", str(other)], check=True,
                   capture_output=True)
    (tmp_path / "other-site").mkdir()
    forged = rendered_updates(site(tmp_path / "other-site", other, url))
    refused = apt(tmp_path / "apt-other", forged, "apt-get", "update")
    assert refused.returncode != 0 and "NO_PUBKEY" in refused.stderr + refused.stdout, refused.stderr
    unknown = apt(tmp_path / "apt-other", forged, "apt-cache", "policy", "ewindow-agent")
    assert "Candidate" not in unknown.stdout  # apt does not know the package
    assert not list((tmp_path / "apt-other/lists").glob("*Packages*"))

    # the same version with other contents (a copy whose stamp keeps the versions) is refused
    copy = RepoPaths(REPO).copy_to(tmp_path / "checkout").root
    with (copy / "packages/ewindow-agent/root/usr/lib/sysusers.d/ewindow-agent.conf").open("a") as f:
        f.write("# changed\n")
    again = repo_cli(copy, config, www / "repo")
    assert again.returncode == 1, again.stderr
    assert "has this version already, with other contents" in again.stderr


def test_a_command_s_first_error_line_is_what_the_run_keeps() -> None:
    from updates.__main__ import run

    said = run(["sh", "-c", "echo Hit:1 x; echo 'E: Failed to fetch http://10.0.2.100/repo'; "
                            "echo 'E: Some index files failed to download.'; exit 100"])
    assert said == (100, "E: Failed to fetch http://10.0.2.100/repo")
    assert run(["sh", "-c", "echo one; echo two"]) == (0, "two")
