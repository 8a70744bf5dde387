"""Figures, each as PNG and PDF in one style: fixed width, one row of panels per data set.

Every figure is written even without data (a CPU-only study has no GPU telemetry and no DDP
widths): its panels then say "no data" and why, so the report shows the gap instead of hiding it.
Bars and points of positive quantities (times, memory, energy, speedups) are geometric means with
95 % t intervals on the log scale; those of metrics are means with 95 % t intervals (README,
"Results"); over ok seeds unless a caption says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from .summary import centre  # noqa: E402

STYLE = {"figure.dpi": 100, "savefig.dpi": 150, "axes.grid": True, "grid.alpha": 0.3, "font.size": 8,
         "legend.fontsize": 7, "axes.titlesize": 9}
WIDTH_IN, ROW_IN, DPI = 9.0, 3.2, 150


def size_px(rows: int) -> tuple[int, int]:
    """(width, height) in pixels of a PNG figure with ``rows`` rows of panels."""
    return round(WIDTH_IN * DPI), round(ROW_IN * max(rows, 1) * DPI)


def _figure(rows: int, cols: int):
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


def _bars(ax, sub: pd.DataFrame, col: str, ylabel: str, hardware_order: list[str]) -> None:
    """Bars: x = hardware, one bar per model, height and error bars = centre and 95 % CI (see
    _value); configurations without ok runs are marked with their run status instead of a bar."""
    models = sorted(sub["model"].unique())
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(hardware_order))
    for i, model in enumerate(models):
        m = sub[sub["model"] == model].set_index("hardware").reindex(hardware_order)
        pos = x + (i - (len(models) - 1) / 2) * width
        mean = _value(m, col)
        err = _err(m, col)
        ax.bar(pos, np.nan_to_num(mean), width, yerr=err, capsize=2, label=model)
        for p, v, runs in zip(pos, mean, m["runs"]):
            if np.isnan(v) and isinstance(runs, str):
                ax.text(p, 0, runs.replace(", ", "\n"), rotation=90, ha="center", va="bottom", fontsize=6, color="C3")
    ax.set_xticks(x, hardware_order)
    ax.set_xlabel("hardware configuration")
    ax.set_ylabel(ylabel)
    ax.legend(title="model", ncols=2)


def train_time(summary: pd.DataFrame, stem: str | Path, datasets: list[str]) -> list[Path]:
    """Training time by model across hardware, one panel per data set (geometric means, error bars:
    95 % log-scale t intervals)."""
    hw = list(dict.fromkeys(summary["hardware"]))
    with plt.rc_context(STYLE):
        fig, axes = _figure(len(datasets), 1)
        for ax, ds in zip(axes[:, 0], datasets):
            sub = summary[summary["dataset"] == ds]
            if not len(sub) or not _has(sub, "train_time_s"):
                no_data(ax, f"{ds}: no ok runs")
                continue
            _bars(ax, sub, "train_time_s", "training time [s]", hw)
            ax.set_title(f"{ds}: training time (sum of epoch times), geometric mean and 95 % CI over seeds")
        return save(fig, stem)


def metric(summary: pd.DataFrame, stem: str | Path, datasets: list[str]) -> list[Path]:
    hw = list(dict.fromkeys(summary["hardware"]))
    with plt.rc_context(STYLE):
        fig, axes = _figure(len(datasets), 1)
        for ax, ds in zip(axes[:, 0], datasets):
            sub = summary[summary["dataset"] == ds]
            if not len(sub) or not _has(sub, "test_metric"):
                no_data(ax, f"{ds}: no ok runs")
                continue
            name = sub["metric_name"].dropna().iloc[0]
            _bars(ax, sub, "test_metric", f"test {name}", hw)
            ax.set_title(f"{ds}: test {name} ({'lower' if name == 'mse' else 'higher'} is better), mean and 95 % CI")
        return save(fig, stem)


def scaling(table: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Speedup and efficiency against DDP width with the ideal (linear) line and the knee threshold."""
    with plt.rc_context(STYLE):
        fig, axes = _figure(1, 2)
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
        ax_s.legend()
        ax_e.legend()
        return save(fig, stem)


