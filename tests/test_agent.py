# SPDX-License-Identifier: MIT
"""The status agent against gpiozero's MockFactory: LED pin histories for states and
transitions, the button with an injected clock, links from fixture sysfs trees.

``test_agent_with_gpiozero_1_6`` runs this file again with Debian's gpiozero 1.6.2 (from PyPI
into the cache) in front of the venv's 2.0.x, so both versions are tested.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hardware.agent import Agent, Paths
from hardware.button import Action, Hold, PressClassifier
from hardware.config import (
    AgentConfig,
    AgentConfigError,
    ButtonConfig,
    LedConfig,
    LedKind,
    ProbeConfig,
    load,
)
from hardware.indicators import ActLed, DualLed, NoIndicator, RgbLed, SingleLed, make_indicator
from hardware.linkwatch import IFINFOMSG, NLMSG_HEADER, RTATTR, RTM_NEWLINK, parse_link_messages
from hardware.notify import notify
from hardware.patterns import PATTERNS, PatternPlayer
from hardware.state import Facts, Internet, State, derive_state

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    saved = Device.pin_factory
    Device.pin_factory = mock
    yield mock
    mock.reset()
    Device.pin_factory = saved


def levels(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(s.state) for s in factory.pin(pin).states]


# --- state -----------------------------------------------------------------------------------

OK = Facts(
    link_up=True, has_ip=True, internet=Internet.online, clock_synced=True, vpn_configured=True, vpn_up=True
)


@pytest.mark.parametrize(
    ("change", "state"),
    [
        ({}, State.vpn_up),
        ({"vpn_up": False}, State.vpn_down),
        ({"vpn_up": False, "vpn_hub": True}, State.vpn_hub),
        ({"vpn_hub": True}, State.vpn_up),
        ({"vpn_configured": False, "vpn_up": False}, State.vpn_not_configured),
        ({"clock_synced": False}, State.clock),
        ({"internet": Internet.offline}, State.no_internet),
        ({"internet": Internet.captive}, State.captive),
        ({"has_ip": False, "internet": Internet.offline}, State.no_ip),
        ({"link_up": False, "has_ip": False}, State.no_link),
        ({"firstboot": "failed", "link_up": False}, State.fault),
        ({"fault": "bad config"}, State.fault),
        ({"mac_conflict": True}, State.fault),
        ({"updating": True, "link_up": False, "vpn_up": False}, State.updating),
        ({"updating": True, "firstboot": "failed"}, State.fault),
        ({"firstboot": "running", "link_up": False}, State.firstboot),
        ({"identify": True, "firstboot": "running"}, State.identify),
    ],
)
def test_first_true_state_wins(change: dict[str, Any], state: State) -> None:
    assert derive_state(Facts(**{**OK.__dict__, **change})) is state


def test_every_state_has_a_pattern_and_flash_codes_stop_at_three() -> None:
    assert set(PATTERNS) == set(State)
    for state, pattern in PATTERNS.items():
        if state is not State.identify:  # identify's fast burst is not meant to be counted
            assert sum(1 for level, _ in pattern if level) <= 3, state
    counted = {
        s: sum(1 for level, _ in PATTERNS[s] if level)
        for s in (State.no_link, State.no_ip, State.no_internet)
    }
    assert counted == {State.no_link: 1, State.no_ip: 2, State.no_internet: 3}


# --- patterns on pins -------------------------------------------------------------------------


def test_player_plays_the_flash_code_and_replaying_does_not_restart(factory: MockFactory) -> None:
    led = SingleLed(17, True, factory)
    player = PatternPlayer(led.show, scale=0.1)  # 1 flash = 0.02 s on, then 0.15 s off
    player.play(State.no_link)
    time.sleep(0.05)
    player.play(State.no_link)  # a duplicate event: same phase
    time.sleep(0.35)
    player.stop()
    states = factory.pin(17).states
    assert [bool(s.state) for s in states[:5]] == [False, True, False, True, False]
    assert states[2].timestamp == pytest.approx(0.02, abs=0.02)  # on for SHORT
    assert states[3].timestamp == pytest.approx(0.15, abs=0.03)  # off for PAUSE: not restarted at 0.05 s
    led.close()


def test_a_new_state_starts_its_own_pattern(factory: MockFactory) -> None:
    led = SingleLed(17, True, factory)
    player = PatternPlayer(led.show, scale=0.1)
    player.play(State.vpn_up)  # on 0.19 s, off-blip 0.01 s
    time.sleep(0.05)
    factory.pin(17).clear_states()
    player.play(State.fault)  # 0.01 / 0.01
    time.sleep(0.1)
    player.stop()
    flips = levels(factory, 17)  # vpn_up's "on", then the fast blink's off/on at 0.01 s
    assert len(flips) >= 6 and flips[:4] == [True, False, True, False]
    led.close()


def test_dual_led_green_for_ok_red_for_faults_both_for_amber(factory: MockFactory) -> None:
    dual = DualLed(5, 6, True, factory)
    for state, expected in (
        (State.vpn_up, (True, False)),
        (State.fault, (False, True)),
        (State.no_link, (True, True)),
        (State.identify, (True, True)),
    ):
        from hardware.patterns import COLOURS

        dual.show(1.0, COLOURS[state])
        assert (dual.board.green.is_lit, dual.board.red.is_lit) == expected, state
    dual.show(0.0, COLOURS[State.vpn_up])
    assert not dual.board.green.is_lit and not dual.board.red.is_lit
    dual.close()


def test_rgb_led_shows_the_category_colour(factory: MockFactory) -> None:
    factory.pin_class = MockPWMPin
    rgb = RgbLed(22, 23, 24, True, factory)
    rgb.show(1.0, (1.0, 0.5, 0.0))
    assert [factory.pin(p).state for p in (22, 23, 24)] == [1.0, 0.5, 0.0]
    rgb.close()


def test_rgb_led_without_pwm_shows_plain_colours(factory: MockFactory) -> None:
    rgb = RgbLed(22, 23, 24, True, factory)  # MockPin has no PWM, like the libgpiod factory
    assert not rgb.pwm
    rgb.show(1.0, (1.0, 0.5, 0.0))  # amber → red + green
    assert [factory.pin(p).state for p in (22, 23, 24)] == [True, True, False]
    rgb.close()


def act_tree(tmp_path: Path, name: str = "ACT") -> Path:
    leds = tmp_path / "leds"
    (leds / name).mkdir(parents=True)
    (leds / name / "trigger").write_text("none [mmc0] timer heartbeat\n")
    (leds / name / "brightness").write_text("0\n")
    (leds / name / "max_brightness").write_text("255\n")
    return leds


def test_act_led_takes_over_and_gives_back(tmp_path: Path) -> None:
    leds = act_tree(tmp_path, "led0")  # older kernels
    act = ActLed(leds)
    assert (leds / "led0/trigger").read_text() == "none"
    act.show(1.0, (0, 1, 0))
    assert (leds / "led0/brightness").read_text() == "255"
    act.show(0.0, (0, 1, 0))
    assert (leds / "led0/brightness").read_text() == "0"
    act.close()
    assert (leds / "led0/trigger").read_text() == "mmc0"


def test_unusable_gpio_falls_back_to_act_then_nothing(factory: MockFactory, tmp_path: Path) -> None:
    busy = SingleLed(17, True, factory)  # the pin is taken
    indicator, why = make_indicator(
        LedConfig(LedKind.single, (17,)), factory=factory, leds=act_tree(tmp_path)
    )
    assert isinstance(indicator, ActLed) and "GPIOPinInUse" in why
    indicator, why = make_indicator(
        LedConfig(LedKind.single, (17,)), factory=factory, leds=tmp_path / "none"
    )
    assert isinstance(indicator, NoIndicator) and "no ACT LED" in why
    busy.close()


# --- the agent: links, button, actions ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sysfs(tmp_path: Path, **links: str) -> Path:
    root = tmp_path / "sys"
    for name, state in links.items():
        entry = root / "class/net" / name
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "operstate").write_text(state + "\n")
        (entry / "carrier").write_text("1\n" if state == "up" else "0\n")
    return root


def current(agent: Agent) -> State:
    return agent.state


def make_agent(tmp_path: Path, factory: MockFactory, clock: Clock, **probe: Any) -> Agent:
    config = AgentConfig(
        LedConfig(LedKind.single, (17,)),
        ButtonConfig(pin=3, restart_vpn_s=3, reboot_s=10, stuck_s=30),
        ProbeConfig(interfaces=("veth0",), **probe),
    )
    paths = Paths(
        sys=sysfs(tmp_path, veth0="up"),
        firstboot=tmp_path / "firstboot.json",
        synchronized=tmp_path / "synchronized",
        requests=tmp_path / "requests",
        updating=tmp_path / "updating",
        metrics_dir=tmp_path / "metrics",
        upgrade=tmp_path / "upgrade.json",
    )
    return Agent(
        config, SingleLed(17, True, factory), paths=paths, clock=clock, scale=0.1,
        checks=lambda: {"internet": Internet.online}, vpn_checks=lambda: {"vpn_up": True},
    )


def test_link_loss_is_debounced_and_a_link_back_shown_at_once(tmp_path: Path, factory: MockFactory) -> None:
    clock = Clock()
    agent = make_agent(tmp_path, factory, clock)
    assert agent.facts.link_up
    (tmp_path / "sys/class/net/veth0/operstate").write_text("lowerlayerdown\n")
    agent.handle(("link", "veth0"))
    agent.tick()
    assert agent.facts.link_up  # a flicker is not shown
    clock.now += 2.0
    agent.tick()
    assert current(agent) is State.no_link
    (tmp_path / "sys/class/net/veth0/operstate").write_text("up\n")
    (tmp_path / "sys/class/net/veth0/carrier").write_text("1\n")
    agent.handle(("link", "veth0"))
    agent.tick()
    assert agent.facts.link_up
    agent.player.stop()


def test_button_identify_restart_reboot_and_stuck(tmp_path: Path, factory: MockFactory) -> None:
    clock = Clock()
    agent = make_agent(tmp_path, factory, clock)
    for held, action in (
        (0.4, Action.identify),
        (4.0, Action.restart_vpn),
        (12.0, Action.reboot),
        (45.0, Action.ignored),
    ):
        agent.handle(("pressed", None))
        clock.now += held
        agent.tick()
        assert agent.shown == {4.0: Hold.restart_vpn.value, 12.0: Hold.reboot.value}.get(
            held, agent.state.value
        )
        assert agent.handle(("released", None)) is action
    assert sorted(p.name for p in (tmp_path / "requests").iterdir()) == ["reboot", "restart-vpn"]
    agent.tick()
    clock.now += 1
    agent.handle(("pressed", None))
    agent.handle(("released", None))
    agent.tick()
    assert current(agent) is State.identify
    clock.now += 10.5
    agent.tick()
    assert current(agent) is not State.identify
    agent.player.stop()


def test_an_upgrade_run_is_shown_while_it_lasts(tmp_path: Path, factory: MockFactory) -> None:
    clock = Clock()
    agent = make_agent(tmp_path, factory, clock)
    agent.tick()
    shown_before = current(agent)
    assert shown_before is not State.updating
    (tmp_path / "updating").touch()  # what ewindow-upgrade does while it runs (updates/upgrade.py)
    clock.now += 1
    agent.tick()
    assert current(agent) is State.updating
    (tmp_path / "updating").unlink()
    clock.now += 1
    agent.tick()
    assert current(agent) is shown_before
    agent.player.stop()


def test_links_are_resynchronised_without_any_event(tmp_path: Path, factory: MockFactory) -> None:
    clock = Clock()
    agent = make_agent(tmp_path, factory, clock)
    (tmp_path / "sys/class/net/veth0/operstate").write_text("down\n")  # a lost netlink message
    clock.now += 31
    agent.tick()
    clock.now += 2.1
    agent.tick()
    assert current(agent) is State.no_link
    agent.player.stop()


def test_vpn_up_from_peers_targets_or_tap_responders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hardware import facts, vpnprobe

    state = tmp_path / "vpn"
    (tmp_path / "sys/class/net/tap0").mkdir(parents=True)
    answering: set[str] = set()
    monkeypatch.setattr(vpnprobe, "responders", lambda tap: answering)
    monkeypatch.setattr(vpnprobe, "reachable", lambda targets, **kw: ())
    monkeypatch.setattr(vpnprobe, "yggdrasil_peers", lambda endpoint: None)

    def up(backend: str) -> bool:
        return facts.vpn_up(facts.vpn_statuses((backend,), (), state), (), sys_root=tmp_path / "sys")

    assert not up("tinc")
    answering.add("fe80::b827:ebff:fe00:1")  # another window on tap0
    assert up("tinc")
    assert not up("yggdrasil")  # layer 3: no tap0
    answering.clear()
    (state / "tinc").mkdir(parents=True)
    (state / "tinc/hub").touch()  # host-up hook: a peer
    assert up("tinc")
    assert facts.vpn_statuses(("tinc",), (), state)[0].peers == 1


def test_classifier_needs_a_press_before_a_release() -> None:
    classifier = PressClassifier(ButtonConfig(), Clock())
    assert classifier.release() is None and classifier.holding() is Hold.none


def test_the_agent_drives_the_led_pin_from_firstboot_to_vpn_up(tmp_path: Path, factory: MockFactory) -> None:
    clock = Clock()
    agent = make_agent(tmp_path, factory, clock, vpn_backends=("tinc",))
    (tmp_path / "firstboot.json").write_text(json.dumps({"state": "running", "step": "vpn"}))
    agent.tick()
    assert current(agent) is State.firstboot
    (tmp_path / "firstboot.json").write_text(json.dumps({"state": "done", "step": ""}))
    (tmp_path / "synchronized").touch()
    for _ in agent.checkers:  # the slow checks started by the first tick: Internet, VPN
        agent.handle(agent.events.get(timeout=2))
    factory.pin(17).clear_states()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("hardware.facts.has_address", lambda interfaces: True)
        agent.tick()
    assert current(agent) is State.vpn_up
    time.sleep(0.25)  # vpn_up at scale 0.1: on 0.19 s, a 0.01 s blip, on again
    agent.player.stop()
    assert levels(factory, 17)[-3:] == [True, False, True]


# --- netlink, notify, config -------------------------------------------------------------------


def newlink(name: str) -> bytes:
    attr = RTATTR.pack(RTATTR.size + len(name) + 1, 3) + name.encode() + b"\0"
    attr += b"\0" * (-len(attr) % 4)
    body = IFINFOMSG.pack(0, 1, 7, 0x1003, 0) + attr
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), RTM_NEWLINK, 0, 0, 0) + body


def test_netlink_messages_name_their_interfaces() -> None:
    assert list(parse_link_messages(newlink("eth0") + newlink("tap0"))) == ["eth0", "tap0"]
    assert list(parse_link_messages(struct.pack("=IHHII", 20, 3, 0, 0, 0) + b"\0" * 4)) == []  # NLMSG_DONE


def test_sd_notify_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1")
        assert server.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify("READY=1")


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"led": {"kind": "rgb", "pins": [1, 2]}}))
    with pytest.raises(AgentConfigError, match=r"agent.json: led.pins: a rgb LED needs 3 GPIO numbers"):
        load(path)
    path.write_text(json.dumps({"button": {"restart_vpn_s": 20}}))
    with pytest.raises(AgentConfigError, match=r"button: restart_vpn_s < reboot_s < stuck_s"):
        load(path)
    assert load(tmp_path / "missing.json") == AgentConfig()


@pytest.mark.skipif(os.environ.get("EWINDOW_GPIOZERO_INNER") == "1", reason="this is the 1.6.2 run itself")
def test_agent_with_gpiozero_1_6(tmp_path: Path) -> None:
    """Debian bookworm ships gpiozero 1.6.2: the agent's tests pass against it too."""
    target = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "ewindow-image/pydeps/gpiozero-1.6.2"
    )
    if not (target / "gpiozero/__init__.py").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--target",
                str(target),
                "gpiozero==1.6.2",
                "colorzero==2.0",
            ],
            check=True,
        )
    env = {**os.environ, "PYTHONPATH": f"{target}:{REPO}", "EWINDOW_GPIOZERO_INNER": "1"}
    check = subprocess.run(
        [sys.executable, "-c", "import gpiozero, sys; print(gpiozero.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.startswith(str(target))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_versions_in_the_metrics_are_dpkg_s_installed_ones(tmp_path: Path) -> None:
    from hardware.metrics import installed_versions

    status = tmp_path / "status"
    status.write_text("Package: ewindow-agent\nStatus: install ok installed\nDepends: python3\n"
                      "Version: 0.1.0+13.gabc\nDescription: x\n more\n\n"
                      "Package: peervpn\nStatus: deinstall ok config-files\nVersion: 0.044-0ewindow1\n\n"
                      "Package: bash\nStatus: install ok installed\nVersion: 5.2\n\n"
                      "Package: cjdns\nVersion: 21.1-0ewindow1\nStatus: install ok installed\n")
    assert installed_versions(status) == {"ewindow-agent": "0.1.0+13.gabc", "cjdns": "21.1-0ewindow1"}
    status.write_text("Package: ewindow-agent\nStatus: install ok installed\nVersion: 0.1.0+14.gdef\n")
    assert installed_versions(status) == {"ewindow-agent": "0.1.0+14.gdef"}  # read again once changed
    assert installed_versions(tmp_path / "missing") == {}


def test_the_units_pin_factory_is_made_by_the_agent_not_found_by_pkg_resources(tmp_path: Path) -> None:
    """GPIOZERO_PIN_FACTORY=ewindow-gpiod: the agent makes the factory itself (gpiozero would
    look the name up with pkg_resources, which loads ssl); here libgpiod's factory is
    replaced by gpiozero's MockFactory (no GPIO on this host), and without it the agent says
    why and falls back."""
    stand_in = tmp_path / "standin" / "hardware"
    stand_in.mkdir(parents=True)
    (stand_in / "gpiod_factory.py").write_text(
        "from gpiozero.pins.mock import MockFactory as GpiodFactory\n")
    code = ("import sys, hardware; hardware.__path__.insert(0, sys.argv[1]); "
            "from gpiozero import Device; from hardware.__main__ import use_gpiod_factory; "
            "print(repr(use_gpiod_factory()), type(Device.pin_factory).__name__, "
            "'pkg_resources' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GPIOZERO_PIN_FACTORY": "ewindow-gpiod"}
    made = subprocess.run([sys.executable, "-c", code, str(stand_in)], env=env, capture_output=True,
                          text=True, check=True)
    assert made.stdout.split() == ["''", "MockFactory", "False"], made
    missing = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nowhere")], env=env,
                             capture_output=True, text=True, check=True)
    why, factory, loaded = missing.stdout.rsplit(maxsplit=2)
    assert "gpiod" in why and factory == "NoneType" and loaded == "False", missing


def test_the_vpn_meeting_is_logged_even_when_the_led_stays(tmp_path: Path, factory: MockFactory,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """With no Internet the LED says no-internet whether or not the windows have met: the
    journal still gets one line when the VPN changes (the VM test times the meeting by it)."""
    import dataclasses
    import logging

    agent = make_agent(tmp_path, factory, Clock())
    caplog.set_level(logging.INFO, logger="ewindow-agent")
    offline = dataclasses.replace(agent.facts, internet=Internet.offline, vpn_configured=True, has_ip=True,
                                  link_up=True, clock_synced=True)
    vpn_lines = []
    for vpn_up in (False, False, True, True):
        agent.facts = dataclasses.replace(offline, vpn_up=vpn_up)
        agent.show()
        assert agent.shown == State.no_internet.value
        vpn_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("vpn:")]
    assert vpn_lines == ["vpn: down", "vpn: up"]
    agent.player.stop()
