"""Collect per-run metrics.json and history.csv files into long tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

KEYS = ["dataset", "model", "hardware", "seed"]


def flatten(obj: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted columns; lists become JSON strings."""
    row = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            row.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            row[name] = json.dumps(value)
        else:
            row[name] = value
    return row


def load_runs(metrics_files: list[str | Path]) -> pd.DataFrame:
    rows = []
    for path in metrics_files:
        try:
            with open(path) as fh:
                metrics = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read run metrics {path}: {exc}") from exc
        missing = [k for k in KEYS if k not in metrics]
        if missing:
            raise ValueError(f"run metrics {path} lack key(s) {missing}")
        rows.append({**flatten(metrics), "run_dir": str(Path(path).parent)})
    if not rows:
        raise ValueError("no run metrics given to aggregate")
    return pd.DataFrame(rows).sort_values(KEYS, kind="stable").reset_index(drop=True)


def load_histories(runs: pd.DataFrame) -> pd.DataFrame:
    """history.csv of every run, tagged with its keys; runs without one are left out."""
    frames = []
    for _, run in runs.iterrows():
        path = Path(run["run_dir"]) / "history.csv"
        if path.exists():
            frames.append(pd.read_csv(path).assign(**{k: run[k] for k in KEYS}))
    if not frames:
        return pd.DataFrame(columns=KEYS + ["epoch", "train_loss", "val_loss", "val_metric", "epoch_time_s"])
    return pd.concat(frames, ignore_index=True)
