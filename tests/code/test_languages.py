import pytest

from repotune.code.languages import language_for_path


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("src/app.py", "python"),
        ("types.pyi", "python"),
        ("kernel/sched/core.c", "c"),
        ("include/linux/list.h", "c"),
        ("lib/vec.cpp", "cpp"),
        ("lib/vec.HPP", "cpp"),
        ("Main.java", "java"),
        ("web/index.js", "javascript"),
        ("web/App.tsx", "typescript"),
        ("cmd/main.go", "go"),
        ("src/lib.rs", "rust"),
        ("app/models/user.rb", "ruby"),
        ("index.php", "php"),
        ("scripts/build.sh", "shell"),
        (".github/workflows/ci.yml", "yaml"),
        ("config.yaml", "yaml"),
        ("pyproject.toml", "toml"),
        ("package.json", "json"),
        ("README.md", "markdown"),
        ("Makefile", "makefile"),
        ("rules.mk", "makefile"),
        ("docker/Dockerfile", "dockerfile"),
        ("Dockerfile.dev", "dockerfile"),
        ("meta/recipes-core/busybox/busybox_1.36.bb", "bitbake"),
        ("meta-mine/busybox_%.bbappend", "bitbake"),
        ("classes/kernel.bbclass", "bitbake"),
        ("arch/arm/boot/dts/board.dts", "devicetree"),
        ("drivers/Kconfig", "kconfig"),
        ("arch/x86/entry.S", "assembly"),
        ("CMakeLists.txt", "cmake"),
    ],
)
def test_known_languages(path: str, language: str) -> None:
    assert language_for_path(path) == language


@pytest.mark.parametrize("path", ["LICENSE", ".bashrc", "data/blob.xyz", "", "notes.txt"])
def test_unknown_is_none(path: str) -> None:
    assert language_for_path(path) is None
