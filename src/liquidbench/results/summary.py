"""Mean and standard deviation over seeds per dataset x model x hardware."""

from __future__ import annotations

import pandas as pd

GROUP = ["dataset", "model", "hardware"]
MEASURES = [
    "train_time_s",
    "steady_epoch_time_s",
    "throughput_samples_per_s",
    "best_val_metric",
    "test_metric",
    "final_train_loss",
    "peak_host_rss_mb",
]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group: n seeds, n ok, parameter count, metric name, mean and std of each measure."""
    rows = []
    for key, group in runs.groupby(GROUP, sort=True):
        ok = group[group["status"] == "ok"]
        row = dict(zip(GROUP, key))
        row.update(
            n_runs=len(group),
            n_ok=len(ok),
            metric_name=group["metric_name"].iloc[0],
            n_params=int(group["n_params"].iloc[0]),
        )
        for m in MEASURES:
            if m in ok:
                row[f"{m}_mean"] = ok[m].mean() if len(ok) else float("nan")
                row[f"{m}_std"] = ok[m].std(ddof=1) if len(ok) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "n/a"
    if pd.isna(std):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {std:.2g}"


def to_markdown(summary: pd.DataFrame) -> str:
    """A readable Markdown table: mean ± std over successful seeds."""
    cols = ["dataset", "model", "hardware", "runs (ok)", "params", "metric",
            "test metric", "best val metric", "train time [s]", "epoch time [s]", "throughput [samples/s]"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in summary.iterrows():
        cells = [
            r["dataset"], r["model"], r["hardware"], f"{r['n_runs']} ({r['n_ok']})", str(r["n_params"]),
            r["metric_name"],
            _fmt(r["test_metric_mean"], r["test_metric_std"]),
            _fmt(r["best_val_metric_mean"], r["best_val_metric_std"]),
            _fmt(r["train_time_s_mean"], r["train_time_s_std"]),
            _fmt(r["steady_epoch_time_s_mean"], r["steady_epoch_time_s_std"]),
            _fmt(r["throughput_samples_per_s_mean"], r["throughput_samples_per_s_std"]),
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"