def loss_curves(history: pd.DataFrame, dataset: str, stem: str | Path) -> list[Path]:
    """Training and validation loss per epoch, mean over seeds with a ± one std band, per model x hardware."""
    sub = history[history["dataset"] == dataset] if len(history) else history
    with plt.rc_context(STYLE):
        fig, axes = _figure(1, 2)
        axes = axes[0]
        if not len(sub):
            for ax in axes:
                no_data(ax, f"{dataset}: no run histories")
            return save(fig, stem)
        for (model, hw), g in sub.groupby(["model", "hardware"]):
            for ax, col in zip(axes, ["train_loss", "val_loss"]):
                stats = g.groupby("epoch")[col].agg(["mean", "std", "count"])
                std = stats["std"].fillna(0)
                line, = ax.plot(stats.index, stats["mean"], label=f"{model} / {hw} (n={int(stats['count'].max())})")
                ax.fill_between(stats.index, (stats["mean"] - std).clip(lower=1e-12), stats["mean"] + std,
                                color=line.get_color(), alpha=0.2)
        for ax, title in zip(axes, ["training loss", "validation loss"]):
            ax.set_xlabel("epoch")
            ax.set_title(f"{dataset}: {title} (mean ± std over seeds)")
            ax.set_yscale("log")
            ax.set_ylabel("loss (log scale)")
        axes[1].legend()
        return save(fig, stem)


def pareto(summary: pd.DataFrame, stem: str | Path, datasets: list[str]) -> list[Path]:
    """Test metric against training time per configuration; the Pareto front joins the
    configurations that no other beats in both time and metric."""
    with plt.rc_context(STYLE):
        fig, axes = _figure(len(datasets), 1)
        for ax, ds in zip(axes[:, 0], datasets):
            time = f"train_time_s_{centre('train_time_s')}"
            sub = summary[summary["dataset"] == ds].dropna(subset=[time, "test_metric_mean"])
            if not len(sub):
                no_data(ax, f"{ds}: no ok runs")
                continue
            name = sub["metric_name"].dropna().iloc[0]
            higher = name == "accuracy"
            markers = dict(zip(sorted(summary["hardware"].unique()), "osD^v<>ph*"))
            for i, model in enumerate(sorted(sub["model"].unique())):
                for r in sub[sub["model"] == model].to_dict("records"):
                    one = pd.DataFrame([r])
                    ax.errorbar(r[time], r["test_metric_mean"], xerr=_err(one, "train_time_s"),
                                yerr=_err(one, "test_metric"), marker=markers.get(r["hardware"], "o"),
                                color=f"C{i}", capsize=2, ls="none", label=f"{model} / {r['hardware']}")
            pts = sub.sort_values(time)[[time, "test_metric_mean"]].to_numpy()
            front, best = [], None
            for t, m in pts:
                if best is None or (m > best if higher else m < best):
                    front.append((t, m))
                    best = m
            ax.plot(*zip(*front), "k:", lw=1, label="Pareto front")
            ax.set_xlabel("training time [s]")
            ax.set_ylabel(f"test {name}")
            ax.set_title(f"{ds}: test {name} vs training time ({'up' if higher else 'down'}-left is better)")
            ax.legend(ncols=3)
        return save(fig, stem)


def _config_bars(ax, summary: pd.DataFrame, col: str, ylabel: str, why: str) -> None:
    value = f"{col}_{centre(col)}"
    sub = summary.dropna(subset=[value]) if value in summary else summary.iloc[:0]
    if not len(sub):
        no_data(ax, why)
        return
    labels = [f"{d}\n{m}\n{h}" for d, m, h in zip(sub["dataset"], sub["model"], sub["hardware"])]
    x = np.arange(len(sub))
    ax.bar(x, sub[value], yerr=_err(sub, col), capsize=2, color=[f"C{i % 10}" for i in range(len(sub))])
    ax.set_xticks(x, labels, fontsize=6)
    ax.set_ylabel(ylabel)


