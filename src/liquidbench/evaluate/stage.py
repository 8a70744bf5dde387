"""One run of the evaluation stage: its kept weights (liquidbench.train.weights) tested under
perturbations, never retrained.

Each perturbation family is one module with ``rows(model, ctx, grid) -> [row]`` and one entry in
``FAMILIES``; its grid comes from the study's ``evaluation.families`` (settings.py). Every run also
gets its clean test metric (family ``clean``) and its memory figures (memory.py). ``shift`` and
``horizon`` need the sine task's extra sets (``liquidbench prepare-eval``); on other data sets they
are skipped, and the output says so. ``horizon`` runs on forecasting sine data sets only
(``settings.horizon_applies``); on the others it is skipped with its reason, and on a data set that
``horizon.datasets`` names but cannot take it, it is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import load_split, read_meta
from ..data import sine
from ..io import read_json, sha256_file, write_json
from ..train import weights
from ..train.loop import params_sha256
from . import drop, horizon, noise, shift
from .identity import check_run, check_weights_hash, clean_agrees
from .common import Split, metric
from .memory import measure
from .settings import Evaluation, horizon_applies

FAMILIES = {
    "noise": noise.rows,
    "drop": drop.rows,
    "shift": shift.rows,
    "horizon": horizon.rows,
}
NEEDS_EXTRA = ("shift", "horizon")  # families scored on the sine task's prepared evaluation sets


@dataclass
class Context:
    """What a family works with: the test split, the training inputs, the task and settings."""

    test: Split
    train_x: torch.Tensor
    train_y: torch.Tensor
    train_t: torch.Tensor | None
    task: str
    seq_len: int
    seed: int
    batch_size: int
    train_batch: int
    extra: dict = field(default_factory=dict)
    clean: float | None = None  # the clean test metric, which level 0 of noise and drop reuses

    def extra_sets(self, family: str) -> dict[float, Split]:
        return self.extra[family]


def load_extra(path: Path) -> dict[str, dict[float, Split]]:
    """The sine task's evaluation sets: {"shift": {level: Split}, "horizon": {0.0: Split}}."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}

    def split(prefix):
        return Split.of({k: arrays[f"{prefix}_{k}"] for k in ("x", "y", "t") if f"{prefix}_{k}" in arrays})

    out = {"shift": {float(level): split(f"shift{i}") for i, level in enumerate(arrays["shift_levels"])}}
    if "horizon_x" in arrays:
        out["horizon"] = {0.0: split("horizon")}
    return out


def evaluate_run(run_dir: str | Path, data_dir: str | Path, settings: dict, extra: str | Path | None = None) -> dict:
    """Every configured family on one run (``settings``: the study's evaluation section); returns what
    ``liquidbench evaluate`` writes."""
    settings = Evaluation.from_settings(settings)
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    kept = weights.load(run_dir)  # a folder without weights fails here, naming it
    metrics = read_json(run_dir / "metrics.json")
    meta = read_meta(data_dir)
    b = kept["build"]
    # folder = metrics.json = weights.pt, or an error naming the file that is another run's
    names = {**check_run(run_dir, metrics, b), "metric_name": meta["metric"], "settings": settings.as_dict(),
             "test_metric": metrics.get("test_metric"), "metrics_sha256": sha256_file(run_dir / "metrics.json")}
    target = sine.target(meta.get("params") or {}) if meta.get("dataset") == "sine" else None
    horizon_grid = settings.families.get("horizon")
    # before any work: a data set that horizon.datasets names but that cannot take it is an error
    closed_loop = horizon_grid is not None and horizon_applies(horizon_grid, b["dataset"], target)
    if metrics.get("status") != "ok":
        # a diverged or failed run is not evaluated, and the tables say so
        return {**names, "status": metrics.get("status") or "diverged", "rows": [], "skipped": {}, "memory": {}}
    model = weights.rebuild(kept)
    check_weights_hash(run_dir, metrics, params_sha256(model))
    torch.manual_seed(settings.seed)
    train = load_split(data_dir, "train")
    ctx = Context(
        test=Split.of(load_split(data_dir, "test")), train_x=torch.from_numpy(train["x"]),
        train_y=torch.from_numpy(train["y"]), train_t=torch.from_numpy(train["t"]) if "t" in train else None,
        task=meta["task"], seq_len=int(meta["seq_len"]), seed=settings.seed, batch_size=settings.batch_size,
        train_batch=int(metrics.get("batch_size_per_process") or 32),
        extra=load_extra(Path(extra)) if extra else {},
    )
    ctx.clean = metric(model, ctx.test, ctx.task, ctx.batch_size)
    tf32 = bool((metrics.get("hardware_params") or {}).get("tf32"))
    if not clean_agrees(ctx.clean, metrics.get("test_metric"), tf32):
        raise ValueError(f"{run_dir}: the kept weights give test {meta['metric']} {ctx.clean:.6g}, metrics.json "
                         f"records {metrics.get('test_metric')}: weights.pt and metrics.json are not of one "
                         "training; train this run again")
    rows = [{"family": "clean", "level": 0.0, "metric": ctx.clean, "n": len(ctx.test.x)}]
    skipped = {}
    for name, grid in settings.families.items():
        if name == "horizon" and not closed_loop:
            skipped[name] = ("not among evaluation.families.horizon.datasets" if grid.datasets is not None else
                             f"closed loop: needs a sine data set whose target is the next input (params: "
                             f"{{target: {sine.NEXT}}}); data set {b['dataset']} has "
                             + (f"target {target}" if target else "another kind"))
            continue
        if name in NEEDS_EXTRA and name not in ctx.extra:
            skipped[name] = f"needs the sine task's evaluation sets; data set {kept['build']['dataset']} has none"
            continue
        rows += FAMILIES[name](model, ctx, grid)
    return {**names, "status": "ok", "rows": rows, "skipped": skipped, "memory": measure(model, ctx)}


def write(result: dict, out: str | Path) -> None:
    write_json(out, result)
