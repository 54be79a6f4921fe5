# SPDX-License-Identifier: MIT
"""Command line: ``build.py COMMAND [-c site.yaml …] [--set key=value …]``.

Assembles the commands of each job (:mod:`.commands`) into one parser and runs the chosen
one, turning errors into one line and an exit status."""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from collections.abc import Sequence

from . import __version__, interrupts
from .commands import cards, checks, fleet, image
from .commands.common import EXIT_CODES, Parser
from .errors import EWindowError
from .log import setup_logging, terminal_safe
from .process_tree import run_isolated

DESCRIPTION = """\
Build and flash EWindow SD card images.

  the image:   build, plan, config, cache, packages, verify-repro
  one card:    personalise, flash
  the fleet:   identity, hosts, network init, repo, fleet status
  checks:      boot-test

Configuration: built-in defaults, then each -c SITE.yaml, then the secrets file it names,
then each --set KEY=VALUE (the value is YAML: --set image.compression=[xz,zstd]).
See README.md, "Config reference"."""

EX_SOFTWARE = 70  # sysexits.h: an internal error (a bug), not the user's input


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="build.py", description=DESCRIPTION, epilog=EXIT_CODES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ewindow-image {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for group in (image, cards, fleet, checks):
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, isolate: bool = False) -> int:
    """Run one command. ``isolate`` (build.py): a command that starts processes into the
    cache runs in a PID namespace of its own, so none of them outlives it (process_tree)."""
    args = make_parser().parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    if isolate and args.isolated:
        return run_isolated(lambda: run_command(args))
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    interrupts.install()
    try:
        status: int = args.handler(args)
        interrupts.checkpoint()
        return status
    except EWindowError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {terminal_safe(exc.hint)}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line; --debug shows where
        if args.debug:
            traceback.print_exc()
        print(f"error: internal error in build.py {args.command}: {type(exc).__name__}: "
              f"{terminal_safe(str(exc)[:200])} (run with --debug for the traceback, and please report it)",
              file=sys.stderr)
        return EX_SOFTWARE
