"""Model comparisons: time and metric ratios between models, and wall time to a target metric."""

from __future__ import annotations


import numpy as np
import pandas as pd

from .stats import describe, estimate_of, ratio
from .tables import estimate, num

RATIO_MEASURES = {"train_time_s": "train time", "steady_epoch_time_s": "epoch time", "test_metric": "test metric"}


def split_types(model_types: dict) -> tuple[dict[str, str], dict[str, str]]:
    """``{model: type}`` and ``{model: implementation}`` from ``{model: type}`` or
    ``{model: {"type": type, "impl": implementation}}`` entries (implementation default ``ncps``)."""
    types, impls = {}, {}
    for name, value in model_types.items():
        entry = value if isinstance(value, dict) else {"type": value}
        types[name], impls[name] = entry["type"], entry.get("impl", "ncps")
    return types, impls


def model_pairs(model_types: dict) -> list[tuple[str, str, str]]:
    """(comparison, model, reference): every CfC-type model against every LTC-type model of the same
    implementation, every model against every LSTM-type model (except itself), and every fast
    LTC or CfC against every ncps one of its type ("fast vs ncps", the implementation speedup)."""
    types, impls = split_types(model_types)
    by_type = lambda t: [m for m, mt in types.items() if mt == t]  # noqa: E731
    pairs = [("cfc vs ltc", c, l) for c in by_type("cfc") for l in by_type("ltc") if impls[c] == impls[l]]
    pairs += [("vs lstm", m, r) for r in by_type("lstm") for m in types if m != r]
    pairs += [("fast vs ncps", m, r) for t in ("ltc", "cfc") for m in by_type(t) for r in by_type(t)
              if impls[m] == "fast" and impls[r] == "ncps"]
    return pairs


def ratio_table(summary: pd.DataFrame, model_types: dict[str, str]) -> pd.DataFrame:
    """Per dataset x hardware x pair: model/reference ratio of the geometric means of each measure
    with its 95 % log-scale t interval (< 1: the model takes less time / has the lower metric)."""
    index = {(r["dataset"], r["model"], r["hardware"]): r for r in summary.to_dict("records")}
    rows = []
    for dataset in sorted(summary["dataset"].unique()):
        for hardware in sorted(summary["hardware"].unique()):
            for comparison, model, ref in model_pairs(model_types):
                a, b = index.get((dataset, model, hardware)), index.get((dataset, ref, hardware))
                if a is None or b is None:
                    continue  # a side without runs in the study (study.exclude): nothing to compare
                row = {"dataset": dataset, "hardware": hardware, "comparison": comparison, "model": model,
                       "reference": ref, "model_runs": a["runs"], "reference_runs": b["runs"],
                       "metric_name": a.get("metric_name") or b.get("metric_name")}
                for m in RATIO_MEASURES:
                    r = ratio(estimate_of(a, m), estimate_of(b, m))
                    row.update({f"{m}_ratio": r["value"], f"{m}_ratio_ci_low": r["ci_low"],
                                f"{m}_ratio_ci_high": r["ci_high"]})
                rows.append(row)
    cols = ["dataset", "hardware", "comparison", "model", "reference", "model_runs", "reference_runs", "metric_name"]
    cols += [f"{m}_ratio{s}" for m in RATIO_MEASURES for s in ("", "_ci_low", "_ci_high")]
    return pd.DataFrame(rows, columns=cols)


