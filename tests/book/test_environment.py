"""The environment is locked and declared (issue 14, items 8 and 9).

* ``constraints.txt`` pins every package of the environment; ``requirements.txt`` (direct pins) agrees
  with it; the Makefile and ``environment.yml`` both install through it; the installed versions are the
  locked ones, so a new release upstream cannot change what ``make book`` runs.
* ``pyproject.toml`` declares (as a dependency or an extra) every third-party package that ``vaemi`` imports.
"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "vaemi"
# installer tools that `pip freeze` leaves out on purpose
UNLOCKED = {"pip", "setuptools", "wheel", "vaemi"}


def _pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements-style file, by canonical name."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+)", line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = m.group(3)
    return pins


def test_direct_pins_agree_with_the_lock():
    direct, lock = _pins(ROOT / "requirements.txt"), _pins(ROOT / "constraints.txt")
    missing = sorted(set(direct) - set(lock))
    assert not missing, f"requirements.txt names packages that constraints.txt does not lock: {missing} (run make lock)"
    differ = {n: (v, lock[n]) for n, v in direct.items() if lock[n] != v}
    assert not differ, f"requirements.txt and constraints.txt disagree (direct, lock): {differ} (run make lock)"


def test_installers_use_the_lock():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install -r requirements\.txt -c constraints\.txt", make), \
        "the Makefile must install with the lock file as constraints"
    env = (ROOT / "environment.yml").read_text()
    assert "-r requirements.txt" in env and "-c constraints.txt" in env, \
        "environment.yml must install the same pins and lock as the Makefile"


def _closure(names: set[str]) -> set[str]:
    """Installed distributions needed by ``names``, transitively (environment markers evaluated)."""
    seen, todo = set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_installed_environment_is_the_locked_one():
    lock = _pins(ROOT / "constraints.txt")
    needed = _closure(set(_pins(ROOT / "requirements.txt"))) - UNLOCKED
    unlocked = sorted(needed - set(lock))
    assert not unlocked, f"installed dependencies missing from constraints.txt: {unlocked} (run make lock)"
    wrong = {n: (metadata.version(n), lock[n]) for n in needed if metadata.version(n) != lock[n]}
    assert not wrong, f"installed versions differ from the lock (installed, locked): {wrong}"


def _imported_modules() -> set[str]:
    mods = set()
    for f in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m != "vaemi" and m not in sys.stdlib_module_names}


def test_pyproject_declares_every_import():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        declared |= {canonicalize_name(Requirement(r).name) for r in extra}
    owners = metadata.packages_distributions()
    undeclared = {}
    for mod in sorted(_imported_modules()):
        dists = {canonicalize_name(d) for d in owners.get(mod, [])}
        if not dists:
            pytest.fail(f"vaemi imports {mod!r}, which no installed distribution provides")
        if not dists & declared:
            undeclared[mod] = sorted(dists)
    assert not undeclared, f"pyproject.toml does not declare what vaemi imports (module: distributions): {undeclared}"
