"""The tuning stage's tables and figure (registry entries ``tuning``, ``tuned``; TUNING_FIGURES).

``collect`` turns every selection (``results/tuning/{dataset}/{model}/{hardware}/selected.json``,
liquidbench.tune) into the ``trials`` table: one row per trial with its searched values (columns
``point.<name>``), status, validation metric (the only score a trial has: the test split is never
read by the selection), training time and whether it was selected. ``tuning`` shows every trial;
``tuned`` the selected setting per data set x model x hardware with the spread of validation
metrics over its trials, or, where no trial ended ok, that it selected nothing (the study's runs of
that model are then recorded as failed, and claims on them are undecidable).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_json
from .tables import num

KEY = ["dataset", "model", "hardware"]
POINT = "point."
TRIAL_COLUMNS = [*KEY, "model_type", "trial", "status", "metric_name", "best_val_metric", "train_time_s",
                 "selected", "reason"]


def collect(paths: list[str | Path]) -> pd.DataFrame:
    """The trials table from selected.json files (each holds every trial of its data set x model x
    hardware)."""
    rows = []
    for path in paths:
        sel = read_json(path)
        for trial in sel.get("trials", []):
            row = {k: sel.get(k) for k in KEY}
            row.update(model_type=sel.get("model_type"), trial=trial["trial"], status=trial.get("status"),
                       metric_name=trial.get("metric_name"), best_val_metric=trial.get("best_val_metric"),
                       train_time_s=trial.get("train_time_s"),
                       selected=sel.get("status") == "selected" and sel.get("trial") == trial["trial"],
                       reason=trial.get("reason") or "")
            row.update({f"{POINT}{k}": v for k, v in (trial.get("point") or {}).items()})
            rows.append(row)
    frame = pd.DataFrame(rows)
    points = sorted(c for c in frame.columns if c.startswith(POINT))
    return frame.reindex(columns=TRIAL_COLUMNS + points)


def _point_text(row: pd.Series, columns: list[str]) -> str:
    """A trial's searched values as ``name=value`` pairs (those its model type searched)."""
    parts = []
    for c in columns:
        v = row[c]
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        parts.append(f"{c[len(POINT):]}={num(v, 4) if isinstance(v, float) else v}")
    return ", ".join(parts)


def build_trials(trials: pd.DataFrame) -> tuple:
    """Every trial: its setting, validation metric, training time and status."""
    points = [c for c in trials.columns if c.startswith(POINT)]
    raw = trials.sort_values(KEY + ["trial"], kind="stable").reset_index(drop=True)
    display = pd.DataFrame({
        "data set": raw["dataset"], "model": raw["model"], "hardware": raw["hardware"], "trial": raw["trial"],
        "setting": [_point_text(r, points) for _, r in raw.iterrows()],
        "val metric": [num(v, 4) for v in raw["best_val_metric"]],
        "train time (s)": [num(v, 3) for v in raw["train_time_s"]],
        "status": [s + (" (selected)" if sel else "") for s, sel in zip(raw["status"], raw["selected"])],
    })
    notes = ["Each trial is scored on the validation split only (its best epoch's validation metric); "
             "the selected one has the best, ties broken by training time."]
    if raw.empty:
        notes.append("No trial ran: the study tunes no model of its runs.")
    return raw, display, " ".join(notes)