def ratio_display(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for r in table.to_dict("records"):
        row = {k: r[k] for k in ("dataset", "hardware", "comparison", "model", "reference")}
        row["runs (model / ref)"] = f"{r['model_runs']} / {r['reference_runs']}"
        for m, label in RATIO_MEASURES.items():
            row[f"{label} ratio"] = estimate(r[f"{m}_ratio"], lo=r[f"{m}_ratio_ci_low"], hi=r[f"{m}_ratio_ci_high"])
        out.append(row)
    return pd.DataFrame(out)


RATIO_NOTES = ("ratio = geometric mean of the model / geometric mean of the reference over ok seeds on the "
               "same data set and hardware, [95 % t interval on the log scale]. Time ratio < 1: the model is faster; "
               "metric ratio < 1: lower metric (better for mse, worse for accuracy).")


def reached(metric_name: str | None, value: float, target: float) -> bool:
    if metric_name == "accuracy":
        return value >= target
    return value <= target


def run_time_to_target(history: pd.DataFrame, metric_name: str | None, target: float) -> tuple[float, float]:
    """(seconds, epoch): cumulative training time up to and including the first epoch whose
    validation metric reaches ``target``; (NaN, NaN) if no epoch does."""
    h = history.sort_values("epoch")
    values = h["val_metric"].to_numpy(dtype=float)
    hit = values <= target if metric_name != "accuracy" else values >= target
    hit &= np.isfinite(values)
    if not hit.any():
        return float("nan"), float("nan")
    i = int(np.argmax(hit))
    return float(h["epoch_time_s"].to_numpy(dtype=float)[: i + 1].sum()), float(h["epoch"].iloc[i])


def time_to_target(runs: pd.DataFrame, history: pd.DataFrame, targets: dict[str, float]) -> pd.DataFrame:
    """Per dataset x model x hardware: how many ok runs reached the data set's target validation
    metric, and the statistics of their time to it. Runs that are not ok are counted, not timed."""
    keys = ["dataset", "model", "hardware", "seed"]
    by_run = {k: g for k, g in history.groupby(keys)} if len(history) else {}
    rows = []
    for (dataset, model, hardware), group in runs.groupby(["dataset", "model", "hardware"], sort=True):
        target = targets.get(dataset)
        names = group["metric_name"].dropna() if "metric_name" in group else pd.Series(dtype=object)
        metric_name = names.iloc[0] if len(names) else None
        ok = group[group["status"] == "ok"]
        times, epochs = [], []
        if target is not None:
            for seed in ok["seed"]:
                h = by_run.get((dataset, model, hardware, seed))
                if h is not None:
                    t, e = run_time_to_target(h, metric_name, target)
                    times.append(t)
                    epochs.append(e)
        n_reached = int(np.isfinite(times).sum()) if times else 0
        d, e = describe(times, positive=True), describe(epochs)
        if target is None:
            verdict = "no target"
        elif not len(ok):
            verdict = "no ok runs"
        elif n_reached == 0:
            verdict = "not reached"
        elif n_reached < len(ok):
            verdict = "reached by some"
        else:
            verdict = "reached"
        rows.append({
            "dataset": dataset, "model": model, "hardware": hardware, "metric_name": metric_name,
            "target": target, "n_runs": len(group), "n_ok": len(ok), "n_reached": n_reached,
            "status": verdict, "time_gmean": d["gmean"], "time_ci_low": d["ci_low"], "time_ci_high": d["ci_high"],
            "time_mean": d["mean"], "time_std": d["std"], "time_median": d["median"], "epoch_mean": e["mean"],
        })
    return pd.DataFrame(rows)


def target_display(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for r in table.to_dict("records"):
        if r["status"] in ("reached", "reached by some"):
            time = estimate(r["time_mean"], r["time_std"], r["time_ci_low"], r["time_ci_high"], r["n_reached"],
                            median=r["time_median"], gmean=r["time_gmean"])
            epoch = num(r["epoch_mean"], 3)
        else:
            time = epoch = r["status"]
        out.append({
            "dataset": r["dataset"], "model": r["model"], "hardware": r["hardware"],
            "target": "none" if pd.isna(r["target"]) else f"val {r['metric_name'] or 'metric'} "
                      f"{'≥' if r['metric_name'] == 'accuracy' else '≤'} {num(r['target'])}",
            "reached (of ok / of runs)": f"{r['n_reached']} of {r['n_ok']} / {r['n_runs']}",
            "time to target [s]": time, "epoch": epoch,
        })
    return pd.DataFrame(out)


TARGET_NOTES = ("time to target = training time summed over epochs up to and including the first epoch "
                "whose validation metric reaches the data set's target (config results.targets); statistics "
                "over the ok seeds that reached it: gm = geometric mean [95 % t interval on the log scale], "
                "mean ± std, median. not reached: no ok seed reached it.")


def build_ratios(summary: pd.DataFrame, model_types: dict[str, str]) -> tuple:
    """The ratios table (registry entry ``ratios``): raw, display and notes."""
    table = ratio_table(summary, model_types)
    return table, ratio_display(table), RATIO_NOTES


def build_time_to_target(runs: pd.DataFrame, history: pd.DataFrame, targets: dict[str, float]) -> tuple:
    """The time-to-target table (registry entry ``time_to_target``): raw, display and notes."""
    bad = {k: v for k, v in targets.items() if not isinstance(v, (int, float))}
    if bad:
        raise ValueError(f"--targets: each data set's target must be a number, got {bad}")
    table = time_to_target(runs, history, targets)
    return table, target_display(table), TARGET_NOTES
