"""tree-sitter parsers for the languages with a grammar wheel installed.

The per-language wheels (`tree-sitter-python`, `tree-sitter-c`, ...) ship compiled grammars and
work offline; `tree-sitter-language-pack` >= 1.0 downloads grammars at run time, so it is not
used. A language whose wheel is missing simply has no parser, and callers fall back to
blank-line blocks.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

# language -> (module, function returning the grammar pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "java": ("tree_sitter_java", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
}


@functools.cache
def grammar(language: str | None) -> Any | None:
    """The tree_sitter.Language for `language`, None when there is no grammar for it."""
    if language not in GRAMMARS:
        return None
    module_name, fn = GRAMMARS[language]
    try:
        import tree_sitter

        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return tree_sitter.Language(getattr(module, fn)())


def has_grammar(language: str | None) -> bool:
    return grammar(language) is not None


def parse(source: bytes, language: str | None) -> tuple[Any, str] | None:
    """Parse `source` into (tree, grammar name); None without a grammar. TypeScript that fails
    to parse is retried as TSX, since both share the `typescript` language name (`.tsx` files
    hold JSX); queries must then use the grammar name returned here."""
    lang = grammar(language)
    if lang is None or language is None:
        return None
    import tree_sitter

    tree = tree_sitter.Parser(lang).parse(source)
    if language == "typescript" and tree.root_node.has_error and has_grammar("tsx"):
        retry = tree_sitter.Parser(grammar("tsx")).parse(source)
        if not retry.root_node.has_error:
            return retry, "tsx"
    return tree, language


@functools.cache
def query(language: str, pattern: str) -> Any:
    """A compiled query (cached: compiling is the slow part)."""
    import tree_sitter

    return tree_sitter.Query(grammar(language), pattern)


def captures(tree: Any, grammar_name: str, pattern: str) -> dict[str, list[Any]]:
    """Nodes matched by `pattern`, by capture name."""
    import tree_sitter

    return tree_sitter.QueryCursor(query(grammar_name, pattern)).captures(tree.root_node)
