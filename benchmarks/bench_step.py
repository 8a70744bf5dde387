"""Per-step training time of each model on one batch of the sine data set (CPU, 1 thread).

Warm-up steps are run and discarded; the figure is the median over timed steps of one full
optimisation step (forward, backward, clip, Adam update).
"""

from __future__ import annotations

import statistics
import time

import torch

from liquidbench.data.sine import generate
from liquidbench.models import build_model, count_parameters
from liquidbench.train.optim import adam, clip_gradients
from liquidbench.train.settings import TRAINING_DEFAULTS
from liquidbench.train.tasks import loss_fn

SPECS = {
    "ltc": {"type": "ltc", "units": 32},
    "cfc": {"type": "cfc", "units": 32, "backbone_units": 64},
    "lstm": {"type": "lstm", "hidden_size": 32},
    "gru": {"type": "gru", "hidden_size": 32},
}


def train_step(model, opt, x: torch.Tensor, y: torch.Tensor,
               optimizer_impl: str = TRAINING_DEFAULTS["optimizer_impl"]) -> float:
    """Seconds of one optimisation step: forward, backward, clip, Adam update (``opt``, made by
    :func:`liquidbench.train.optim.adam` with the same ``optimizer_impl``), as the training loop runs
    them. On a GPU the device is synchronised before each clock reading, so that the step's queued
    kernels are counted."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    loss = loss_fn("regression_per_step", model(x), y)
    opt.zero_grad()
    loss.backward()
    clip_gradients(model.parameters(), 1.0, optimizer_impl)
    opt.step()
    sync()
    return time.perf_counter() - t0


def step_times(spec: dict, x: torch.Tensor, y: torch.Tensor, warmup: int = 3, steps: int = 10) -> list[float]:
    torch.manual_seed(0)
    model = build_model(spec, x.shape[-1], y.shape[-1], "regression_per_step")
    opt = adam(model.parameters(), TRAINING_DEFAULTS["optimizer_impl"], lr=1e-3)
    times = [train_step(model, opt, x, y) for _ in range(warmup + steps)]
    return times[warmup:]


def main() -> None:
    torch.set_num_threads(1)
    data = generate({"n_sequences": 64, "seq_len": 64, "seed": 0})
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    print(f"batch {tuple(x.shape)}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'model':6} {'params':>7} {'median ms/step':>15} {'p95 ms/step':>12}")
    for name, spec in SPECS.items():
        t = sorted(step_times(spec, x, y))
        n = count_parameters(build_model(spec, 2, 1, "regression_per_step"))
        p95 = t[min(len(t) - 1, int(0.95 * len(t)))]
        print(f"{name:6} {n:7d} {1000 * statistics.median(t):15.2f} {1000 * p95:12.2f}")


if __name__ == "__main__":
    main()
