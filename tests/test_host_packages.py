# SPDX-License-Identifier: MIT
"""Every external program the builder, the device code and the tests call is installed by
``make``: a Debian package in the Makefile's HOST_PACKAGES/TEST_PACKAGES provides it (or the
base system every Debian root has). Fast, so a missing install step fails before the slow
suite runs, and on a fresh root (``.ci/run``) a missing package fails here by name.

The programs are found in the code, not listed by hand: the first word of every argv literal
handed to a runner or returned by an argv builder, the hostdeps tables, and the first word of
each command of the stages' host hooks.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from ewindow_image import hostdeps

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("ewindow_image", "firstboot", "hardware", "updates", "tests", "bench", "build.py")
RUNNERS = {"run", "spawn", "sh", "exec", "Popen", "check_output", "check_call", "call", "start"}
STRING_RUNNERS = {"sh", "exec"}  # helpers that take the program as their first argument
ARGV_NAMES = re.compile(r"argv|command|cmd|ssh|tool|netns")
PROGRAM = re.compile(r"^[a-z][a-z0-9.+_-]*$")
SHELL_SEPARATORS = re.compile(r"&&|\|\||;|\||\{|\}|\(|\)|!")
SHELL_BUILTINS = {":", "test", "echo", "exit", "[", "true", "false", "cd", "set"}
# What a fresh clone needs before `make` can run at all (README: git clone, then make), and
# apt, which every Debian root has (mmdebstrap's minbase too) and which installs the rest.
PREREQUISITES = {"git", "make", "apt"}
# Built from source by the project itself (packages/), never from Debian.
BUILT_HERE = {"peervpn", "cjdroute"}
# A test that a missing program is reported cleanly calls one that must not exist.
ABSENT_ON_PURPOSE = re.compile(r"^no-such-")


def _first_word(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        first = node.elts[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and PROGRAM.match(first.value):
            return first.value
    return None


def programs_in_python(source: str) -> set[str]:
    """First words of argv literals: passed to a runner, returned (by an argv builder or a
    lambda), or assigned to a name that says it is a command."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        candidates: list[ast.expr | None] = []
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in RUNNERS:
                candidates.append(node.args[0])
                first = node.args[0]
                if (name in STRING_RUNNERS and isinstance(first, ast.Constant)
                        and isinstance(first.value, str) and PROGRAM.match(first.value)):
                    found.add(first.value)
        elif isinstance(node, ast.Return):
            candidates.append(node.value)
        elif isinstance(node, ast.Lambda):
            candidates.append(node.body)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and ARGV_NAMES.search(t.id) for t in node.targets):
            candidates.append(node.value)
        found.update(w for w in map(_first_word, candidates) if w)
    return found


def programs_in_shell(command: str) -> set[str]:
    """First word of each simple command in a hook line (Jinja expressions blanked)."""
    command = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "X", command)
    found = set()
    for part in SHELL_SEPARATORS.split(command):
        words = part.split()
        while words and "=" in words[0] and not words[0].startswith(("-", '"')):
            words.pop(0)  # VAR=value prefixes
        if words and PROGRAM.match(words[0]) and words[0] not in SHELL_BUILTINS:
            found.add(words[0])
    return found


def stage_hook_commands() -> list[str]:
    commands = []
    for stage_yaml in sorted((REPO / "stages").glob("*/stage.yaml")):
        text = re.sub(r"^\s*\{%.*?%\}\s*$", "", stage_yaml.read_text(), flags=re.M)
        text = re.sub(r"\{\{.*?\}\}", "X", text)
        commands += [str(c) for c in (yaml.safe_load(text) or {}).get("host") or []]
    return commands


@cache
def called_programs() -> dict[str, str]:
    """program -> where it was found."""
    found: dict[str, str] = {}
    for top in SOURCES:
        paths = [REPO / top] if top.endswith(".py") else sorted((REPO / top).rglob("*.py"))
        for path in paths:
            for program in programs_in_python(path.read_text()):
                found.setdefault(program, str(path.relative_to(REPO)))
    for command in stage_hook_commands():
        for program in programs_in_shell(command):
            found.setdefault(program, "stages/*/stage.yaml host hooks")
    for table in (hostdeps.BUILD_TOOLS, hostdeps.BOOT_TEST_TOOLS, hostdeps.PERSONALISE_TOOLS,
                  hostdeps.FLASH_TOOLS, hostdeps.SOURCE_PACKAGE_TOOLS, hostdeps.REPOSITORY_TOOLS):
        for program in table:
            found.setdefault(program, "ewindow_image/hostdeps.py")
    return {p: where for p, where in found.items()
            if p not in BUILT_HERE and not ABSENT_ON_PURPOSE.match(p)}


