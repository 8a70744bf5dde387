"""Figures: training time by model, test metric by model, loss curves per data set."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402

STYLE = {"figure.dpi": 100, "savefig.dpi": 150, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9}


def save(fig, stem: str | Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf atomically."""
    out = []
    for ext in ("png", "pdf"):
        path = Path(f"{stem}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight")
        out.append(path)
    plt.close(fig)
    return out


def _grouped_bars(ax, summary: pd.DataFrame, measure: str, ylabel: str) -> None:
    models = sorted(summary["model"].unique())
    cats = sorted({(d, h) for d, h in zip(summary["dataset"], summary["hardware"])})
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(cats))
    for i, model in enumerate(models):
        sub = summary[summary["model"] == model].set_index(["dataset", "hardware"])
        means = [sub[f"{measure}_mean"].get(c, np.nan) for c in cats]
        stds = [sub[f"{measure}_std"].get(c, np.nan) for c in cats]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, means, width, yerr=np.nan_to_num(stds), capsize=2, label=model)
    ax.set_xticks(x, [f"{d}\n{h}" for d, h in cats])
    ax.set_ylabel(ylabel)
    ax.legend(title="model", fontsize=8)


def train_time(summary: pd.DataFrame, stem: str | Path) -> list[Path]:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(4, 1.6 * summary[["dataset", "hardware"]].drop_duplicates().shape[0] + 2), 3.2))
        _grouped_bars(ax, summary, "train_time_s", "training time [s]")
        ax.set_title("Training time by model (mean ± std over seeds)")
        return save(fig, stem)


def metric(summary: pd.DataFrame, stem: str | Path) -> list[Path]:
    datasets = sorted(summary["dataset"].unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets) + 0.5, 3.2), squeeze=False)
        for ax, ds in zip(axes[0], datasets):
            sub = summary[summary["dataset"] == ds]
            name = sub["metric_name"].iloc[0]
            _grouped_bars(ax, sub, "test_metric", f"test {name}")
            ax.set_title(f"{ds}: test {name} ({'lower' if name == 'mse' else 'higher'} is better)")
        return save(fig, stem)


def loss_curves(history: pd.DataFrame, dataset: str, stem: str | Path) -> list[Path]:
    """Training and validation loss per epoch, mean over seeds with a min-max band, per model x hardware."""
    sub = history[history["dataset"] == dataset]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
        for (model, hw), g in sub.groupby(["model", "hardware"]):
            for ax, col in zip(axes, ["train_loss", "val_loss"]):
                stats = g.groupby("epoch")[col].agg(["mean", "min", "max"])
                line, = ax.plot(stats.index, stats["mean"], label=f"{model} / {hw}")
                ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.2)
        for ax, title in zip(axes, ["training loss", "validation loss"]):
            ax.set_xlabel("epoch")
            ax.set_title(f"{dataset}: {title}")
            ax.set_yscale("log")
        axes[0].set_ylabel("loss")
        axes[1].legend(fontsize=7)
        return save(fig, stem)
