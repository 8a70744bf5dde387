"""Overhead of the telemetry sampler: training-step time with and without it (CPU, 1 thread).

Steps of a CfC model are timed in alternating blocks with the sampler stopped and running at its
default interval (0.2 s) and at 0.02 s; the figure is the change of the median step time. Target:
<= 1 % at the default interval.
"""

from __future__ import annotations

import statistics
import time

import torch

from liquidbench.data.sine import generate
from liquidbench.models import build_model
from liquidbench.telemetry import Sampler
from liquidbench.train.tasks import loss_fn


def main(blocks: int = 6, steps: int = 40) -> None:
    torch.set_num_threads(1)
    data = generate({"n_sequences": 64, "seq_len": 32, "seed": 0})
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    torch.manual_seed(0)
    model = build_model({"type": "cfc", "units": 32, "backbone_units": 64}, 2, 1, "regression_per_step")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        t0 = time.perf_counter()
        loss = loss_fn("regression_per_step", model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for _ in range(10):  # warm-up
        step()
    times = {"off": [], "0.2 s": [], "0.02 s": []}
    n_samples = {"0.2 s": 0, "0.02 s": 0}
    for _ in range(blocks):
        times["off"] += [step() for _ in range(steps)]
        for label, interval in (("0.2 s", 0.2), ("0.02 s", 0.02)):
            with Sampler(interval_s=interval) as s:
                times[label] += [step() for _ in range(steps)]
            n_samples[label] += len(s.rows)
    base = statistics.median(times["off"])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {blocks} x {steps} steps per setting")
    print(f"{'sampler':8} {'median ms/step':>15} {'overhead %':>11} {'samples':>8}")
    print(f"{'off':8} {1000 * base:15.3f} {'':>11} {'':>8}")
    for label in ("0.2 s", "0.02 s"):
        med = statistics.median(times[label])
        print(f"{label:8} {1000 * med:15.3f} {100 * (med / base - 1):11.2f} {n_samples[label]:8d}")
    print("target: overhead <= 1 % at the default interval (0.2 s)")


if __name__ == "__main__":
    main()
