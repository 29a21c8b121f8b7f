"""What the task builders of one build share, each part loaded on first use: the mined
commits, the repository tree the current-code tasks read, and the tokenizer of the model being
trained (FIM tokens, chat templates, token caps)."""

from __future__ import annotations

import random
from functools import cached_property
from pathlib import Path
from typing import Any

from repotune.config import BuildConfig
from repotune.errors import UserError
from repotune.rundir import commits_path, mine_stats, read_config


class BuildContext:
    """Lazy sources for one build; `held_out_times` collects the commit times of history
    val/test rows, so the tree can be read from before them."""

    def __init__(self, run_dir: Path, cfg: BuildConfig, model: str | None, say):
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self._model = model
        self.say = say
        self.held_out_times: list[int] = []  # commit times of history val/test rows

    @cached_property
    def commits(self) -> list:
        from repotune.commits import read_commits

        path = commits_path(self.run_dir)
        if not path.is_file():
            raise UserError(f"no mined commits at {path}: run `repotune mine` first")
        return read_commits(path)

    @cached_property
    def mine_stats(self) -> dict:
        return mine_stats(self.run_dir)

    @cached_property
    def model_name(self) -> str:
        """build.model, else the model passed in (the CLI's model.name), else the run's model
        (its config.yaml), else the embedded default. build.model comes first: model.name
        always has a value, so preferring it made build.model dead."""
        from repotune.models.registry import EMBEDDED_DEFAULT

        name = self.cfg.model or self._model
        if name is None:
            saved = read_config(self.run_dir, strict=False)
            name = saved.model.name if saved else None
        return name or EMBEDDED_DEFAULT

    @cached_property
    def tokenizer(self) -> Any:
        from repotune.models.load import load_tokenizer

        return load_tokenizer(self.model_name)

    @cached_property
    def snapshot(self):
        t = self.cfg.tree
        repo = self.repo
        ref = t.ref or self.cutoff_ref(self.held_out_times)
        snap = self.tree_at(ref)
        if t.max_files is not None and len(snap.files) > t.max_files:
            snap.skipped["over_max_files"] += len(snap.files) - t.max_files
            keep = random.Random(self.cfg.seed).sample(snap.files, t.max_files)
            snap.files = sorted(keep, key=lambda f: f.path)
        self.say(f"tree: {len(snap.files)} files of {repo} at {ref} ({snap.sha[:12]})")
        return snap

    @property
    def repo(self) -> str:
        repo = self.cfg.tree.repo or self.mine_stats.get("repo")
        if not repo:
            raise UserError(
                "fim/explain/complete read the repository's files: set build.tree.repo=PATH "
                "(or run `repotune mine` into this run directory first)"
            )
        if not Path(repo).expanduser().exists():
            raise UserError(f"repository {repo} not found: set build.tree.repo=PATH")
        return repo

    def tree_at(self, ref: str):
        """The files of `ref`'s tree that pass build.tree's path and language filters."""
        from repotune.code.tree import read_tree

        t = self.cfg.tree
        return read_tree(
            Path(self.repo).expanduser(),
            ref,
            include=t.include,
            exclude=t.exclude,
            languages=t.languages,
            max_file_bytes=t.max_file_bytes,
        )

    def cutoff_ref(self, held_out_times: list[int]) -> str:
        """HEAD, or the newest mined commit older than every one of `held_out_times`."""
        if not held_out_times:
            return "HEAD"
        limit = min(held_out_times)
        older = [c for c in self.commits if c.committer_time < limit]
        return max(older, key=lambda c: c.committer_time).sha if older else "HEAD"

    def fits_tokens(self, max_prompt: int | None, max_completion: int | None):
        """A predicate for token caps in the model's tokenizer (None: no caps, no tokenizer)."""
        if max_prompt is None and max_completion is None:
            return None

        def fits(prompt: str, completion: str) -> bool:
            for text, cap in ((prompt, max_prompt), (completion, max_completion)):
                if cap is not None and self.count_tokens(text) > cap:
                    return False
            return True

        return fits

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
