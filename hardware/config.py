# SPDX-License-Identifier: MIT
"""The agent's settings: ``/etc/ewindow/agent.json``, written by the build from the site's
``agent`` section. JSON because the agent uses the standard library (and gpiozero) only."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firstboot import checks

DEFAULT_FILE = Path("/etc/ewindow/agent.json")


class AgentConfigError(ValueError):
    """Names the file and the field."""


class LedKind(enum.StrEnum):
    single = "single"  # one LED: patterns
    dual = "dual"  # green + red: patterns, red for faults
    rgb = "rgb"  # colour = category, same patterns
    act = "act"  # the board's own ACT LED (/sys/class/leds), rhythms only
    none = "none"


@dataclass(frozen=True)
class LedConfig:
    kind: LedKind = LedKind.act
    pins: tuple[int, ...] = ()  # single: (pin,), dual: (green, red), rgb: (red, green, blue)
    active_high: bool = True


@dataclass(frozen=True)
class ButtonConfig:
    pin: int | None = 3  # the original window's button (GPIO3, with its fixed I2C pull-up)
    restart_vpn_s: float = 3.0  # hold at least this long, release: restart the VPN
    reboot_s: float = 10.0  # hold at least this long, release: reboot
    stuck_s: float = 30.0  # held longer: a stuck button or someone leaning on it, ignored
    bounce_s: float = 0.05


@dataclass(frozen=True)
class ProbeConfig:
    interfaces: tuple[str, ...] = ("eth0", "end0", "wlan0")  # the underlay links
    tap: str = "tap0"
    vpn_backends: tuple[str, ...] = ()
    vpn_targets: tuple[str, ...] = ()  # addresses that should answer over the VPN
    # Debian's own connectivity check (what NetworkManager uses): the body proves no portal.
    internet_url: str = "http://network-test.debian.org/nm"
    internet_expect: str = "NetworkManager is online"
    interval_s: float = 10.0  # the Internet check
    vpn_interval_s: float = 1.0  # the VPN check: a window gone is shown within ~5 s (vpnprobe.FRESH_S)
    link_down_debounce_s: float = 2.0
    identify_s: float = 10.0


@dataclass(frozen=True)
class AgentConfig:
    led: LedConfig = LedConfig()
    button: ButtonConfig = ButtonConfig()
    probe: ProbeConfig = field(default_factory=ProbeConfig)


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = data.get(key, default)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise AgentConfigError(f"{where}{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _section(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise AgentConfigError(f"{source}: {key}: expected an object")
    return value


def parse(data: dict[str, Any], source: str) -> AgentConfig:
    led, button, probe = (_section(data, k, source) for k in ("led", "button", "probe"))
    try:
        kind = LedKind(led.get("kind", LedKind.act.value))
    except ValueError:
        raise AgentConfigError(f"{source}: led.kind: {led.get('kind')!r} is not one of "
                               f"{', '.join(k.value for k in LedKind)}") from None
    pins = tuple(_get(led, "pins", list, [], f"{source}: led."))
    wanted = {LedKind.single: 1, LedKind.dual: 2, LedKind.rgb: 3}.get(kind, 0)
    if len(pins) != wanted or not all(isinstance(p, int) and 0 <= p <= 27 for p in pins):
        raise AgentConfigError(f"{source}: led.pins: a {kind.value} LED needs {wanted} GPIO numbers "
                               "(0-27)")
    num = (int, float)
    b = ButtonConfig(
        pin=_get(button, "pin", int, 3, f"{source}: button."),
        restart_vpn_s=float(_get(button, "restart_vpn_s", num, 3.0, f"{source}: button.")),
        reboot_s=float(_get(button, "reboot_s", num, 10.0, f"{source}: button.")),
        stuck_s=float(_get(button, "stuck_s", num, 30.0, f"{source}: button.")),
        bounce_s=float(_get(button, "bounce_s", num, 0.05, f"{source}: button.")),
    )
    if not b.restart_vpn_s < b.reboot_s < b.stuck_s:
        raise AgentConfigError(f"{source}: button: restart_vpn_s < reboot_s < stuck_s is required")
    p = ProbeConfig(
        interfaces=tuple(_get(probe, "interfaces", list, ["eth0", "end0", "wlan0"], f"{source}: probe.")),
        tap=_get(probe, "tap", str, "tap0", f"{source}: probe."),
        vpn_backends=tuple(_get(probe, "vpn_backends", list, [], f"{source}: probe.")),
        vpn_targets=tuple(_get(probe, "vpn_targets", list, [], f"{source}: probe.")),
        internet_url=_get(probe, "internet_url", str, ProbeConfig.internet_url, f"{source}: probe."),
        internet_expect=_get(probe, "internet_expect", str, ProbeConfig.internet_expect,
                             f"{source}: probe."),
        interval_s=float(_get(probe, "interval_s", num, 10.0, f"{source}: probe.")),
        vpn_interval_s=float(_get(probe, "vpn_interval_s", num, 1.0, f"{source}: probe.")),
        link_down_debounce_s=float(_get(probe, "link_down_debounce_s", num, 2.0, f"{source}: probe.")),
        identify_s=float(_get(probe, "identify_s", num, 10.0, f"{source}: probe.")),
    )
    _check_values(b, p, source)
    active_high = bool(_get(led, "active_high", bool, True, f"{source}: led."))
    return AgentConfig(LedConfig(kind, pins, active_high), b, p)


def _check_values(button: ButtonConfig, probe: ProbeConfig, source: str) -> None:
    """Times are positive and finite, pins are the header's GPIOs, addresses are addresses."""
    times = {"button.restart_vpn_s": button.restart_vpn_s, "button.reboot_s": button.reboot_s,
             "button.stuck_s": button.stuck_s, "button.bounce_s": button.bounce_s,
             "probe.interval_s": probe.interval_s, "probe.vpn_interval_s": probe.vpn_interval_s,
             "probe.link_down_debounce_s": probe.link_down_debounce_s,
             "probe.identify_s": probe.identify_s}
    for key, seconds in times.items():
        if not (math.isfinite(seconds) and 0 < seconds <= 86400):
            raise AgentConfigError(f"{source}: {key}: {seconds:g} is not a time in seconds (0 < t ≤ 86400)")
    if button.pin is not None and not 0 <= button.pin <= 27:
        raise AgentConfigError(f"{source}: button.pin: {button.pin} is not a GPIO number (0-27)")
    try:
        checks.url(probe.internet_url, ("http", "https"))
    except checks.InvalidValue as exc:
        raise AgentConfigError(f"{source}: probe.internet_url: {exc}") from None
    for index, target in enumerate(probe.vpn_targets):
        try:
            checks.ip_address(target)
        except checks.InvalidValue as exc:
            raise AgentConfigError(f"{source}: probe.vpn_targets[{index}]: {exc}") from None
    for index, name in enumerate((*probe.interfaces, probe.tap)):
        try:
            checks.interface_name(name)
        except checks.InvalidValue as exc:
            raise AgentConfigError(f"{source}: probe.interfaces[{index}]: {exc}") from None
    if not probe.internet_expect.isprintable() or len(probe.internet_expect) > 256:
        raise AgentConfigError(f"{source}: probe.internet_expect: at most 256 printable characters")


def load(path: Path = DEFAULT_FILE) -> AgentConfig:
    if not path.exists():
        return AgentConfig()
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise AgentConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AgentConfigError(f"{path}: expected an object")
    return parse(data, str(path))
