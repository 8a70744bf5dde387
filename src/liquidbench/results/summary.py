"""Statistics over seeds per dataset x model x hardware, with the fate of every expected run.

Only runs with status ``ok`` enter the statistics; diverged, failed and missing runs are counted
in their own columns and named in ``runs``, so that no row loses a seed silently.
"""

from __future__ import annotations

import pandas as pd

from .stats import describe
from .tables import BEST, compact, drop_empty

GROUP = ["dataset", "model", "hardware"]
STATUSES = ["ok", "diverged", "failed", "missing"]
# column in runs.csv -> (label, unit)
MEASURES = {
    "train_time_s": ("train time", "s"),
    "steady_epoch_time_s": ("epoch time", "s"),
    "throughput_samples_per_s": ("throughput", "samples/s"),
    "test_metric": ("test metric", ""),
    "best_val_metric": ("best val metric", ""),
    "final_train_loss": ("final train loss", ""),
    "step_time_median_s": ("median step time", "s"),
    "comm_fraction": ("communication fraction", ""),
    "peak_host_rss_mb": ("peak host RSS", "MB"),
    "telemetry.host.rss_peak_mb": ("peak host RSS (sampled)", "MB"),
    "telemetry.gpu.util_mean_pct": ("mean GPU utilisation", "%"),
    "telemetry.gpu.mem_used_peak_mb": ("peak GPU memory", "MB"),
    "telemetry.gpu.torch_max_memory_allocated_mb": ("peak torch GPU allocation", "MB"),
    "telemetry.gpu.energy_j": ("GPU energy", "J"),
    "telemetry.gpu.energy_per_epoch_j": ("GPU energy per epoch", "J"),
}
# Positive quantities: geometric mean with the log-scale t interval (stats.py). Metrics and losses
# keep the arithmetic t interval; shares keep it too, cut to their range.
POSITIVE = {"train_time_s", "steady_epoch_time_s", "throughput_samples_per_s", "step_time_median_s",
            "peak_host_rss_mb", "telemetry.host.rss_peak_mb", "telemetry.gpu.mem_used_peak_mb",
            "telemetry.gpu.torch_max_memory_allocated_mb", "telemetry.gpu.energy_j",
            "telemetry.gpu.energy_per_epoch_j"}
BOUNDS = {"comm_fraction": (0.0, 1.0), "telemetry.gpu.util_mean_pct": (0.0, 100.0)}
# The range of each test metric: its mean's interval is cut to it (an MSE below 0 or an accuracy
# above 1 is no possible value); the measures below take their group's metric's range.
METRIC_BOUNDS = {"accuracy": (0.0, 1.0), "mse": (0.0, float("inf"))}
METRIC_MEASURES = ("test_metric", "best_val_metric")
LOWER_IS_BETTER = {"accuracy": False, "mse": True}
STAT_FIELDS = ["n", "mean", "median", "std", "gmean", "gsd", "ci_low", "ci_high"]


def centre(measure: str) -> str:
    """The summary field an interval of ``measure`` belongs to: gmean (positive) or mean."""
    return "gmean" if measure in POSITIVE else "mean"


# Markdown / LaTeX columns: (runs.csv column, header)
DISPLAY = [
    ("test_metric", "test metric"),
    ("best_val_metric", "best val metric"),
    ("train_time_s", "train time [s]"),
    ("steady_epoch_time_s", "epoch time [s]"),
    ("throughput_samples_per_s", "throughput [samples/s]"),
    ("peak_host_rss_mb", "peak host RSS [MB]"),
    ("telemetry.gpu.mem_used_peak_mb", "peak GPU mem [MB]"),
    ("telemetry.gpu.util_mean_pct", "GPU util [%]"),
    ("telemetry.gpu.energy_j", "GPU energy [J]"),
]


def first(series: pd.Series):
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def status_text(counts: dict) -> str:
    """'3 ok' or '1 ok, 1 diverged, 1 missing'."""
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts.get(s)]
    other = counts.get("other", 0)
    if other:
        parts.append(f"{other} other")
    return ", ".join(parts) or "0 runs"


def fates(summary: pd.DataFrame) -> dict:
    """Runs of the summary's rows counted by status (its n_ok, n_diverged ... columns): what became of
    every expected run, for the notes of tables that would otherwise be silently empty."""
    counts = {s: int(pd.to_numeric(summary[f"n_{s}"], errors="coerce").fillna(0).sum()) if f"n_{s}" in summary else 0
              for s in STATUSES}
    if "n_runs" in summary:
        counts["other"] = int(pd.to_numeric(summary["n_runs"], errors="coerce").fillna(0).sum()) - sum(counts.values())
    return counts


NO_OK_RUNS = "No run of this study ended ok"
# what a reader does about it: the runs' own logs name the epoch and the reason
NO_OK_ADVICE = ("every statistic is n/a and no model is ranked. Each run's train.log (and metrics.json: "
                "diverged_epoch, diverged_reason) says why; a diverging study usually needs a lower training.lr "
                "or a gradient clip (training.grad_clip).")


def no_ok_note(summary: pd.DataFrame) -> str:
    """A sentence for a table's notes when no run of the study ended ok ('' otherwise): without it
    a table of n/a cells, or one without rows, reads like a bug rather than an outcome."""
    counts = fates(summary)
    if counts["ok"] or not len(summary):
        return ""
    return f"{NO_OK_RUNS} ({status_text(counts)}): {NO_OK_ADVICE}"


