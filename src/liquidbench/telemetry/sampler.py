"""Background sampler: one thread per rank reads its own process (CPU %, RSS) and its GPU.

Every ``interval_s`` (hardware telemetry_interval_s) the thread appends one row; ``rows`` of all ranks are gathered
by rank 0, written as telemetry.csv and summarised by ``summarize``. The thread only reads
counters (psutil, NVML), so it costs little next to a training step (benchmarks/bench_telemetry.py
measures it).
"""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from pathlib import Path

import psutil

from ..io import write_text
from .nvml import gpu_summary

MIB = 1024 * 1024
GPU_COLUMNS = ["gpu_util_pct", "gpu_mem_used_mb", "gpu_power_w", "gpu_energy_mj", "gpu_sm_clock_mhz", "gpu_temp_c"]
COLUMNS = ["t_unix", "segment", "rank", "host", "pid", "cpu_pct", "rss_mb", "gpu_index"] + GPU_COLUMNS


class Sampler:
    """Samples this process (and, with ``gpu``, one GPU through an NVML reader) in a thread."""

    def __init__(self, interval_s: float, rank: int = 0, segment: int = 0, gpu=None):
        if not interval_s > 0:
            raise ValueError(f"telemetry interval must be > 0 seconds, got {interval_s}")
        self.interval_s, self.rank, self.segment, self.gpu = interval_s, rank, segment, gpu
        self.rows: list[dict] = []
        self._proc = psutil.Process()
        self._host = socket.gethostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict:
        mem = self._proc.memory_info()
        row = {
            "t_unix": time.time(),
            "segment": self.segment,
            "rank": self.rank,
            "host": self._host,
            "pid": self._proc.pid,
            # % of one core since the previous call (> 100 with several threads)
            "cpu_pct": self._proc.cpu_percent(interval=None),
            "rss_mb": mem.rss / MIB,
            "gpu_index": self.gpu.index if self.gpu else None,
        }
        row.update(self.gpu.read() if self.gpu else dict.fromkeys(GPU_COLUMNS))
        self.rows.append(row)
        return row

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> "Sampler":
        self._proc.cpu_percent(interval=None)  # the first call only sets the reference point
        self._thread = threading.Thread(target=self._run, name="liquidbench-telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()  # the end of the window
        return self.rows

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _series(rows: list[dict]) -> dict:
    """(segment, rank) -> rows in time order."""
    out: dict = {}
    for r in rows:
        out.setdefault((int(r["segment"]), int(r["rank"])), []).append(r)
    for s in out.values():
        s.sort(key=lambda r: float(r["t_unix"]))
    return out


def host_summary(rows: list[dict]) -> dict:
    """CPU and RSS of all ranks together: within each process segment the ranks' samples are
    aligned by index (their samplers start together after a barrier) and summed; mean and max over
    those sums (CPU in % of one core)."""
    by_segment: dict = {}
    for (segment, _rank), s in _series(rows).items():
        by_segment.setdefault(segment, []).append(s)
    cpu, rss = [], []
    for ranks in by_segment.values():
        n = min(len(s) for s in ranks)
        for i in range(n):
            cpu.append(sum(float(s[i]["cpu_pct"]) for s in ranks))
            rss.append(sum(float(s[i]["rss_mb"]) for s in ranks))
    return {
        "cpu_util_mean_pct": sum(cpu) / len(cpu) if cpu else None,
        "cpu_util_max_pct": max(cpu) if cpu else None,
        "rss_peak_mb": max(rss) if rss else None,
        "ranks": len({r["rank"] for r in rows}),
    }


def summarize(rows: list[dict], *, interval_s: float, epochs: int, device: str,
              gpu_reason: str | None = None, torch_max_memory_allocated_mb: float | None = None) -> dict:
    """The ``telemetry`` block of metrics.json from the rows of every rank."""
    out = {"interval_s": interval_s, "n_samples": len(rows), "host": host_summary(rows), "gpu": None,
           "gpu_reason": None}
    if device != "cuda":
        out["gpu_reason"] = gpu_reason or f"device is {device}: no GPU in use"
        return out
    gpu_rows = {k: [r for r in s if r.get("gpu_index") is not None] for k, s in _series(rows).items()}
    gpu_rows = {k: s for k, s in gpu_rows.items() if s}
    if gpu_rows:
        block = gpu_summary(gpu_rows, epochs)
    else:
        block = dict.fromkeys(["util_mean_pct", "util_max_pct", "mem_used_peak_mb", "power_mean_w", "energy_j",
                               "energy_per_epoch_j", "energy_source", "sm_clock_mean_mhz", "temp_max_c"])
        block["n_gpus"] = 0
        out["gpu_reason"] = gpu_reason or "no NVML samples"
    block["torch_max_memory_allocated_mb"] = torch_max_memory_allocated_mb
    out["gpu"] = block
    return out


def write_csv(path: str | Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in sorted(rows, key=lambda r: (r["segment"], r["rank"], r["t_unix"])):
        writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLUMNS})
    write_text(path, buf.getvalue())
