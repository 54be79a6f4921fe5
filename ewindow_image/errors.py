# SPDX-License-Identifier: MIT
"""The project's exception root. Leaves also derive from a builtin so callers may catch either."""

from __future__ import annotations


class EWindowError(Exception):
    """Base class: an error the user can act on, printed as one line without a traceback."""

    exit_status = 1  # what build.py exits with (README "Exit status")

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(EWindowError, ValueError):
    """Bad configuration: names the file and the dotted field."""

    exit_status = 2

    def __init__(self, source: str, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{source}: {field}: {message}" if field else f"{source}: {message}", hint=hint)
        self.source = source
        self.field = field


class HostError(EWindowError, RuntimeError):
    """The build host lacks something (a tool, binfmt, root)."""


class CommandError(EWindowError, RuntimeError):
    """An external command failed; its output is in the build log."""

    def __init__(self, argv: list[str], returncode: int, tail: str = "", output: str = "") -> None:
        name = argv[0] if argv else "?"
        message = f"'{name}' failed with exit status {returncode}"
        if tail:
            message += f": {tail}"
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.output = output  # the last lines the command printed
