"""Figures, each as PNG and PDF in one style: fixed width, one row of panels per data set.

Every figure is written even without data (a CPU-only study has no GPU telemetry and no DDP
widths): its panels then say "no data" and why, so the report shows the gap instead of hiding it.
Bars and points of positive quantities (times, memory, energy, speedups) are geometric means with
95 % t intervals on the log scale; those of metrics are means with 95 % t intervals
(docs/statistics.md); over ok seeds unless a caption says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from .summary import METRIC_BOUNDS, centre  # noqa: E402

STYLE = {"figure.dpi": 100, "savefig.dpi": 150, "axes.grid": True, "grid.alpha": 0.3, "font.size": 8,
         "legend.fontsize": 7, "axes.titlesize": 9}
WIDTH_IN, ROW_IN, DPI = 9.0, 3.2, 150


def size_px(rows: int) -> tuple[int, int]:
    """(width, height) in pixels of a PNG figure with ``rows`` rows of panels."""
    return round(WIDTH_IN * DPI), round(ROW_IN * max(rows, 1) * DPI)


def figure(rows: int, cols: int):
    """``rows`` x ``cols`` panels at the fixed width and row height of every figure (the evaluation stage's
    figures in robustness.py too), so that all figures share one size."""
    fig, axes = plt.subplots(max(rows, 1), cols, figsize=(WIDTH_IN, ROW_IN * max(rows, 1)), squeeze=False,
                             layout="constrained")
    return fig, axes


def save(fig, stem: str | Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf atomically (fixed size: no tight bounding box)."""
    out = []
    for ext in ("png", "pdf"):
        path = Path(f"{stem}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=DPI)
        out.append(path)
    plt.close(fig)
    return out


def no_data(ax, why: str) -> None:
    ax.text(0.5, 0.5, f"no data\n{why}", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def no_ok_runs(summary: pd.DataFrame) -> bool:
    """True where the summary has rows but none of them an ok run (every run diverged, failed or is
    missing): its figures then say so instead of "no data"."""
    return len(summary) > 0 and "n_ok" in summary and not (pd.to_numeric(summary["n_ok"], errors="coerce") > 0).any()


def why_empty(summary: pd.DataFrame, otherwise: str) -> str:
    """The text of an empty panel: no ok runs where that is the cause, ``otherwise`` else."""
    return "no ok runs in this study (see the summary table's runs column)" if no_ok_runs(summary) else otherwise


def positive(values) -> bool:
    """Whether a log axis can show ``values``: some are finite and above zero."""
    v = np.asarray(values, dtype=float)
    return bool((np.isfinite(v) & (v > 0)).any())


def _value(summary: pd.DataFrame, col: str) -> np.ndarray:
    """The centre of ``col``'s interval: geometric mean (positive quantities) or mean."""
    return summary[f"{col}_{centre(col)}"].to_numpy(float)


def _err(summary: pd.DataFrame, col: str) -> np.ndarray:
    """Asymmetric error bars from the CI columns (zero where there is no interval)."""
    mean = _value(summary, col)
    lo = np.nan_to_num(mean - summary[f"{col}_ci_low"].to_numpy(float))
    hi = np.nan_to_num(summary[f"{col}_ci_high"].to_numpy(float) - mean)
    return np.vstack([lo, hi])


def _has(summary: pd.DataFrame, col: str) -> bool:
    return f"{col}_mean" in summary and summary[f"{col}_mean"].notna().any()


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the axes, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _points(ax, sub: pd.DataFrame, col: str, ylabel: str, hardware_order: list[str], log: bool,
            bounds: tuple[float, float] | None = None) -> None:
    """One point per model and hardware, at the centre of ``col`` (see _value) with its 95 % interval
    (cut to ``bounds``); combinations the study did not run are left out, configurations whose runs
    all failed show their run status instead of a point."""
    models = sorted(sub["model"].unique())
    step = 0.8 / max(len(models), 1)
    x = np.arange(len(hardware_order))
    for i, model in enumerate(models):
        m = sub[sub["model"] == model].set_index("hardware").reindex(hardware_order)
        pos = x + (i - (len(models) - 1) / 2) * step
        centre_ = _value(m, col)
        lo, hi = m[f"{col}_ci_low"].to_numpy(float), m[f"{col}_ci_high"].to_numpy(float)
        if bounds is not None:
            lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
        have = np.isfinite(centre_)
        err = np.vstack([np.nan_to_num(centre_ - lo)[have], np.nan_to_num(hi - centre_)[have]])
        ax.errorbar(pos[have], centre_[have], yerr=np.clip(err, 0, None), fmt="o", capsize=3, ms=5,
                    color=f"C{i % 10}", label=model)
        for p, v, runs in zip(pos, centre_, m["runs"]):
            if not np.isfinite(v) and isinstance(runs, str):  # run, but no ok seed: say what happened
                ax.annotate(runs.replace(", ", "\n"), (p, 0.02), xycoords=("data", "axes fraction"), rotation=90,
                            ha="center", va="bottom", fontsize=6, color="C3")
    if log and positive(_value(sub, col)):  # a log axis over no positive value cannot be drawn
        ax.set_yscale("log")
    ax.set_xticks(x, hardware_order)
    ax.set_xlim(-0.5, len(hardware_order) - 0.5)
    ax.set_xlabel("hardware configuration")
    ax.set_ylabel(ylabel)
    legend_outside(ax, title="model")


def _hardware_of(summary: pd.DataFrame, ds: str, order: list[str]) -> list[str]:
    """The hardware entries a data set was run on, in study order (combinations not run are left out)."""
    run = set(summary.loc[summary["dataset"] == ds, "hardware"])
    return [h for h in order if h in run]


def train_time(summary: pd.DataFrame, stem: str | Path, datasets: list[str]) -> list[Path]:
    """Training time by model across hardware, one panel per data set, log scale (geometric means,
    error bars: 95 % log-scale t intervals)."""
    hw = list(dict.fromkeys(summary["hardware"]))
    with plt.rc_context(STYLE):
        fig, axes = figure(len(datasets), 1)
        for ax, ds in zip(axes[:, 0], datasets):
            sub = summary[summary["dataset"] == ds]
            if not len(sub) or not _has(sub, "train_time_s"):
                no_data(ax, f"{ds}: no ok runs")
                continue
            _points(ax, sub, "train_time_s", "training time [s] (log scale)", _hardware_of(summary, ds, hw), log=True)
            ax.set_title(f"{ds}: training time (sum of epoch times), geometric mean and 95 % CI over seeds")
        return save(fig, stem)


def metric(summary: pd.DataFrame, stem: str | Path, datasets: list[str]) -> list[Path]:
    hw = list(dict.fromkeys(summary["hardware"]))
    with plt.rc_context(STYLE):
        fig, axes = figure(len(datasets), 1)
        for ax, ds in zip(axes[:, 0], datasets):
            sub = summary[summary["dataset"] == ds]
            if not len(sub) or not _has(sub, "test_metric"):
                no_data(ax, f"{ds}: no ok runs")
                continue
            name = sub["metric_name"].dropna().iloc[0]
            _points(ax, sub, "test_metric", f"test {name}", _hardware_of(summary, ds, hw), log=False,
                    bounds=METRIC_BOUNDS.get(name))
            ax.set_title(f"{ds}: test {name} ({'lower' if name == 'mse' else 'higher'} is better), mean and 95 % CI")
        return save(fig, stem)


def scaling(table: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Speedup and efficiency against DDP width with the ideal (linear) line and the knee threshold."""
    with plt.rc_context(STYLE):
        fig, axes = figure(1, 2)
        ax_s, ax_e = axes[0]
        data = table.dropna(subset=["speedup"]) if len(table) else table
        if not len(data):
            for ax in (ax_s, ax_e):
                no_data(ax, "the study has no DDP widths with a baseline and ok runs")
            return save(fig, stem)
        widths = sorted(data["n"].unique())
        for key, g in data.groupby(["dataset", "model", "device", "scaling"]):
            g = g.sort_values("n")
            label = "/".join(key)
            err = [np.nan_to_num(g["speedup"] - g["speedup_ci_low"]), np.nan_to_num(g["speedup_ci_high"] - g["speedup"])]
            line = ax_s.errorbar(g["n"], g["speedup"], yerr=err, marker="o", capsize=2, label=label)
            err = [np.nan_to_num(g["efficiency"] - g["efficiency_ci_low"]),
                   np.nan_to_num(g["efficiency_ci_high"] - g["efficiency"])]
            ax_e.errorbar(g["n"], g["efficiency"], yerr=err, marker="o", capsize=2, color=line[0].get_color())
        ax_s.plot(widths, widths, "k--", lw=1, label="ideal")
        ax_e.axhline(1.0, color="k", ls="--", lw=1, label="ideal")
        thr = float(data["knee_threshold"].iloc[0])
        ax_e.axhline(thr, color="C3", ls=":", lw=1, label=f"knee threshold {thr:g}")
        for ax in (ax_s, ax_e):
            ax.set_xlabel("number of GPUs / DDP processes n")
            ax.set_xticks(widths)
        # ratios on a log axis: their intervals are symmetric there, as they are computed
        for ax in (ax_s, ax_e):
            ax.set_yscale("log", base=2)
        ax_s.set_ylabel("speedup T(1)/T(n) (log scale)")
        ax_e.set_ylabel("parallel efficiency speedup/n (log scale)")
        ax_s.set_title("Speedup of geometric mean times (95 % CI)")
        ax_e.set_title("Efficiency (95 % CI)")
        handles, labels = ax_s.get_legend_handles_labels()
        knee_line = [(h, lab) for h, lab in zip(*ax_e.get_legend_handles_labels()) if lab.startswith("knee")]
        fig.legend(handles + [h for h, _ in knee_line], labels + [lab for _, lab in knee_line],
                   loc="outside right upper")
        return save(fig, stem)


def _curves(g: pd.DataFrame) -> pd.DataFrame:
    """Per epoch: mean and std over seeds of the losses, and the mean cumulative training time."""
    g = g.sort_values(["seed", "epoch"]).assign(
        elapsed_s=lambda d: d.groupby("seed")["epoch_time_s"].cumsum() if "epoch_time_s" in d else np.nan)
    return g.groupby("epoch").agg(train_mean=("train_loss", "mean"), train_std=("train_loss", "std"),
                                  val_mean=("val_loss", "mean"), val_std=("val_loss", "std"),
                                  elapsed_s=("elapsed_s", "mean"), seeds=("seed", "nunique"))


SAME_RTOL = 1e-4  # loss curves closer than this (relative, every epoch) are drawn as one: "= the other"


def ok_history(history: pd.DataFrame) -> pd.DataFrame:
    """The epochs of ok runs (history tables written before they carried a status: every epoch),
    with finite losses: a diverged run's curve is never averaged with an ok run's."""
    if "status" in history:
        history = history[history["status"] == "ok"]
    if not len(history):
        return history
    finite = np.isfinite(history[["train_loss", "val_loss"]].to_numpy(float)).all(axis=1)
    return history[finite]


def loss_curves(history: pd.DataFrame, dataset: str, stem: str | Path) -> list[Path]:
    """Training and validation loss, mean over seeds with a ± one std band, per model x hardware:
    against the epoch (top) and against the mean cumulative training time (bottom, log scale: the
    question is which converges fastest in time). Curves identical to an earlier one (the same
    losses at every epoch, e.g. one model on one and on two CPU processes) are drawn dashed and
    named after it. Ok runs only (ok_history); a data set without any gets panels that say so."""
    from matplotlib.ticker import MaxNLocator, NullFormatter

    sub = history[history["dataset"] == dataset] if len(history) else history
    ran = len(sub)
    sub = ok_history(sub)
    with plt.rc_context(STYLE):
        fig, axes = figure(2, 2)
        if not len(sub) or not positive(sub[["train_loss", "val_loss"]]):
            why = f"{dataset}: no ok runs (every run diverged, failed or is missing)" if ran else \
                f"{dataset}: no run histories"
            for ax in axes.ravel():
                no_data(ax, why)
            return save(fig, stem)
        seen = []  # (losses, label) of the curves drawn
        for i, ((model, hw), g) in enumerate(sub.groupby(["model", "hardware"])):
            c = _curves(g)
            label = f"{model} / {hw} (n={int(c['seeds'].max())})"
            losses = c[["train_mean", "val_mean"]].to_numpy(float)
            same = next((lab for prev, lab in seen if prev.shape == losses.shape
                         and np.allclose(prev, losses, rtol=SAME_RTOL, atol=0)), None)
            seen.append((losses, label))
            style = {"color": f"C{i % 10}", "ls": "--" if same else "-", "marker": "o", "ms": 3}
            if same:
                label += f" = {same.split(' (')[0]}"
            for row, x in ((0, c.index.to_numpy(float)), (1, c["elapsed_s"].to_numpy(float))):
                for col, name in enumerate(("train", "val")):
                    ax = axes[row, col]
                    mean, std = c[f"{name}_mean"], c[f"{name}_std"].fillna(0)
                    ax.plot(x, mean, label=label if (row, col) == (0, 1) else None, **style)
                    if not same:
                        ax.fill_between(x, (mean - std).clip(lower=1e-12), mean + std, color=style["color"], alpha=0.15)
        for col, title in enumerate(["training loss", "validation loss"]):
            top, bottom = axes[0, col], axes[1, col]
            top.set_xlabel("epoch")
            top.xaxis.set_major_locator(MaxNLocator(integer=True))
            top.set_title(f"{title} per epoch")
            bottom.set_xlabel("cumulative training time [s] (mean over seeds, log scale)")
            bottom.set_xscale("log")
            bottom.xaxis.set_minor_formatter(NullFormatter())
            bottom.set_title(f"{title} against training time")
            for ax in (top, bottom):
                ax.set_yscale("log")
                ax.set_ylabel("loss (log scale)")
        fig.suptitle(f"{dataset}: losses, mean ± std over ok seeds (dashed: the same curve as the one named)", x=0.02, ha="left")
        fig.legend(*axes[0, 1].get_legend_handles_labels(), loc="outside right upper", title="model / hardware")
        return save(fig, stem)


def pareto(summary: pd.DataFrame, stem: str | Path, datasets: list[str]) -> list[Path]:
    """Test metric against training time (log scale) per configuration; the Pareto front joins the
    configurations that no other beats in both time and metric."""
    with plt.rc_context(STYLE):
        fig, axes = figure(len(datasets), 1)
        for ax, ds in zip(axes[:, 0], datasets):
            time = f"train_time_s_{centre('train_time_s')}"
            sub = summary[summary["dataset"] == ds].dropna(subset=[time, "test_metric_mean"])
            if not len(sub):
                no_data(ax, f"{ds}: no ok runs")
                continue
            name = sub["metric_name"].dropna().iloc[0]
            higher = name == "accuracy"
            lo_m, hi_m = METRIC_BOUNDS.get(name, (-np.inf, np.inf))
            markers = dict(zip(sorted(summary["hardware"].unique()), "osD^v<>ph*"))
            for i, model in enumerate(sorted(sub["model"].unique())):
                for r in sub[sub["model"] == model].to_dict("records"):
                    one = pd.DataFrame([r])
                    m = r["test_metric_mean"]
                    yerr = [[max(m - max(r["test_metric_ci_low"], lo_m), 0) if pd.notna(r["test_metric_ci_low"]) else 0],
                            [max(min(r["test_metric_ci_high"], hi_m) - m, 0) if pd.notna(r["test_metric_ci_high"]) else 0]]
                    ax.errorbar(r[time], m, xerr=_err(one, "train_time_s"), yerr=yerr,
                                marker=markers.get(r["hardware"], "o"), color=f"C{i % 10}", capsize=2, ls="none",
                                label=f"{model} / {r['hardware']}")
            pts = sub.sort_values(time)[[time, "test_metric_mean"]].to_numpy()
            front, best = [], None
            for t, m in pts:
                if best is None or (m > best if higher else m < best):
                    front.append((t, m))
                    best = m
            ax.plot(*zip(*front), "k:", lw=1, label="Pareto front")
            ax.set_xscale("log")
            ax.set_xlabel("training time [s] (log scale)")
            ax.set_ylabel(f"test {name}")
            ax.set_title(f"{ds}: test {name} vs training time ({'up' if higher else 'down'}-left is better)")
            legend_outside(ax, ncols=1 if len(sub) <= 12 else 2)
        return save(fig, stem)


def _config_bars(ax, summary: pd.DataFrame, col: str, xlabel: str, why: str, labels: bool = True) -> bool:
    """Horizontal bars per configuration with data (one label a line, no collisions); False and a
    "no data" panel when no configuration has any."""
    value = f"{col}_{centre(col)}"
    sub = summary.dropna(subset=[value]) if value in summary else summary.iloc[:0]
    if not len(sub):
        no_data(ax, why)
        return False
    y = np.arange(len(sub))
    ax.barh(y, sub[value], xerr=_err(sub, col), capsize=2, color=[f"C{i % 10}" for i in range(len(sub))])
    ax.set_yticks(y, [f"{d} / {m} / {h}" for d, m, h in zip(sub["dataset"], sub["model"], sub["hardware"])]
                  if labels else [""] * len(sub), fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    return True


GPU_PANELS = [("telemetry.gpu.util_mean_pct", "mean GPU utilisation [%]", "GPU utilisation"),
              ("telemetry.gpu.mem_used_peak_mb", "peak GPU memory [MB]", "GPU memory")]


def gpu(summary: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Mean GPU utilisation and peak GPU memory (where the study has GPU telemetry) and peak host
    memory per configuration; a study without GPU telemetry gets the host panel alone."""
    host = "telemetry.host.rss_peak_mb" if _has(summary, "telemetry.host.rss_peak_mb") else "peak_host_rss_mb"
    panels = [p for p in GPU_PANELS if _has(summary, p[0])] + [(host, "peak host memory [MB]", "host memory (RSS)")]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH_IN, ROW_IN), squeeze=False, layout="constrained",
                                 sharey=True)
        for i, (ax, (col, label, title)) in enumerate(zip(axes[0], panels)):
            _config_bars(ax, summary, col, label, why_empty(summary, "no data"), labels=i == 0)
            ax.set_title(title + ("" if len(panels) > 1 else " (no GPU telemetry in this study)"))
        return save(fig, stem)


def energy(summary: pd.DataFrame, stem: str | Path) -> list[Path]:
    """GPU energy per epoch per configuration (NVML energy counter)."""
    with plt.rc_context(STYLE):
        fig, axes = figure(1, 1)
        ax = axes[0, 0]
        _config_bars(ax, summary, "telemetry.gpu.energy_per_epoch_j", "GPU energy per epoch [J]",
                     why_empty(summary, "no GPU energy measurements in this study: only runs on cuda hardware "
                                        "entries\nwith an NVML energy counter fill this figure"))
        ax.set_title("GPU energy per epoch, geometric mean and 95 % CI over seeds")
        return save(fig, stem)


def impl_speedup(summary: pd.DataFrame, stem: str | Path, model_types: dict) -> list[Path]:
    """Implementation speedup (ncps train time / fast train time) per model, data set and hardware,
    log scale with the 1x line (no speedup)."""
    from .compare import ratio_table

    table = ratio_table(summary, model_types) if len(summary) else pd.DataFrame()
    pairs = table[table["comparison"] == "fast vs ncps"] if len(table) else table
    pairs = pairs.dropna(subset=["train_time_s_ratio"]) if len(pairs) else pairs
    with plt.rc_context(STYLE):
        fig, axes = figure(1, 1)
        ax = axes[0, 0]
        if not len(pairs):
            no_data(ax, "no fast-implementation model with an ncps counterpart in this study")
        else:
            speedup = 1.0 / pairs["train_time_s_ratio"].to_numpy(float)
            # the ratio's interval inverts: 1/high .. 1/low (a missing bound: no bar on that side)
            low = 1.0 / pairs["train_time_s_ratio_ci_high"].to_numpy(float)
            high = 1.0 / pairs["train_time_s_ratio_ci_low"].to_numpy(float)
            err = np.vstack([np.nan_to_num(speedup - low), np.nan_to_num(high - speedup)])
            labels = [f"{d}\n{m} / {r}\n{h}" for d, m, r, h in
                      zip(pairs["dataset"], pairs["model"], pairs["reference"], pairs["hardware"])]
            x = np.arange(len(pairs))
            for i in range(len(pairs)):
                ax.errorbar(x[i], speedup[i], yerr=np.clip(err[:, i:i + 1], 0, None), fmt="o", capsize=4, ms=6,
                            color=f"C{i % 10}")
                ax.annotate(f"{speedup[i]:.3g}x", (x[i], speedup[i]), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize=7)
            ax.axhline(1.0, color="k", ls="--", lw=1, label="1x: no speedup")
            ax.set_yscale("log")
            ax.set_xticks(x, labels, fontsize=6)
            ax.set_xlim(-0.5, len(pairs) - 0.5)
            ax.set_ylabel("speedup (ncps time / fast time, log scale)")
            legend_outside(ax)
        ax.set_title("Implementation speedup of training time: ratio of geometric means, 95 % log-scale t interval")
        return save(fig, stem)
