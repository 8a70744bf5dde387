"""From a data set x model x hardware's trials to its selection (``selected.json``,
liquidbench.tune.selected): each trial's metrics.json checked against the point it was to train,
the selection made (select.select: validation only), every trial summarised."""

from __future__ import annotations

import math
from pathlib import Path

from ..io import read_json
from .select import select

KEY = ("dataset", "model", "hardware")


def _same(recorded, wanted) -> bool:
    if isinstance(wanted, float) or isinstance(recorded, float):
        try:
            return math.isclose(float(recorded), float(wanted), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return recorded == wanted


def _check_trial(path: Path, metrics: dict, point: dict, names: dict) -> None:
    """A trial's metrics.json is of this data set x model x hardware and trained the point's values."""
    if {k: metrics.get(k) for k in KEY} != names:
        raise ValueError(f"{path} is a trial of {'/'.join(str(metrics.get(k)) for k in KEY)}, not of "
                         f"{'/'.join(names.values())}: run the tuning stage again")
    recorded = {**(metrics.get("train_params") or {}), **(metrics.get("model_params") or {})}
    differ = [f"{k} {recorded.get(k)!r} (expected {v!r})" for k, v in point.items() if not _same(recorded.get(k), v)]
    if differ and metrics.get("status") != "failed":
        raise ValueError(f"{path} trained other values than its trial point: {', '.join(differ)}; run the tuning "
                         "stage again (snakemake --forcerun tune_trial)")


def selection(paths: list[str | Path], points: list[dict]) -> dict:
    """selected.json's content from every trial's metrics.json (in trial order) and each trial's
    point, split into model and training keys (``[{"model": {...}, "training": {...}}]``)."""
    if len(paths) != len(points):
        raise ValueError(f"select-trials: {len(paths)} trial metrics but {len(points)} points: one point per trial")
    if not paths:
        raise ValueError("select-trials: no trial given")
    first = read_json(paths[0])
    names = {k: first.get(k) for k in KEY}
    trials = []
    for k, (path, split) in enumerate(zip(map(Path, paths), points)):
        metrics = read_json(path)
        point = {**split.get("model", {}), **split.get("training", {})}
        _check_trial(path, metrics, point, names)
        trials.append({**metrics, "trial": k, "point": point})
    chosen = select(trials)
    summaries = [{"trial": t["trial"], "point": t["point"], "status": t.get("status"),
                  "metric_name": t.get("metric_name"), "best_val_metric": t.get("best_val_metric"),
                  "train_time_s": t.get("train_time_s"),
                  "reason": t.get("diverged_reason") or t.get("failed_reason")} for t in trials]
    # the tuning budget, as the trials trained it: what a claim on the tuned model names
    trial_epochs = (first.get("train_params") or {}).get("epochs")
    out = {**names, "model_type": first.get("model_type"), "trial_epochs": trial_epochs, **chosen, "trials": summaries}
    if chosen.get("status") == "selected":
        out["apply"] = points[chosen["trial"]]
    return out
