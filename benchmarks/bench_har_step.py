"""Training-step time of each model on UCI HAR inertial-shaped batches (9 channels, 6 classes,
one label per sequence), at the window's full 128 steps and at 32 (``downsample: 4``).

One thread, batch 64, the local study's model sizes; the median of timed steps after one
warm-up step (LTC: 3 timed steps, the others 7). Inputs are random: the step time does not
depend on the values. Prints one line per (steps, model).
"""

from __future__ import annotations

import statistics
import time

import torch

from liquidbench.models import build_model

MODELS = {"ltc": {"type": "ltc", "units": 16}, "cfc": {"type": "cfc", "units": 16, "backbone_units": 32},
          "lstm": {"type": "lstm", "hidden_size": 16}, "gru": {"type": "gru", "hidden_size": 16}}
BATCH = 64


def step_time_ms(spec: dict, steps: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = build_model(spec, 9, 6, "classification_per_sequence")
    opt = torch.optim.Adam(model.parameters(), 0.01)
    x, y = torch.randn(BATCH, steps, 9), torch.randint(0, 6, (BATCH,))
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    torch.set_num_threads(1)
    for steps in (32, 128):
        for name, spec in MODELS.items():
            ms = step_time_ms(spec, steps, 3 if name == "ltc" else 7)
            print(f"HAR inertial step, batch {BATCH}, T={steps:>3}, {name:>4}: {ms:8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
