"""metrics.json of a run, built by one pure function from what the run measured (docs/measures.md: What a
run measures), and history.csv."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass

import numpy as np

from .settings import Hardware, Training
from .state import TrainState

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_metric", "epoch_time_s"]


@dataclass(frozen=True)
class RunFacts:
    """What a finished run knows besides its TrainState: identity, place, sizes and measurements."""

    dataset: str
    model: str
    model_spec: dict
    hardware: str
    seed: int
    training: Training
    hw: Hardware  # the hardware entry with its defaults
    device: str
    device_name: str | None
    world: int
    backend: str | None
    ddp: bool
    threads: int
    batch_per_process: int
    n_params: int
    task: str
    metric_name: str
    samples_per_epoch: int
    steps_per_epoch: int
    step_timer: str
    comm_probe: dict | None
    final_params_sha256: str
    best_params_sha256: str | None  # the kept (best-validation) weights, as weights.pt holds them
    data_params: dict  # the prepared data set's parameters (meta.json: params, protocol) and split hashes
    tuned: dict | None  # the tuning stage's selection the settings came from (selected.json), if any
    test_metric: float
    peak_host_rss_mb: float
    telemetry: dict
    status: str
    env: dict


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def build_metrics(facts: RunFacts, state: TrainState) -> dict:
    """metrics.json: the run's identity, where it ran, its outcome and its cost. Times: the first
    epoch is warm-up, the others steady state (all epochs when there is only one)."""
    epoch_times = state.epoch_times
    steady = epoch_times[1:] or epoch_times
    steps = state.steady_step_times or state.warmup_step_times
    step_median = statistics.median(steps) if steps else None
    comm_fraction = None
    if facts.comm_probe is not None and step_median:
        comm_fraction = min(1.0, facts.comm_probe["allreduce_s"] / step_median)
    return {
        "dataset": facts.dataset,
        "model": facts.model,
        "model_type": facts.model_spec.get("type"),
        "hardware": facts.hardware,
        "seed": facts.seed,
        "device": facts.device,
        "device_name": facts.device_name,
        "world_size": facts.world,
        "nodes": facts.hw.nodes,
        "nproc_per_node": facts.hw.nproc_per_node,
        "backend": facts.backend,
        "ddp": facts.ddp,
        "threads": facts.threads,
        "scaling": facts.hw.scaling,
        "batch_size_per_process": facts.batch_per_process,
        "global_batch_size": facts.batch_per_process * facts.world,
        "epochs": facts.training.epochs,
        "epochs_run": len(state.history),
        "n_params": facts.n_params,
        "task": facts.task,
        "metric_name": facts.metric_name,
        "final_train_loss": state.history[-1]["train_loss"],
        "best_val_metric": state.best_val,
        "best_epoch": state.best_epoch,
        "test_metric": facts.test_metric,
        "final_params_sha256": facts.final_params_sha256,
        "train_time_s": sum(epoch_times),
        "warmup_time_s": epoch_times[0],
        "steady_epoch_time_s": float(np.mean(steady)),
        "epoch_times_s": epoch_times,
        "samples_per_epoch": facts.samples_per_epoch,
        "throughput_samples_per_s": facts.samples_per_epoch * len(steady) / sum(steady),
        "steps_per_epoch": facts.steps_per_epoch,
        "step_time_median_s": step_median,
        "step_time_p95_s": _percentile(steps, 95),
        "step_timer": facts.step_timer,
        "comm_fraction": comm_fraction,
        "comm_probe": facts.comm_probe,
        "peak_host_rss_mb": facts.peak_host_rss_mb,
        "segments": state.segments + 1,
        "telemetry": facts.telemetry,
        "status": facts.status,
        "start_val_loss": state.start_val_loss,
        "diverged_epoch": state.diverged["epoch"] if state.diverged else None,
        "diverged_reason": state.diverged["reason"] if state.diverged else None,
        "best_params_sha256": facts.best_params_sha256,
        "train_params": facts.training.as_dict(),
        "model_params": facts.model_spec,
        "hardware_params": facts.hw.as_dict(),
        "data_params": facts.data_params,
        "tuned": facts.tuned,
        "env": facts.env,
    }


def history_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()
