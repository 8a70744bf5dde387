"""Whose weights, whose metrics: the evaluation stage checks a run's identity where it lies.

A run is named by its folder (``results/runs/{dataset}/{model}/{hardware}/seed{seed}``); its
``metrics.json`` and ``weights.pt`` each record the same names. A weights file copied into another
run's folder, a state dict of another architecture, a metrics.json of another run, or an
``evaluation.json`` whose clean metric no longer is its run's ``test_metric`` would otherwise be
counted as that run: a model's seed twice and another's not at all. Every check here fails with
one line naming the file and what it should be, and what to do.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..io import read_json, sha256_file

# a run's names, in the order of its folders (results.metrics_schema.KEYS)
KEYS = ("dataset", "model", "hardware", "seed")
_SEED = re.compile(r"^seed(\d+)$")
# how close the clean test metric the evaluation recomputes must be to the run's own test_metric:
# the same weights and data on the same kind of device differ by float32 summation order only;
# a run trained with TF32 matmuls (hardware tf32) is evaluated without them
RTOL, RTOL_TF32 = 1e-3, 2e-2


def folder_identity(run_dir: str | Path) -> dict | None:
    """{dataset, model, hardware, seed} from a run folder's last four parts, or None where the folder
    is not laid out as the workflow's (a run trained by hand into any folder)."""
    parts = Path(run_dir).resolve().parts[-4:]
    m = _SEED.match(parts[-1]) if len(parts) == 4 else None
    if not m:
        return None
    return {"dataset": parts[0], "model": parts[1], "hardware": parts[2], "seed": int(m.group(1))}


def _names(record: dict) -> dict:
    return {k: record.get(k) for k in KEYS}


def _show(names: dict) -> str:
    return f"{names['dataset']}/{names['model']}/{names['hardware']}/seed{names['seed']}"


def check_run(run_dir: Path, metrics: dict, build: dict) -> dict:
    """The run's identity, the same in its folder (where laid out), metrics.json and weights.pt."""
    recorded = _names(metrics)
    where = folder_identity(run_dir)
    if where is not None and where != recorded:
        raise ValueError(f"{run_dir}/metrics.json is the metrics of run {_show(recorded)}, not of the folder it lies in "
                         f"({_show(where)}): train this run again (remove the folder, or snakemake --forcerun train)")
    kept = _names(build)
    if kept != recorded:
        raise ValueError(f"{run_dir}/weights.pt holds the weights of run {_show(kept)}, not of {_show(recorded)} "
                         "(its folder and metrics.json): train this run again")
    spec = metrics.get("model_params")
    if spec is not None and dict(build.get("model_spec") or {}) != dict(spec):
        raise ValueError(f"{run_dir}/weights.pt was built with model settings {build.get('model_spec')}, its "
                         f"metrics.json records {spec}: train this run again")
    return recorded


def check_weights_hash(run_dir: Path, metrics: dict, actual: str) -> None:
    """The weights are those the run kept (metrics.json's best_params_sha256, where recorded)."""
    recorded = metrics.get("best_params_sha256")
    if recorded and recorded != actual:
        raise ValueError(f"{run_dir}/weights.pt does not hold the weights this run kept (parameters sha256 "
                         f"{actual[:12]}, metrics.json records {recorded[:12]}): train this run again")


def clean_agrees(clean: float, test_metric, tf32: bool = False) -> bool:
    """Whether a recomputed clean test metric is the run's test_metric (see RTOL)."""
    if test_metric is None or not math.isfinite(clean) or not math.isfinite(test_metric):
        return False
    return math.isclose(clean, test_metric, rel_tol=RTOL_TF32 if tf32 else RTOL, abs_tol=1e-9)


def check_evaluations(paths: list[str | Path]) -> None:
    """Before the evaluation tables: each evaluation.json is its folder's run, once, made from the
    metrics.json beside it as it is now, its clean metric that run's test_metric."""
    seen: dict[tuple, Path] = {}
    for path in map(Path, paths):
        ev = read_json(path)
        names = _names(ev)
        where = folder_identity(path.parent)
        if where is not None and where != names:
            raise ValueError(f"{path} is the evaluation of run {_show(names)}, not of the folder it lies in "
                             f"({_show(where)}): evaluate this run again (snakemake --forcerun evaluate)")
        key = tuple(names.values())
        if key in seen:
            raise ValueError(f"run {_show(names)} is evaluated twice ({seen[key]} and {path}): each run once")
        seen[key] = path
        metrics_path = path.parent / "metrics.json"
        if not metrics_path.is_file():
            continue  # an evaluation.json handed over alone: nothing to check it against
        recorded = ev.get("metrics_sha256")
        if recorded and recorded != sha256_file(metrics_path):
            raise ValueError(f"{path} was made from another metrics.json than the one beside it: evaluate this "
                             "run again (snakemake --forcerun evaluate)")
        if ev.get("status") != "ok":
            continue
        metrics = read_json(metrics_path)
        clean = next((r["metric"] for r in ev.get("rows", []) if r.get("family") == "clean"), None)
        tf32 = bool((metrics.get("hardware_params") or {}).get("tf32"))
        if clean is None or not clean_agrees(clean, metrics.get("test_metric"), tf32):
            raise ValueError(f"{path}: its clean test metric {clean} is not the run's test_metric "
                             f"{metrics.get('test_metric')} (metrics.json): evaluate this run again "
                             "(snakemake --forcerun evaluate)")
