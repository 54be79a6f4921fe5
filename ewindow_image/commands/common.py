# SPDX-License-Identifier: MIT
"""What every command's parser shares: one-line usage errors, the exit status list, and the
options several commands take (site files, --set, --out, --cache-dir)."""

from __future__ import annotations

import argparse
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config, ConfigLayers, load_config
from ..log import terminal_safe
from ..pipeline.cache import StageCache, default_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]

Handler = Callable[[argparse.Namespace], int]

EXIT_CODES = """\
exit status:
  0    done
  1    a refused or failed action (a command failed, a disk was refused, a tool is missing)
  2    bad usage or bad input (a config value, a file from a card); nothing was written
  70   an internal error (a bug; --debug shows the traceback)
  130  interrupted (Ctrl-C, SIGTERM or SIGHUP); nothing unfinished is kept"""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) instead of the usage."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {terminal_safe(message)} (see {self.prog} --help)\n")


def command(sub: Any, name: str, summary: str, details: str, handler: Handler, *,
            isolated: bool = False) -> argparse.ArgumentParser:
    """A sub-command's parser, which runs ``handler``. ``isolated``: it starts processes that
    write into the cache or run for long (mmdebstrap, compilers, qemu), and runs in a PID
    namespace of its own when started as build.py (ewindow_image.process_tree)."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n{details}",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler, isolated=isolated)
    return parser


def config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, metavar="SITE.yaml", action="append", default=[],
                        help="site config layered over the built-in defaults (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override one key; the value is YAML, e.g. "
                        "--set suite=bookworm, --set 'image.compression=[xz, zstd]' (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every command")
    debug_option(parser)


def debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="tracebacks on errors")


def cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=absolute_path, default=None, metavar="DIR",
                        help=f"stage, package and download cache (default {default_cache_dir()})")


def absolute_path(value: str) -> Path:
    """A folder argument made absolute at once: every tool it reaches gets a path that cannot
    be read as an option (``--out -x`` is ``/here/-x``)."""
    return Path(os.path.abspath(value))


def out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=absolute_path, default=REPO_ROOT / "out", metavar="DIR",
                        help="artifact folder (default out/ in the checkout)")


def load(args: argparse.Namespace) -> Config:
    return load_config(ConfigLayers(tuple(args.config), tuple(args.overrides)))


def stage_cache(args: argparse.Namespace) -> StageCache:
    return StageCache(args.cache_dir or default_cache_dir())
