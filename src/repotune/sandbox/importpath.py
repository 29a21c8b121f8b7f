"""Make a Python project's tests import the scratch copy, as a checkout's own tests would.

A `src/` layout keeps the package out of the folder the tests run in, so `import pkg` finds
whatever the environment has installed, often an older release of the same project (pallets/
click in a virtualenv that got click as a dependency): then the fixed and the buggy version
both test the installed copy. The fix is what a developer's editable install does: the
project's import roots (`src/`, or where its packaging config puts packages, then the root)
go first on PYTHONPATH. A cheap probe in the sandbox then checks, with the interpreter the test
command names, where each top-level package really comes from.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from configparser import ConfigParser
from configparser import Error as ConfigError
from pathlib import Path

from repotune.sandbox.box import Limits, Sandbox

_PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "conftest.py", "pytest.ini")
_NOT_PACKAGES = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks"}
_PYTHON = re.compile(r"(^|/)python(\d+(\.\d+)?)?$")
_FLAGS_WITH_VALUE = {"-W", "-X", "--check-hash-based-pycs"}

_PROBE = """
import importlib.machinery as m, json, os, sys
real = lambda p: os.path.realpath(p or ".")
roots = {real(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
rest = [p for p in sys.path if real(p) not in roots | {real(".")}]
def where(spec):
    if spec is None:
        return None
    if spec.origin and spec.has_location:
        return spec.origin
    return next(iter(spec.submodule_search_locations or []), None)
print(json.dumps({n: [where(m.PathFinder.find_spec(n)), where(m.PathFinder.find_spec(n, rest))]
                  for n in sys.argv[1:]}))
"""


def import_roots(project: Path) -> list[str]:
    """Folders, relative to `project` ('.' for itself), to put first on PYTHONPATH, in order;
    [] when the project does not look like Python."""
    roots = [
        rel
        for rel in dict.fromkeys([*_configured_roots(project), "src"])
        if rel not in ("", ".") and _holds_python(project / rel)
    ]
    if roots or _looks_python(project):
        roots.append(".")
    return roots


def pythonpath_env(folder: Path, roots: list[str]) -> dict[str, str]:
    """The environment entry that makes `folder`'s copy the one imported."""
    if not roots:
        return {}
    paths = [str(folder) if r == "." else str(folder / r) for r in roots]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def top_level_names(project: Path, roots: list[str], limit: int = 20) -> list[str]:
    """Packages (and, under a source root, modules) the project's tests would import."""
    names: list[str] = []
    for rel in roots:
        folder = project / rel
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            name = entry.stem if entry.suffix == ".py" else entry.name
            if not name.isidentifier() or name.startswith(("_", "test")):
                continue
            if rel == "." and (name in _NOT_PACKAGES or entry.suffix == ".py"):
                continue  # root modules are tool scripts (setup.py, noxfile.py) more often
            if (entry / "__init__.py").is_file() or (rel != "." and entry.suffix == ".py"):
                names.append(name)
    return list(dict.fromkeys(names))[:limit]


def interpreter(test_command: str) -> list[str]:
    """The Python the test command starts, with the flags that change imports (`-I`, `-E`,
    `-S`); plain `python` when the command starts no Python itself (pytest, make)."""
    try:
        words = shlex.split(test_command)
    except ValueError:
        return ["python"]
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):  # VAR=value prefixes
        words.pop(0)
    if not words or not _PYTHON.search(words[0]):
        return ["python"]
    argv = [words[0]]
    rest = iter(words[1:])
    for word in rest:
        if not word.startswith("-") or word in ("-m", "-c", "-"):
            break
        argv.append(word)
        if word in _FLAGS_WITH_VALUE:
            argv.append(next(rest, ""))
    return argv


def check_imports(
    sandbox: Sandbox,
    folder: Path,
    roots: list[str],
    env: dict[str, str],
    test_command: str,
) -> list[str]:
    """One line per finding, for the user: where the project is imported from when that is
    not what they might assume. Runs `python -c` in the sandbox (project code can run at
    interpreter start: a sitecustomize.py on PYTHONPATH)."""
    names = top_level_names(folder, roots)
    if not names:
        return []
    python = interpreter(test_command)
    res = sandbox.run([*python, "-c", _PROBE, *names], folder, Limits(wall_seconds=30), env=env)
    try:
        found = json.loads(res.output.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return []  # a missing interpreter shows up in the test runs themselves
    here = os.path.realpath(folder)
    lines = []
    for name, (used, without) in found.items():
        if used is not None and not _under(used, here):
            lines.append(
                f"warning: `{' '.join(python)}` in the test command imports {name} from {used}, "
                "not from the project's scratch copy, so the tests would test that copy"
            )
        elif used is not None and without is not None and not _under(without, here):
            root = next((r for r in roots if r != "." and _under(used, f"{here}/{r}")), ".")
            lines.append(
                f"{name}: the tests import the project's copy ({root}/ first on PYTHONPATH), "
                f"not the one installed in {os.path.dirname(os.path.dirname(without))}"
            )
    return lines


def _under(path: str, folder: str) -> bool:
    real = os.path.realpath(path)
    return real == folder or real.startswith(folder.rstrip("/") + "/")


def _holds_python(folder: Path) -> bool:
    return folder.is_dir() and (any(folder.glob("*.py")) or any(folder.glob("*/__init__.py")))


def _looks_python(project: Path) -> bool:
    return any((project / m).is_file() for m in _PYTHON_MARKERS) or _holds_python(project)


def _configured_roots(project: Path) -> list[str]:
    """Where setuptools, hatch or poetry are told the packages live."""
    try:
        data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    roots = [str(_get(data, "tool", "setuptools", "package-dir", "") or "")]
    roots += _strings(_get(data, "tool", "setuptools", "packages", "find", "where"))
    hatch = _strings(_get(data, "tool", "hatch", "build", "targets", "wheel", "packages"))
    roots += [str(Path(p).parent) for p in hatch]
    poetry = _get(data, "tool", "poetry", "packages")
    roots += [_get(p, "from") or "" for p in poetry] if isinstance(poetry, list) else []
    cfg = ConfigParser()
    try:
        cfg.read(project / "setup.cfg", encoding="utf-8")
        package_dir = cfg.get("options", "package_dir", fallback="")
        roots += [v for k, _, v in (x.partition("=") for x in package_dir.splitlines()) if not
                  k.strip() and v.strip()]  # fmt: skip
        roots.append(cfg.get("options.packages.find", "where", fallback=""))
    except (ConfigError, UnicodeDecodeError):
        pass
    roots = [r.strip().strip("/") for r in roots if isinstance(r, str)]
    return [r for r in roots if r and not r.startswith(("/", ".."))]


def _get(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
