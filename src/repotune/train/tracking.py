"""Experiment tracking: TensorBoard event files in the run, MLflow in a local file store.

Both are transformers' own integrations; this only picks where they write. MLflow needs no
server: runs go to ./mlruns (or $MLFLOW_TRACKING_URI / train.mlflow_tracking_uri), and
`mlflow ui` in that folder shows them. A tracker whose package is missing is skipped with
one line saying how to install it, so a plain install still trains.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from repotune.config import TrainConfig

_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def report_to(cfg: TrainConfig, run_dir: Path, warn: Callable[[str], None]) -> list[str]:
    """The `report_to` list for TrainingArguments, with MLflow's environment set up."""
    chosen = []
    for name in cfg.report_to:
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            warn(f"{name} is not installed, so it is not tracked: pip install 'repotune[track]'")
            continue
        chosen.append(name)
    if "mlflow" in chosen:
        uri = cfg.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = Path("mlruns").resolve().as_uri()
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ["MLFLOW_EXPERIMENT_NAME"] = cfg.mlflow_experiment
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps the file store only on request; it is what "no server" needs.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return chosen


def tensorboard_dir(run_dir: Path) -> Path:
    return run_dir / "train" / "tensorboard"
