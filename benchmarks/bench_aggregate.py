"""Aggregating 1,000 runs: metrics.json + history.csv files -> every results table (target <= 10 s).

Synthetic run directories (2 data sets x 4 models x 5 hardware entries x 25 seeds, 20 epochs each,
a few runs failed, diverged or missing) are written to a temporary folder first (not timed); the
timed part is what the workflow's results rules do after training, minus the figures:
aggregate, summarize, scaling, ratios, time to target and claims, each table written as CSV,
Markdown and LaTeX.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from liquidbench.results import claims, compare, scaling, summary
from liquidbench.results.aggregate import load_histories, load_runs
from liquidbench.results.tables import write_table
from liquidbench.results.verdicts import ClaimsSettings
from liquidbench.study import study_runs

DATASETS = ["sine", "sine_irregular"]
MODELS = {"ltc": "ltc", "cfc": "cfc", "lstm": "lstm", "gru": "gru"}
HARDWARE = {
    "cpu": {"device": "cpu"},
    "ddp-1gpu": {"device": "cuda", "nproc_per_node": 1, "scaling": "weak"},
    "ddp-2gpu": {"device": "cuda", "nproc_per_node": 2, "scaling": "weak"},
    "ddp-4gpu": {"device": "cuda", "nproc_per_node": 4, "scaling": "weak"},
    "ddp-8gpu": {"device": "cuda", "nodes": 2, "nproc_per_node": 4, "scaling": "weak"},
}
SEEDS = list(range(25))
# results.claims as the workflow passes it: the config schema's defaults
SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
CLAIM_SETTINGS = {key: prop["default"] for key, prop in yaml.safe_load(SCHEMA.read_text())["properties"]["results"][
    "properties"]["claims"]["properties"].items()}
STUDY = {"datasets": DATASETS, "models": list(MODELS), "hardware": list(HARDWARE), "seeds": SEEDS}
EPOCHS = 20


def write_runs(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for i, (d, m, h, s) in enumerate(study_runs(STUDY)):
        if i % 97 == 5:
            continue  # missing: no metrics.json
        run = root / d / m / h / f"seed{s}"
        run.mkdir(parents=True)
        n = HARDWARE[h].get("nodes", 1) * HARDWARE[h].get("nproc_per_node", 1)
        epoch_times = (1.0 + rng.random(EPOCHS) * 0.1) * (3 if m == "ltc" else 1) / n ** 0.8
        val = 0.5 * np.exp(-np.arange(1, EPOCHS + 1) / 5) + rng.random(EPOCHS) * 0.01
        metrics = {
            "dataset": d, "model": m, "model_type": MODELS[m], "hardware": h, "seed": s, "world_size": n,
            "status": "diverged" if i % 89 == 3 else "ok", "metric_name": "mse", "n_params": 1000,
            "train_time_s": float(epoch_times.sum()), "steady_epoch_time_s": float(epoch_times[1:].mean()),
            "throughput_samples_per_s": 4096 / float(epoch_times[1:].mean()), "test_metric": float(val.min()),
            "best_val_metric": float(val.min()), "epoch_times_s": epoch_times.tolist(), "peak_host_rss_mb": 500.0,
            "telemetry": {"gpu": {"util_mean_pct": 80.0, "mem_used_peak_mb": 900.0, "energy_j": 2000.0,
                                  "energy_per_epoch_j": 100.0}, "host": {"rss_peak_mb": 510.0}},
            "env": {"torch": "2.13.0", "python": "3.11"},
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
        lines = ["epoch,train_loss,val_loss,val_metric,epoch_time_s"]
        lines += [f"{e + 1},{val[e]},{val[e]},{val[e]},{epoch_times[e]}" for e in range(EPOCHS)]
        (run / "history.csv").write_text("\n".join(lines) + "\n")
        files.append(run / "metrics.json")
    return files


def aggregate_all(files: list[Path], out: Path) -> int:
    runs = load_runs(files, study_runs(STUDY))
    history = load_histories(runs)
    runs.to_csv(out / "runs.csv", index=False)
    history.to_csv(out / "history.csv", index=False)
    s = summary.summarize(runs)
    write_table(s, summary.display(s), out / "summary.csv", out / "summary.md", out / "summary.tex")
    sc = scaling.scaling_table(s, scaling.hardware_entries(HARDWARE), 0.7)
    write_table(sc, scaling.display(sc), out / "scaling.csv", out / "scaling.md", out / "scaling.tex")
    r = compare.ratio_table(s, MODELS)
    write_table(r, compare.ratio_display(r), out / "ratios.csv", out / "ratios.md", out / "ratios.tex")
    t = compare.time_to_target(runs, history, {d: 0.05 for d in DATASETS})
    write_table(t, compare.target_display(t), out / "ttt.csv", out / "ttt.md", out / "ttt.tex")
    c = claims.check_claims(s, sc, MODELS, ClaimsSettings.from_dict(CLAIM_SETTINGS))
    write_table(c, claims.display(c), out / "claims.csv", out / "claims.md", out / "claims.tex")
    return len(runs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_runs(root / "runs")
        (root / "tables").mkdir()
        t0 = time.perf_counter()
        n = aggregate_all(files, root / "tables")
        elapsed = time.perf_counter() - t0
    print(f"runs {n} ({len(files)} with metrics.json, {EPOCHS} epochs each)")
    print(f"aggregate + all tables: {elapsed:.2f} s (target <= 10 s)")


if __name__ == "__main__":
    main()
