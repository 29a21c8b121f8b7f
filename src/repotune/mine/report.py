"""`repotune mine --stats`: the numbers in mine_stats.json as tables, so a user sees at once
why a dataset is smaller than the history (which filter dropped what) and what it holds."""

from __future__ import annotations

from typing import Any

from rich.columns import Columns
from rich.console import Group
from rich.table import Table

_REASONS = {
    "merge": "merge commit",
    "shallow_boundary": "shallow clone boundary (diff unknown)",
    "outside_dates": "outside since/until",
    "excluded_author": "excluded author (bots)",
    "empty_message": "empty message",
    "merge_message": "merge message",
    "revert": "revert",
    "version_bump": "version bump",
    "empty": "no change",
    "no_files_after_filters": "no file left by paths/languages",
    "too_many_files": "too many files",
    "too_many_lines": "too many changed lines",
    "duplicate": "exact duplicate",
    "near_duplicate": "near duplicate",
}


def stats_tables(stats: dict[str, Any]) -> Group:
    """Commits kept/dropped by reason; files by language and without text; commit sizes."""
    total = stats["kept"] + sum(stats["dropped"].values())
    commits = _table("commits", "reason", total)
    commits.add_row("kept", *_count(stats["kept"], total), style="bold green")
    for reason, n in sorted(stats["dropped"].items(), key=lambda kv: -kv[1]):
        commits.add_row(f"dropped: {_REASONS.get(reason, reason)}", *_count(n, total))
    files_total = stats["files_kept"]
    languages = _table("files by language", "language", files_total)
    for language, n in list(stats["languages"].items())[:15]:
        languages.add_row(language, *_count(n, files_total))
    rest = sum(list(stats["languages"].values())[15:])
    if rest:
        languages.add_row("(others)", *_count(rest, files_total))
    for reason, n in stats["files_without_text"].items():
        languages.add_row(f"no text: {reason}", *_count(n, files_total), style="dim")
    sizes = []
    for key, title in (("changed_lines", "changed lines"), ("files", "files per commit")):
        table = _table(f"kept commits by {title}", title, stats["kept"])
        for bucket, n in stats["sizes"][key].items():
            table.add_row(bucket, *_count(n, stats["kept"]))
        sizes.append(table)
    parts: list[Any] = [Columns([commits, languages]), Columns(sizes)]
    if stats.get("secrets_replaced"):
        secrets = Table(title="secrets replaced", title_justify="left")
        secrets.add_column("kind")
        secrets.add_column("n", justify="right")
        for kind, n in stats["secrets_replaced"].items():
            secrets.add_row(kind, f"{n:,}")
        parts.append(secrets)
    return Group(*parts)


def _table(title: str, first: str, total: int) -> Table:
    table = Table(title=f"{title} ({total:,})", title_justify="left")
    table.add_column(first)
    table.add_column("n", justify="right")
    table.add_column("%", justify="right")
    return table


def _count(n: int, total: int) -> tuple[str, str]:
    return f"{n:,}", f"{100 * n / total:.1f}" if total else "-"
