"""Collect per-run metrics.json and history.csv files into long tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .metrics_schema import KEYS, problems


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


def read_run(path: str | Path) -> dict:
    """One metrics.json, checked against the schema (results/metrics_schema.py) and against the
    folder it lies in ({dataset}/{model}/{hardware}/seed{seed}): a file copied into another run's
    folder is refused, not counted as that run."""
    try:
        with open(path) as fh:
            metrics = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read run metrics {path}: {exc}") from exc
    wrong = problems(metrics)
    if wrong:
        raise ValueError(f"run metrics {path}: " + "; ".join(wrong))
    folders = Path(path).parent.parts[-4:]
    identity = (metrics["dataset"], metrics["model"], metrics["hardware"], f"seed{metrics['seed']}")
    if tuple(folders) != identity:
        raise ValueError(f"run metrics {path}: its fields name the run {'/'.join(identity)}, but it lies in "
                         f"{'/'.join(folders)}; expected a run's metrics.json in its own folder "
                         "(dataset/model/hardware/seedN)")
    return metrics


def load_runs(metrics_files: list[str | Path], expected: list[tuple] | None = None) -> pd.DataFrame:
    """One row per run from its metrics.json; with ``expected`` (dataset, model, hardware, seed)
    tuples, every expected run without a metrics file gets a row with status ``missing`` (a job
    that failed or never ran writes no metrics.json), so that it shows in every table. Every file
    is validated first (read_run); a run given twice is refused."""
    rows, seen = [], {}
    for path in metrics_files:
        metrics = read_run(path)
        key = tuple(metrics[k] for k in KEYS)
        if key in seen:
            raise ValueError(f"run metrics {path}: the run {'/'.join(map(str, key))} is also given by {seen[key]}; "
                             "expected each run once")
        seen[key] = path
        rows.append({**flatten(metrics), "run_dir": str(Path(path).parent)})
    found = {tuple(str(r[k]) for k in KEYS) for r in rows}
    for key in expected or []:
        if tuple(str(k) for k in key) not in found:
            rows.append({**dict(zip(KEYS, key)), "status": "missing", "run_dir": ""})
    if not rows:
        raise ValueError("no run metrics given to aggregate, and no expected runs")
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype(int)
    return df.sort_values(KEYS, kind="stable").reset_index(drop=True)


def load_histories(runs: pd.DataFrame) -> pd.DataFrame:
    """history.csv of every run, tagged with its keys and its status; runs without one are left out.
    The status travels with each epoch so that what draws or averages histories can keep to the ok
    runs (a diverged run's losses are kept for reading, never averaged with an ok run's)."""
    frames = []
    for run in runs.to_dict("records"):
        if not isinstance(run.get("run_dir"), str) or not run["run_dir"]:
            continue
        path = Path(run["run_dir"]) / "history.csv"
        if path.exists():
            frames.append(pd.read_csv(path).assign(**{k: run[k] for k in KEYS}, status=run.get("status", "ok")))
    if not frames:
        return pd.DataFrame(columns=KEYS + ["epoch", "train_loss", "val_loss", "val_metric", "epoch_time_s", "status"])
    return pd.concat(frames, ignore_index=True)
