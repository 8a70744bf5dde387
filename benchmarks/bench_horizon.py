"""The evaluation stage's closed-loop horizon: time per model at the local study's sizes.

The local study's forecasting sine set (512 sequences of 48 steps, noise 0.05, target next) and its
horizon set (64 sequences, 48 steps past the trained length), the four reference models at the
local sizes (untrained: the time does not depend on the weights), one thread. Per model, interleaved,
3 repetitions: the closed loop (48 true steps, then 48 predictions fed back one step at a time,
liquidbench.evaluate.horizon.rows) against one forward pass over the same 96 true inputs (what the
horizon measured before it was closed-loop). Median seconds.
"""

from __future__ import annotations

import statistics
import time

import torch

from liquidbench.data.sine import evaluation_sets
from liquidbench.evaluate import horizon
from liquidbench.evaluate.common import Split, outputs
from liquidbench.evaluate.settings import Grid
from liquidbench.evaluate.stage import Context
from liquidbench.models import build_model

PARAMS = {"n_sequences": 512, "seq_len": 48, "noise_std": 0.05, "seed": 0, "target": "next"}  # config/local.yaml
GRID = Grid(steps=48, n_sequences=64)  # the schema's default horizon
MODELS = {  # config/local.yaml
    "ltc": {"type": "ltc", "units": 16},
    "cfc": {"type": "cfc", "units": 16, "backbone_units": 32},
    "lstm": {"type": "lstm", "hidden_size": 16},
    "gru": {"type": "gru", "hidden_size": 16},
}


def main() -> None:
    torch.set_num_threads(1)
    sets = evaluation_sets(PARAMS, [], 0, GRID.steps, GRID.n_sequences, seed=0)
    split = Split.of({"x": sets["horizon_x"], "y": sets["horizon_y"]})
    ctx = Context(test=split, train_x=split.x, train_y=split.y, train_t=None, task="regression_per_step",
                  seq_len=PARAMS["seq_len"], seed=0, batch_size=512, train_batch=32, extra={"horizon": {0.0: split}})
    torch.manual_seed(0)
    models = {name: build_model(spec, 2, 2, "regression_per_step").eval() for name, spec in MODELS.items()}
    times = {(name, kind): [] for name in models for kind in ("closed", "open")}
    for _ in range(3):
        for name, model in models.items():
            t = time.perf_counter()
            horizon.rows(model, ctx, GRID)
            times[(name, "closed")].append(time.perf_counter() - t)
            t = time.perf_counter()
            outputs(model, split, 512)
            times[(name, "open")].append(time.perf_counter() - t)
    print(f"{'model':6} {'closed loop':>12} {'one pass':>10} {'ratio':>6}   (median of 3, s; 64 x (48 + 48) steps)")
    for name in models:
        closed, open_ = (statistics.median(times[(name, k)]) for k in ("closed", "open"))
        print(f"{name:6} {closed:12.4f} {open_:10.4f} {closed / open_:6.2f}")


if __name__ == "__main__":
    main()