@cache
def makefile_packages(variable: str) -> frozenset[str]:
    out = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO),
                          "--eval", "print-%: ; @echo $($*)", f"print-{variable}"],
                         capture_output=True, text=True, check=True).stdout
    return frozenset(out.split())


@cache
def base_system() -> frozenset[str]:
    """Packages every Debian root has: Essential, or of priority required (mmdebstrap's
    minbase variant, a debootstrap minbase, any installed Debian)."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Essential}\t${Priority}\n"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return frozenset(name for name, essential, priority in rows
                     if essential == "yes" or priority == "required")


@cache
def installed_with(packages: frozenset[str]) -> frozenset[str]:
    """``packages`` and everything apt installs with them: their Depends and Pre-Depends
    (the first of alternatives, as apt picks), transitively, among the installed packages."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Pre-Depends}, ${Depends}\n"],
                         capture_output=True, text=True, check=True).stdout
    depends: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, _, deps = line.partition("\t")
        depends[name] = [d.split("|")[0].split("(")[0].split(":")[0].strip() for d in deps.split(",")
                         if d.strip()]
    seen, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += depends.get(name, [])
    return frozenset(seen)


def owning_packages(program: str) -> set[str]:
    # Debian's own folders only: /usr/local and a virtualenv's or pyenv's shims are not apt's
    path = shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert path is not None, f"{program} is called but not installed (no package of 'make test-deps' has it)"
    candidates = {path, os.path.realpath(path)}
    candidates |= {c.removeprefix("/usr") for c in list(candidates) if c.startswith("/usr/")}
    candidates |= {"/usr" + c for c in list(candidates) if not c.startswith("/usr/")}
    # dpkg -S exits 1 when any path is unknown (usrmerge: a file is known under one of them)
    result = subprocess.run(["dpkg", "-S", *sorted(candidates)], capture_output=True, text=True, check=False)
    owners: set[str] = set()
    for line in result.stdout.splitlines():
        if not line.startswith("diversion "):
            owners |= {p.strip().split(":")[0] for p in line.split(": ", 1)[0].split(",")}
    return owners

def test_the_scan_finds_programs_in_argv_builders_and_hooks() -> None:
    source = ("def f():\n    return ['mkfs.ext4', '-q']\n"
              "run(['sfdisk', '--json'])\nsh('debugfs', '-R')\nargv = ['mcopy', '-i']\n"
              "node.exec('sysctl', '-qw', 'x=1')\n"
              "choices = ['virt', 'raspi3b']\nassert x == ['a', 'b']\n")
    assert programs_in_python(source) == {"mkfs.ext4", "sfdisk", "debugfs", "mcopy", "sysctl"}
    assert programs_in_shell('test -e "$R/x" || { echo no >&2; exit 1; }') == set()
    assert programs_in_shell('LC_ALL=C find "$R" -type f -exec truncate -s 0 {} + && ln -s a b') == {
        "find", "ln"}
    found = called_programs()
    # one from each kind of place: an argv builder, a test helper, a hook, a hostdeps table
    assert {"mkfs.ext4", "debugfs", "useradd", "update-binfmts", "qemu-system-aarch64"} <= set(found)


def test_makefile_lists_the_packages_of_both_commands() -> None:
    host, test = makefile_packages("HOST_PACKAGES"), makefile_packages("TEST_PACKAGES")
    assert "mmdebstrap" in host and host <= test


@pytest.mark.parametrize("program", sorted(called_programs()))
def test_a_listed_package_provides_the_program(program: str) -> None:
    """Listed, or installed with a listed package (python3 comes with python3-venv)."""
    allowed = installed_with(makefile_packages("TEST_PACKAGES") | base_system() | PREREQUISITES)
    owners = owning_packages(program)
    where = called_programs()[program]
    assert owners, f"{program} (called in {where}) belongs to no Debian package"
    assert owners & allowed, (f"{program} (called in {where}) comes from {', '.join(sorted(owners))}, "
                              "which is not in the Makefile's HOST_PACKAGES/TEST_PACKAGES")
