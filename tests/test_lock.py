"""requirements.lock pins every package pyproject.toml asks for, at a version its range admits,
so `make` installs the versions the tests passed with (an unpinned typer 0.29 once broke the CLI
on a fresh machine)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
# The extras the Makefile installs and `make lock` resolves.
EXTRAS = ("dev",)
# `make lock` resolves for this platform only: a marker in pyproject.toml is read as there.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}


def lock_pins(text: str) -> dict[str, Version]:
    """Name -> version of each `name==version` line; any other requirement is a broken lock."""
    pins: dict[str, Version] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise ValueError(f"not an exact pin: {raw!r}")
        name = canonicalize_name(req.name)
        if name in pins:
            raise ValueError(f"pinned twice: {name}")
        pins[name] = Version(specs[0].version)
    return pins


def lock_problems(pyproject_text: str, lock_text: str, extras=EXTRAS) -> list[str]:
    """One line per dependency of pyproject.toml (core and `extras`) that the lock leaves
    unpinned or pins outside the declared range."""
    project = tomllib.loads(pyproject_text)["project"]
    declared = [(r, "") for r in project["dependencies"]]
    for extra in extras:
        declared += [(r, extra) for r in project["optional-dependencies"][extra]]
    pins = lock_pins(lock_text)
    problems = []
    for text, extra in declared:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**TARGET, "extra": extra}):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req}: not pinned in the lock")
        elif not req.specifier.contains(pin, prereleases=True):
            problems.append(f"{req}: the lock pins {pin}")
    return problems


def test_the_lock_pins_every_declared_dependency():
    assert lock_problems((ROOT / "pyproject.toml").read_text(), LOCK.read_text()) == []


PYPROJECT = """
[project]
name = "x"
dependencies = ["typer>=0.12,<0.29", "PyYAML>=6", "pywin32>=300; sys_platform == 'win32'"]
[project.optional-dependencies]
dev = ["pytest>=8", "ruff>=0.6"]
bench = ["pydriller>=2.6"]
"""


def test_a_missing_pin_is_reported_core_and_dev_alike():
    lock = "typer==0.28.0\npyyaml==6.0.4\n"
    assert lock_problems(PYPROJECT, lock) == [
        "pytest>=8: not pinned in the lock",
        "ruff>=0.6: not pinned in the lock",
    ]


def test_a_pin_outside_the_declared_range_is_reported():
    lock = "typer==0.29.2  # a comment\n    # via x\nPyYAML==6.0.4\npytest==7.4.0\nruff==0.17.6\n"
    assert lock_problems(PYPROJECT, lock) == [
        "typer<0.29,>=0.12: the lock pins 0.29.2",
        "pytest>=8: the lock pins 7.4.0",
    ]


def test_names_are_compared_normalised_and_other_platforms_and_extras_are_left_out():
    lock = "Typer==0.28.0\npyyaml==6.0.4\npytest==9.0\nruff==0.17.6\n"
    assert lock_problems(PYPROJECT, lock) == []


@pytest.mark.parametrize("line", ["typer>=0.12", "typer==0.29.*", "typer", "-e ."])
def test_a_lock_line_that_is_not_an_exact_pin_is_refused(line):
    with pytest.raises(ValueError):
        lock_pins(line)


def test_a_package_pinned_twice_is_refused():
    with pytest.raises(ValueError, match="pinned twice: pyyaml"):
        lock_pins("PyYAML==6.0.4\npyyaml==6.0.3\n")


def test_the_installed_packages_are_the_locked_versions():
    """The environment the tests run in was installed from the lock (a local build label such as
    torch's `+cpu` aside); a package the lock pins for another build, such as CUDA's, is absent."""
    wrong, checked = [], 0
    for name, pin in lock_pins(LOCK.read_text()).items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        checked += 1
        if Version(installed.public) != pin:
            wrong.append(f"{name} {installed} (the lock pins {pin})")
    assert checked > 100
    assert wrong == [], "run `make` to reinstall from requirements.lock"