def build_tuned(trials: pd.DataFrame) -> tuple:
    """The selected setting per data set x model x hardware, with the validation metrics' spread
    over its trials; where no trial ended ok, the reason."""
    points = [c for c in trials.columns if c.startswith(POINT)]
    rows = []
    for key, group in trials.groupby(KEY, sort=False):
        ok = group[(group["status"] == "ok") & np.isfinite(pd.to_numeric(group["best_val_metric"], errors="coerce"))]
        chosen = group[group["selected"].astype(bool)]
        row = dict(zip(KEY, key), metric_name=group["metric_name"].dropna().iloc[0] if group["metric_name"].notna().any()
                   else "", n_trials=len(group), n_ok=len(ok), n_diverged=int((group["status"] == "diverged").sum()))
        vals = pd.to_numeric(ok["best_val_metric"])
        row.update(val_metric_min=vals.min() if len(vals) else np.nan, val_metric_median=vals.median() if len(vals)
                   else np.nan, val_metric_max=vals.max() if len(vals) else np.nan)
        if len(chosen):
            best = chosen.iloc[0]
            lower = row["metric_name"] != "accuracy"
            rank = int((vals < best["best_val_metric"]).sum() if lower else (vals > best["best_val_metric"]).sum()) + 1
            row.update(selected_trial=int(best["trial"]), setting=_point_text(best, points),
                       best_val_metric=best["best_val_metric"], train_time_s=best["train_time_s"], rank=rank,
                       note="")
        else:
            row.update(selected_trial=np.nan, setting="", best_val_metric=np.nan, train_time_s=np.nan, rank=np.nan,
                       note=f"no trial ended ok ({row['n_diverged']} of {row['n_trials']} diverged): nothing "
                            "selected; the study's runs of this model are recorded as failed")
        rows.append(row)
    cols = [*KEY, "metric_name", "selected_trial", "setting", "best_val_metric", "train_time_s", "rank", "n_trials",
            "n_ok", "n_diverged", "val_metric_min", "val_metric_median", "val_metric_max", "note"]
    raw = pd.DataFrame(rows, columns=cols)
    display = pd.DataFrame({
        "data set": raw["dataset"], "model": raw["model"], "hardware": raw["hardware"],
        "selected setting": [s or n for s, n in zip(raw["setting"], raw["note"])],
        "val metric": [num(v, 4) for v in raw["best_val_metric"]],
        "rank": ["n/a" if pd.isna(v) else str(int(v)) for v in raw["rank"]],
        "ok trials": [f"{a} of {b}" for a, b in zip(raw["n_ok"], raw["n_trials"])],
        "val metric over trials (min / median / max)": [
            f"{num(a, 4)} / {num(b, 4)} / {num(c, 4)}" for a, b, c in
            zip(raw["val_metric_min"], raw["val_metric_median"], raw["val_metric_max"])],
    })
    notes = ["The selected trial's setting is trained over the study's seeds at the full budget; every claim "
             "on these models is reached on tuned settings."]
    if raw.empty:
        notes.append("No trial ran: the study tunes no model of its runs.")
    return raw, display, " ".join(notes)


def search_figure(trials: pd.DataFrame, stem: Path) -> list[Path]:
    """Validation metric against each searched value: a row of panels per data set (metrics differ
    between data sets), a panel per searched parameter, a colour per model, the selected trials
    circled; a log axis where a parameter's values span a decade."""
    from .figures import figure, save

    points = [c for c in trials.columns if c.startswith(POINT)]
    ok = trials[trials["status"] == "ok"] if len(trials) else trials
    datasets = list(dict.fromkeys(ok["dataset"])) if len(ok) else []
    fig, axes = figure(max(1, len(datasets)), max(1, len(points)))  # the size every figure has
    if not datasets or not points:
        ax = axes[0][0]
        ax.text(0.5, 0.5, "no ok trials", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return save(fig, stem)
    for row, dataset in zip(axes, datasets):
        here = ok[ok["dataset"] == dataset]
        for ax, column in zip(row, points):
            for model, group in here.groupby("model", sort=True):
                x = pd.to_numeric(group[column], errors="coerce")
                y = pd.to_numeric(group["best_val_metric"], errors="coerce")
                if x.notna().any():
                    ax.scatter(x, y, s=14, label=model)
                    chosen = group["selected"].astype(bool) & x.notna()
                    ax.scatter(x[chosen], y[chosen], s=60, facecolors="none", edgecolors="black")
            values = pd.to_numeric(here[column], errors="coerce").dropna()
            if len(values) and values.min() > 0 and values.max() / values.min() >= 10:
                ax.set_xscale("log")
            ax.set_xlabel(column[len(POINT):])
            metric = here["metric_name"].dropna()
            ax.set_ylabel(f"{dataset}: validation {metric.iloc[0] if len(metric) else 'metric'}")
        row[0].legend()
    return save(fig, stem)
