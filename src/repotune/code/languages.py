"""Language of a file from its name alone: mining sees millions of paths and must not open them,
and stages need one shared name per language (for comment syntax, grammars and stats)."""

from __future__ import annotations

from pathlib import PurePosixPath

# Whole file names (checked first, case-sensitive as the tools that read them are).
_NAMES: dict[str, str] = {
    "Makefile": "makefile",
    "makefile": "makefile",
    "GNUmakefile": "makefile",
    "Kbuild": "makefile",
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "CMakeLists.txt": "cmake",
    "Kconfig": "kconfig",
    "Jenkinsfile": "groovy",
    "Gemfile": "ruby",
    "Rakefile": "ruby",
    "Vagrantfile": "ruby",
    "BUILD": "starlark",
    "BUILD.bazel": "starlark",
    "WORKSPACE": "starlark",
    "meson.build": "meson",
}

# Extensions, lower-cased. Ambiguous ones (.inc, .m, .v) get the likelier meaning in code repos
# or none at all.
_EXTENSIONS: dict[str, str] = {
    "py": "python", "pyi": "python", "pyx": "python",
    "c": "c", "h": "c",
    "cc": "cpp", "cpp": "cpp", "cxx": "cpp", "c++": "cpp", "hpp": "cpp", "hh": "cpp",
    "hxx": "cpp", "h++": "cpp", "ipp": "cpp", "tpp": "cpp",
    "cs": "csharp",
    "java": "java",
    "kt": "kotlin", "kts": "kotlin",
    "scala": "scala",
    "groovy": "groovy", "gradle": "groovy",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "javascript",
    "ts": "typescript", "tsx": "typescript", "mts": "typescript", "cts": "typescript",
    "go": "go",
    "rs": "rust",
    "rb": "ruby", "rake": "ruby", "gemspec": "ruby",
    "php": "php",
    "sh": "shell", "bash": "shell", "zsh": "shell", "ksh": "shell",
    "ps1": "powershell",
    "bat": "batch", "cmd": "batch",
    "pl": "perl", "pm": "perl",
    "lua": "lua",
    "r": "r",
    "jl": "julia",
    "swift": "swift",
    "mm": "objective-cpp",
    "dart": "dart",
    "zig": "zig",
    "hs": "haskell",
    "ml": "ocaml", "mli": "ocaml",
    "ex": "elixir", "exs": "elixir",
    "erl": "erlang", "hrl": "erlang",
    "clj": "clojure", "cljs": "clojure",
    "f90": "fortran", "f95": "fortran", "f03": "fortran",
    "s": "assembly", "asm": "assembly",
    "sv": "verilog", "svh": "verilog",
    "vhd": "vhdl", "vhdl": "vhdl",
    "sql": "sql",
    "html": "html", "htm": "html",
    "css": "css", "scss": "scss",
    "vue": "vue", "svelte": "svelte",
    "xml": "xml",
    "yml": "yaml", "yaml": "yaml",
    "toml": "toml",
    "json": "json",
    "ini": "ini", "cfg": "ini",
    "md": "markdown", "markdown": "markdown",
    "rst": "rst",
    "tex": "latex",
    "mk": "makefile", "mak": "makefile",
    "dockerfile": "dockerfile",
    "cmake": "cmake",
    "bzl": "starlark",
    "proto": "protobuf",
    "tf": "terraform",
    "nix": "nix",
    "dts": "devicetree", "dtsi": "devicetree",
    "bb": "bitbake", "bbappend": "bitbake", "bbclass": "bitbake",
}  # fmt: skip


def language_for_path(path: str) -> str | None:
    """Return the language name for `path` (repo-relative, '/'-separated), None if unknown."""
    name = PurePosixPath(path).name
    if name in _NAMES:
        return _NAMES[name]
    if name.startswith(("Dockerfile.", "Containerfile.")):
        return "dockerfile"
    if name.startswith("Kconfig."):
        return "kconfig"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dotfile such as ".bashrc"
        return None
    return _EXTENSIONS.get(ext.lower())


# Documentation and data rather than code: not explained, not searched for fixes.
PROSE = frozenset({"markdown", "rst", "latex", "html", "xml", "json", "yaml", "toml", "ini"})


def is_code(language: str | None) -> bool:
    """Code, not documentation or data (a CHANGES.rst line is no completion to measure)."""
    return language is not None and language not in PROSE


# Line-comment syntax per language: tasks comment code out in the file's own syntax (RepairLLaMA
# IR4) and recognise comment-only lines where no grammar is available. Languages whose only
# comments are blocks (CSS, OCaml, HTML, XML, Markdown) fall back to DEFAULT_COMMENT_PREFIX.
DEFAULT_COMMENT_PREFIX = "//"
COMMENT_PREFIX: dict[str, str] = {
    **dict.fromkeys(
        ["c", "cpp", "csharp", "java", "kotlin", "scala", "groovy", "javascript", "typescript",
         "go", "rust", "swift", "objective-cpp", "dart", "zig", "php", "verilog", "protobuf",
         "devicetree", "scss", "vue", "svelte"],
        "//",
    ),
    **dict.fromkeys(
        ["python", "ruby", "shell", "powershell", "perl", "r", "julia", "elixir", "yaml", "toml",
         "makefile", "dockerfile", "cmake", "kconfig", "starlark", "meson", "bitbake", "nix",
         "terraform", "ini"],
        "#",
    ),
    **dict.fromkeys(["sql", "lua", "haskell", "vhdl"], "--"),
    **dict.fromkeys(["erlang", "latex"], "%"),
    **dict.fromkeys(["assembly", "clojure"], ";"),
    "fortran": "!",
    "batch": "REM",
}  # fmt: skip


def comment_prefix(language: str | None) -> str:
    """The line-comment marker for `language`; `//` where it has none or is unknown."""
    return COMMENT_PREFIX.get(language or "", DEFAULT_COMMENT_PREFIX)
