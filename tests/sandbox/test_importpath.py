"""Where a Python project's tests import it from: its import roots, and the interpreter a test
command starts."""

from repotune.sandbox.importpath import import_roots, interpreter, pythonpath_env, top_level_names


def _tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_src_layout_and_configured_roots(tmp_path):
    src = _tree(tmp_path / "a", {"src/pkg/__init__.py": "", "tests/test_x.py": "", "setup.py": ""})
    assert import_roots(src) == ["src", "."]
    assert top_level_names(src, ["src", "."]) == ["pkg"]
    assert pythonpath_env(src, ["src", "."]) == {"PYTHONPATH": f"{src}/src:{src}"}

    lib = _tree(
        tmp_path / "b",
        {
            "pyproject.toml": '[tool.setuptools.packages.find]\nwhere = ["lib"]\n',
            "lib/mod.py": "",
            "docs/__init__.py": "",
        },
    )
    assert import_roots(lib) == ["lib", "."]
    assert top_level_names(lib, import_roots(lib)) == ["mod"]  # docs/ is no package to test
    cfg = _tree(tmp_path / "c", {"setup.cfg": "[options]\npackage_dir =\n    =code\n",
                                 "code/pkg/__init__.py": ""})  # fmt: skip
    assert import_roots(cfg) == ["code", "."]
    hatch = _tree(
        tmp_path / "d",
        {
            "pyproject.toml": '[tool.hatch.build.targets.wheel]\npackages = ["python/pkg"]\n',
            "python/pkg/__init__.py": "",
        },
    )
    assert import_roots(hatch) == ["python", "."]


def test_flat_python_and_other_projects(tmp_path):
    flat = _tree(tmp_path / "flat", {"pkg/__init__.py": "", "pyproject.toml": "[project]\n"})
    assert import_roots(flat) == ["."] and top_level_names(flat, ["."]) == ["pkg"]
    broken = _tree(tmp_path / "broken", {"pyproject.toml": "[tool.setuptools\n", "m.py": ""})
    assert import_roots(broken) == ["."]
    c = _tree(tmp_path / "c", {"lib.c": "int x;\n", "Makefile": "all:\n"})
    assert import_roots(c) == [] and pythonpath_env(c, []) == {}


def test_interpreter_of_a_test_command():
    assert interpreter("python -m pytest -q -x tests") == ["python"]
    assert interpreter("python3.11 -I -W error -m pytest") == ["python3.11", "-I", "-W", "error"]
    assert interpreter("CI=1 .venv/bin/python -E tests/run.py") == [".venv/bin/python", "-E"]
    assert interpreter("pytest -q") == ["python"]
    assert interpreter("make test") == ["python"]
    assert interpreter("python -c 'unclosed") == ["python"]