def gpu(summary: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Mean GPU utilisation, peak GPU memory and peak host memory per configuration."""
    with plt.rc_context(STYLE):
        fig, axes = _figure(1, 3)
        a, b, c = axes[0]
        _config_bars(a, summary, "telemetry.gpu.util_mean_pct", "mean GPU utilisation [%]", "no GPU telemetry")
        _config_bars(b, summary, "telemetry.gpu.mem_used_peak_mb", "peak GPU memory [MB]", "no GPU telemetry")
        host = "telemetry.host.rss_peak_mb" if _has(summary, "telemetry.host.rss_peak_mb") else "peak_host_rss_mb"
        _config_bars(c, summary, host, "peak host memory [MB]", "no host memory data")
        a.set_title("GPU utilisation")
        b.set_title("GPU memory")
        c.set_title("host memory (RSS)")
        return save(fig, stem)


def energy(summary: pd.DataFrame, stem: str | Path) -> list[Path]:
    """GPU energy per epoch per configuration (NVML energy counter)."""
    with plt.rc_context(STYLE):
        fig, axes = _figure(1, 1)
        ax = axes[0, 0]
        _config_bars(ax, summary, "telemetry.gpu.energy_per_epoch_j", "GPU energy per epoch [J]",
                     "no GPU energy measurements (CPU-only study or no NVML counter)")
        ax.set_title("GPU energy per epoch, geometric mean and 95 % CI over seeds")
        return save(fig, stem)




def impl_speedup(summary: pd.DataFrame, stem: str | Path, model_types: dict) -> list[Path]:
    """Implementation speedup (ncps train time / fast train time) per model, data set and hardware."""
    from .compare import ratio_table

    table = ratio_table(summary, model_types) if len(summary) else pd.DataFrame()
    pairs = table[table["comparison"] == "fast vs ncps"] if len(table) else table
    pairs = pairs.dropna(subset=["train_time_s_ratio"]) if len(pairs) else pairs
    with plt.rc_context(STYLE):
        fig, axes = _figure(1, 1)
        ax = axes[0, 0]
        if not len(pairs):
            no_data(ax, "no fast-implementation model with an ncps counterpart in this study")
        else:
            speedup = 1.0 / pairs["train_time_s_ratio"].to_numpy(float)
            # the ratio's interval inverts: 1/high .. 1/low
            lo = np.nan_to_num(speedup - 1.0 / pairs["train_time_s_ratio_ci_high"].to_numpy(float))
            hi = np.nan_to_num(1.0 / pairs["train_time_s_ratio_ci_low"].to_numpy(float) - speedup)
            # a ratio interval reaching 0 or below has no finite upper bound for the speedup
            unbounded = ~(pairs["train_time_s_ratio_ci_low"].to_numpy(float) > 0)
            hi[unbounded] = 0.0
            labels = [f"{d}\n{m} / {r}\n{h}" + ("\n(upper bound: none)" if u else "") for d, m, r, h, u in
                      zip(pairs["dataset"], pairs["model"], pairs["reference"], pairs["hardware"], unbounded)]
            x = np.arange(len(pairs))
            ax.bar(x, speedup, yerr=np.vstack([np.clip(lo, 0, None), np.clip(hi, 0, None)]), capsize=2,
                   color=[f"C{i % 10}" for i in range(len(pairs))])
            ax.axhline(1.0, color="0.3", lw=0.8)
            ax.set_xticks(x, labels, fontsize=6)
            ax.set_ylabel("speedup (ncps time / fast time)")
        ax.set_title("Implementation speedup of training time: ratio of geometric means, 95 % log-scale t interval")
        return save(fig, stem)
