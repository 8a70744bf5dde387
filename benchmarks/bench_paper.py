"""The LTC paper's study at its full budget (config/paper.yaml): the cost of one training step and of
one epoch's validation per model, and the estimate of a whole run (200 epochs) drawn from them.

Issue 24 asks for this estimate before the long runs start. The models are those of
``config/paper.yaml`` (read from it: one home), on random tensors of the traffic data set's shapes:
``current``, 9,033 training windows of 32 steps (564 steps of batch 16 an epoch, the last partial
batch left out) and 1,204 validation windows; ``prefix_2020``, 25 training sequences of 12,043 steps
(one step of batch 16 an epoch) and 3 validation sequences. One step is forward, backward and an
Adam update (no clipping, as the protocol); validation is the forward of the validation split in
batches of the study's ``eval_batch_size``. Models are timed interleaved, one thread, median over
the timed steps after warm-up. The estimate leaves out what is small beside these (start-up, the
test split once, checkpoints).

    .venv/bin/python benchmarks/run.py bench_paper            # both protocols
    LIQUIDBENCH_BENCH_PROTOCOLS=current .venv/bin/python benchmarks/run.py bench_paper
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch
import yaml

from liquidbench.models import build_model
from liquidbench.train.settings import TRAINING_DEFAULTS
from liquidbench.train.tasks import loss_fn

PAPER = Path(__file__).resolve().parent.parent / "config" / "paper.yaml"
# protocol -> (training sequences, validation sequences, steps per sequence, timed steps)
PROTOCOLS = {"current": (9033, 1204, 32, 15), "prefix_2020": (25, 3, 12043, 2)}
FEATURES = 7


def paper_models() -> tuple[dict[str, dict], dict]:
    """``{name: model entry without its training overrides}`` and the study's training section."""
    study = yaml.safe_load(PAPER.read_text())
    models = {name: {k: v for k, v in entry.items() if k != "training"} for name, entry in study["models"].items()}
    return models, study["training"]


def _step(model, opt, x, y) -> float:
    t0 = time.perf_counter()
    loss = loss_fn("regression_per_step", model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def _validation(model, x) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        model.eval()
        model(x)
        model.train()
    return time.perf_counter() - t0


def measure(models: dict[str, dict], protocol: str, batch: int, eval_batch: int) -> dict[str, dict]:
    n_train, n_val, steps, timed = PROTOCOLS[protocol]
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, steps, FEATURES, generator=gen), torch.randn(batch, steps, 1, generator=gen)
    val_rows = min(eval_batch, n_val)
    xv = torch.randn(val_rows, steps, FEATURES, generator=gen)
    runners = {}
    for name, spec in models.items():
        torch.manual_seed(0)
        model = build_model(spec, FEATURES, 1, "regression_per_step")
        runners[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
    times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(1 + timed):  # one warm-up step each, then interleaved timed steps
        for name in (list(models) if i % 2 == 0 else list(models)[::-1]):
            t = _step(*runners[name], x, y)
            if i:
                times[name].append(t)
    out = {}
    for name, (model, _) in runners.items():
        step = statistics.median(times[name])
        val_batch = _validation(model, xv)
        val = val_batch * n_val / val_rows
        epoch = (n_train // batch) * step + val
        out[name] = {"step_s": step, "validation_s": val, "epoch_s": epoch}
    return out


def main() -> None:
    torch.set_num_threads(1)
    models, training = paper_models()
    batch = training["batch_size"]
    epochs = training["epochs"]
    eval_batch = training.get("eval_batch_size", TRAINING_DEFAULTS["eval_batch_size"])
    chosen = os.environ.get("LIQUIDBENCH_BENCH_PROTOCOLS", ",".join(PROTOCOLS)).split(",")
    print(f"torch {torch.__version__}, 1 thread, batch {batch}, {epochs} epochs, eval batch {eval_batch}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'protocol':<12} {'model':<10} {'step ms':>9} {'val s/epoch':>12} {'epoch s':>9} {'run (min)':>10}")
    for protocol in chosen:
        # ncps's LTC on 12,043-step sequences takes minutes a step: the fast LTC stands in for it there
        todo = {n: s for n, s in models.items()
                if not (protocol == "prefix_2020" and s["type"] == "ltc" and s.get("impl", "ncps") == "ncps")}
        for name, m in measure(todo, protocol, batch, eval_batch).items():
            print(f"{protocol:<12} {name:<10} {1e3 * m['step_s']:>9.2f} {m['validation_s']:>12.2f} "
                  f"{m['epoch_s']:>9.2f} {epochs * m['epoch_s'] / 60:>10.1f}", flush=True)
    print("run (min): one seed's training at the full budget, from the step and validation figures above")


if __name__ == "__main__":
    main()
