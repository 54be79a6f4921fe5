# SPDX-License-Identifier: MIT
"""``python3 -m hardware``: the status agent (ewindow-agent.service).

Runs as an unprivileged user in the gpio group. Missing GPIO or LED hardware is logged and the
agent carries on with what it has (degraded mode) instead of crash-looping; a bad config file
shows the fault pattern with the built-in defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from . import metrics
from .agent import Agent, Paths, link_event
from .config import DEFAULT_FILE, AgentConfig, AgentConfigError, load
from .indicators import make_indicator
from .linkwatch import LinkWatcher

log = logging.getLogger("ewindow-agent")
FACTORY_VARIABLE = "GPIOZERO_PIN_FACTORY"
GPIOD_FACTORY = "ewindow-gpiod"  # the entry point's name (ewindow_hardware-0.1.dist-info)


def use_gpiod_factory() -> str:
    """Make the libgpiod pin factory gpiozero's own when the unit names it; why not, or "".

    gpiozero loads a factory named in GPIOZERO_PIN_FACTORY that is not one of its own through
    pkg_resources (gpiozero/devices.py, ``_default_pin_factory``), which imports tarfile,
    zipfile, urllib.request and ssl: ~8 MiB of the agent's 31 MiB resident memory in the VM.
    Made here, the factory is gpiozero's default (``Device.pin_factory``) before any device
    asks, and gpiozero still closes it at exit."""
    if os.environ.get(FACTORY_VARIABLE, "").lower() != GPIOD_FACTORY:
        return ""
    try:
        from gpiozero import Device

        from .gpiod_factory import GpiodFactory

        Device.pin_factory = GpiodFactory()
    except Exception as exc:  # noqa: BLE001 - ImportError, OSError (no chip), gpiozero's errors
        return f"{type(exc).__name__}: {exc}"
    return ""


def attach_button(agent: Agent, factory: Any = None) -> Any:
    """The button's gpiozero device, its callbacks only posting events; None without one."""
    pin = agent.config.button.pin
    if pin is None:
        return None
    try:
        from gpiozero import Button

        button = Button(f"GPIO{pin}", pull_up=True, bounce_time=agent.config.button.bounce_s,
                        pin_factory=factory)
    except Exception as exc:  # noqa: BLE001 - BadPinFactory, GPIOPinInUse, OSError, ImportError …
        log.warning("<4>no button on GPIO%s: %s: %s", pin, type(exc).__name__, exc)
        return None
    button.when_pressed = lambda: agent.post("pressed")
    button.when_released = lambda: agent.post("released")
    return button


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ewindow-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--metrics-dir", type=Path, default=metrics.TEXTFILE_DIR,
                        help="where the metrics file for the node exporter's textfile collector goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    fault = ""
    try:
        config = load(args.config)
    except AgentConfigError as exc:
        log.error("<3>%s", exc)
        config, fault = AgentConfig(), str(exc)
    no_gpio = use_gpiod_factory()
    indicator, why = make_indicator(config.led, gpio_error=no_gpio)
    if why:
        log.warning("<4>LED: %s; using %s", why, indicator.name)
    agent = Agent(config, indicator, paths=Paths(metrics_dir=args.metrics_dir))
    if fault:
        agent.post("checks", {"fault": fault})
    button = None
    if no_gpio and config.button.pin is not None:
        log.warning("<4>no button on GPIO%s: %s", config.button.pin, no_gpio)
    elif not no_gpio:
        button = attach_button(agent)
    watcher = LinkWatcher(link_event(agent))
    agent.workers.append(watcher)
    stop = threading.Event()
    # Python runs no atexit hooks on a default SIGTERM: turn it into a clean stop, so gpiozero
    # releases the pins.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
        if button is not None:
            button.close()
        indicator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
