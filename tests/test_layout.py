# SPDX-License-Identifier: MIT
"""The builder's layout (README "How a build works"): imports only point down the pipeline,
and a stage's key hashes only the code its tree depends on."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from ewindow_image.pipeline.stages import run

PACKAGE = Path(__file__).resolve().parent.parent / "ewindow_image"
PLUMBING = {"errors", "log", "runner", "retry", "hostdeps", "trees", "process_tree", "interrupts",
            "imagefiles", "__init__"}
# what each part may import besides itself and the shared plumbing
ALLOWED = {
    "cli": {"commands"},
    "commands": {"pipeline", "cards", "station", "fleet", "qemu", "image", "packages", "apt", "config"},
    "pipeline": {"image", "packages", "apt", "config"},
    "cards": {"config"},
    "station": {"cards", "image", "config"},
    "fleet": {"config"},
    "qemu": set(),
    "image": {"config"},
    "packages": {"apt", "config"},
    "apt": {"config"},
    "config": set(),
    "plumbing": set(),
}


def part_of(module: str) -> str:
    first = module.split(".")[0]
    return "plumbing" if first in PLUMBING else first


def imports_of(path: Path) -> set[str]:
    """The ewindow_image modules ``path`` imports, relative to the package, e.g. build.cache."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    package = here[:-1] if here[-1] != "__init__" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: x is a module, or a name of __init__
                    found |= {".".join([*base, alias.name]) if (PACKAGE.joinpath(*base, alias.name)).exists()
                              or PACKAGE.joinpath(*base, f"{alias.name}.py").exists()
                              else ".".join([*base, "__init__"]) for alias in node.names}
                    continue
            elif (node.module or "").startswith("ewindow_image."):
                target = (node.module or "").removeprefix("ewindow_image.")
            else:
                continue
            found.add(target)
    return {f for f in found if f}


def test_imports_point_down_the_pipeline() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = part_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        for target in imports_of(path):
            if part_of(target) not in ALLOWED[source] | {source, "plumbing"}:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert wrong == []


# Names many tools take for build output and skip: .gitignore templates, code-structure
# tools, packaging tools that clean build/ (issue 18).
OUTPUT_NAMES = {"build", "dist", "out"}
MAX_MODULE_LINES = 400


def test_no_package_or_module_is_named_like_a_build_output() -> None:
    named = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*")
             if "__pycache__" not in p.parts and (p.stem if p.suffix == ".py" else p.name) in OUTPUT_NAMES]
    assert named == []


def test_no_module_is_longer_than_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_the_cli_only_assembles_the_command_groups() -> None:
    """Each command's parser and glue sit in its group's module under commands/."""
    from ewindow_image import cli

    tree = ast.parse((PACKAGE / "cli.py").read_text())
    handlers = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")]
    assert handlers == []
    sub = next(a for a in cli.make_parser()._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    groups = {name: parser.get_default("handler").__module__.rsplit(".", 1)[1]
              for name, parser in sub.choices.items()}
    assert groups == {"build": "image", "config": "image", "plan": "image", "packages": "image",
                      "cache": "image", "verify-repro": "image", "personalise": "cards",
                      "flash": "cards", "station": "cards", "identity": "fleet", "hosts": "fleet",
                      "network": "fleet", "repo": "fleet", "fleet": "fleet",
                      "boot-test": "checks"}


def test_every_sub_package_says_what_it_does_and_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc and len(doc) > 80, init


@pytest.fixture
def package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "ewindow_image"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(run, "CODE_ROOT", copy)
    return copy


# (a module of the package, whether a stage's tree depends on it)
EDITS = [("cards/flash.py", False), ("cards/personalise.py", False), ("fleet/registry.py", False),
         ("cli.py", False), ("qemu/boottest.py", False), ("image/assemble.py", False),
         ("commands/image.py", False), ("process_tree.py", False), ("pipeline/lock.py", False),
         ("pipeline/rootfs.py", True), ("pipeline/overlay.py", True), ("pipeline/stages/run.py", True),
         ("pipeline/stages/definition.py", True), ("pipeline/localdebs.py", True), ("apt/sources.py", True),
         ("image/clock.py", True)]


@pytest.mark.parametrize(("edited", "keyed"), EDITS)
def test_only_code_a_stage_depends_on_changes_the_stage_keys(package_copy: Path, edited: str,
                                                              keyed: bool) -> None:
    before = run.builder_digest()
    with (package_copy / edited).open("a") as stream:
        stream.write("\n# edited\n")
    assert (run.builder_digest() != before) == keyed