def run_settings(group: pd.DataFrame) -> dict:
    """How a group's runs got their settings: ``settings`` ``tuned`` (the tuning stage selected them,
    metrics.json ``tuned``), ``tuned (nothing selected)`` or ``fixed`` (as the study file gives them),
    with the budget: ``epochs`` of the runs, and for tuned ones the trials and their epochs."""
    def column(name):
        return first(group[name]) if name in group else None

    status = column("tuned.status")
    settings = "fixed" if status is None else ("tuned" if status == "selected" else "tuned (nothing selected)")
    epochs, trials, trial_epochs = column("epochs"), column("tuned.n_trials"), column("tuned.trial_epochs")
    as_int = lambda v: int(v) if v is not None and not pd.isna(v) else None  # noqa: E731
    return dict(settings=settings, epochs=as_int(epochs), tuning_trials=as_int(trials),
                tuning_epochs=as_int(trial_epochs), tuned_on=tuned_on(group))


def tuned_on(group: pd.DataFrame) -> str:
    """Where a group's selection came from when not from its own trials (tuning.share): ``ltc on
    gpu``; '' for its own trials, fixed settings, or runs recorded before the selection named them."""
    def column(name):
        return first(group[name]) if name in group else None

    model, hardware = column("tuned.model"), column("tuned.hardware")
    if not isinstance(model, str) or not isinstance(hardware, str):
        return ""
    own = (column("model"), column("hardware"))
    return "" if (model, hardware) == own else f"{model} on {hardware}"


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group: run counts by status, parameter count, metric name and, for each
    measure, n, mean, median, std, geometric mean and std, and the 95 % interval (log-scale
    around the geometric mean for POSITIVE measures) over the group's ok runs (NaN where no data)."""
    if "status" not in runs:
        runs = runs.assign(status="ok")
    rows = []
    for key, group in runs.groupby(GROUP, sort=True):
        ok = group[group["status"] == "ok"]
        counts = {s: int((group["status"] == s).sum()) for s in STATUSES}
        counts["other"] = len(group) - sum(counts.values())
        row = dict(zip(GROUP, key))
        n_params = first(group["n_params"]) if "n_params" in group else None
        row.update(
            n_runs=len(group),
            **{f"n_{s}": counts[s] for s in STATUSES},
            runs=status_text(counts),
            model_type=first(group["model_type"]) if "model_type" in group else None,
            metric_name=first(group["metric_name"]) if "metric_name" in group else None,
            n_params=int(n_params) if n_params is not None else None,
            **run_settings(group),
        )
        for m in MEASURES:
            values = pd.to_numeric(ok[m], errors="coerce") if m in ok else []
            bounds = METRIC_BOUNDS.get(row["metric_name"]) if m in METRIC_MEASURES else BOUNDS.get(m)
            d = describe(values, positive=m in POSITIVE, bounds=bounds)
            row.update({f"{m}_{f}": d[f] for f in STAT_FIELDS})
        rows.append(row)
    return pd.DataFrame(rows)


def best_rows(summary: pd.DataFrame, col: str) -> set:
    """Index labels of the best row of each data set for ``col``: lowest time (train_time_s), best
    test metric by its direction (test_metric); rows without a value never win."""
    best = set()
    for _, g in summary.groupby("dataset"):
        value = g[f"{col}_{centre(col)}"]
        if not value.notna().any():
            continue
        lower = True if col != "test_metric" else LOWER_IS_BETTER.get(first(g["metric_name"]), True)
        best.add(value.idxmin() if lower else value.idxmax())
    return best


def display(summary: pd.DataFrame) -> pd.DataFrame:
    """Compact cells over ok seeds: 'centre [95 % CI] n=k', the centre the geometric mean for
    positive quantities and the mean for the others (std and median stay in the CSV); columns
    without data in this study left out; the data set's best train time and test metric marked."""
    best = {col: best_rows(summary, col) for col in ("train_time_s", "test_metric")} if len(summary) else {}
    out = []
    for i, r in summary.iterrows():
        row = {
            "dataset": r["dataset"], "model": r["model"], "hardware": r["hardware"], "runs": r["runs"],
            "params": "n/a" if pd.isna(r["n_params"]) else str(int(r["n_params"])),
            "metric": r["metric_name"] if isinstance(r["metric_name"], str) else "n/a",
        }
        for col, header in DISPLAY:
            cell = compact(r[f"{col}_{centre(col)}"], r[f"{col}_ci_low"], r[f"{col}_ci_high"], r[f"{col}_n"])
            row[header] = cell + (f" {BEST}" if i in best.get(col, ()) else "")
        out.append(row)
    columns = ["dataset", "model", "hardware", "runs", "params", "metric"] + [h for _, h in DISPLAY]
    return drop_empty(pd.DataFrame(out, columns=columns), keep=tuple(columns[:6]))


NOTES = ("Cells: centre [95 % interval] n = ok seeds. Times, throughput, memory and energy (positive "
         "quantities): geometric mean with the t interval on the log scale; metrics: mean with the t "
         "interval, cut to the metric's range. Std, median and the other statistics are in summary.csv. "
         f"{BEST}: the data set's lowest training time and best test metric. Only runs with status ok "
         "enter the statistics; `runs` counts every expected run by status (diverged, failed, missing = "
         "no metrics.json). n/a: no data for this configuration; columns without data in this study "
         "are left out.")


def to_markdown(summary: pd.DataFrame) -> str:
    from .tables import to_markdown as md

    return md(display(summary), "Summary over seeds", NOTES)


def build(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The summary table (registry entry ``summary``): raw, display and notes."""
    table = summarize(runs)
    return table, display(table), " ".join(filter(None, (no_ok_note(table), NOTES)))
