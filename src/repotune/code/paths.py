"""File paths as both the miner (history) and the tree reader (current code) take them: names
that UTF-8 files can store, and the include/exclude globs of `mine.*` and `build.tree.*`."""

from __future__ import annotations

import re
from collections.abc import Callable


def text_path(path: str) -> str:
    """A file name as a UTF-8 file (Parquet, JSONL) can store it: pygit2 decodes names that are
    not UTF-8 with surrogate escapes (`latin\\udce9.py`), which no UTF-8 encoder accepts; those
    bytes become U+FFFD."""
    if path.isascii():
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def path_filter(include: list[str], exclude: list[str]) -> Callable[[str], bool]:
    """Keep a path if it matches any include glob (or there are none) and no exclude glob.

    Globs: `*` and `?` stay inside one path segment, `**` spans segments. A glob without '/'
    matches any segment (`*.py`, `vendor`); one with '/' is anchored at the repository root.
    A glob that matches a folder matches everything under it (`src/vendor` = `src/vendor/**`).
    """
    inc = [_compile_glob(g) for g in include]
    exc = [_compile_glob(g) for g in exclude]

    def keep(path: str) -> bool:
        if inc and not any(m(path) for m in inc):
            return False
        return not any(m(path) for m in exc)

    return keep


def _compile_glob(glob: str) -> Callable[[str], bool]:
    anchored = "/" in glob.strip("/")
    rx = re.compile(_glob_to_regex(glob.strip("/")))

    def match(path: str) -> bool:
        parts = path.split("/")
        if not anchored:
            return any(rx.fullmatch(p) for p in parts)
        return any(rx.fullmatch("/".join(parts[:k])) for k in range(1, len(parts) + 1))

    return match


def _glob_to_regex(glob: str) -> str:
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**", i):
            i += 2
            if glob.startswith("/", i):  # `a/**/b` also matches `a/b`
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            neg = body[0] in "!^"
            body = re.escape(body[1:] if neg else body).replace(r"\-", "-")
            out.append(f"[{'^' if neg else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
