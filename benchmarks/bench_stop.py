"""Cost of the SIGTERM stop agreement inside a timed DDP epoch (ddp-cpu-2: two gloo processes).

Two processes under torchrun train the smoke study's DDP models (cfc, lstm) on the sine data
set's training split with the smoke settings (global batch 16 split over 2 ranks, 1 thread each)
and time "epochs" of STEPS optimisation steps in three ways, interleaved in a fresh random order
(the same on both ranks) in every round:

- none:        no stop check at all (what the one-process baseline pays);
- blocking:    a blocking gloo all-reduce of the stop flag after every step (the loop before
               the change: ``Control.any`` per step);
- async-1:     ``StopAgreement`` started after every step (non-blocking all-reduce waited for
               one step later);
- loop:        ``StopAgreement`` as the loop uses it (every STOP_CHECK_STEPS steps).

Two figures per variant:

- "in call": the time spent inside the check itself (the part of the timed step it occupies),
  summed over an epoch, per step, maximum over ranks, median over rounds; and that as a share of
  the median "none" step. This is what the check adds to the timed path, and it is robust to
  the machine's load.
- "paired": the median over rounds of the variant's epoch time relative to the "none" epoch of the
  same round, minus one (an epoch's time is the maximum over ranks, as in the training loop). It
  also catches indirect costs (the gloo thread's CPU time) but on a loaded machine its noise is
  several per cent.

Target: the loop's agreement costs below 1 % of the DDP step time.

    python benchmarks/run.py bench_stop            # or: python benchmarks/bench_stop.py [ROUNDS]
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time

import torch

STEPS = 20
ROUNDS = 40
VARIANTS = ("none", "blocking", "async-1", "loop")
MODELS = {
    "cfc": {"type": "cfc", "units": 8, "backbone_units": 16},
    "lstm": {"type": "lstm", "hidden_size": 8},
}
SINE = {"n_sequences": 48, "seq_len": 12, "seed": 0}
GLOBAL_BATCH = 16


def worker(rounds: int) -> None:
    import tempfile
    from datetime import timedelta

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DistributedSampler

    from liquidbench.data import load_split, read_meta
    from liquidbench.data.sine import prepare
    from liquidbench.models import build_model
    from liquidbench.train.distributed import STOP_CHECK_STEPS, Control, StopAgreement, StopFlag
    from liquidbench.train.loop import split_tensors
    from liquidbench.train.tasks import loss_fn

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    ctrl = Control(world, 60)
    stop = StopFlag()  # never set: the cost of agreeing that nobody stops
    with tempfile.TemporaryDirectory() as d:  # each rank prepares the (deterministic) data set itself
        prepare(SINE, d)
        meta = read_meta(d)
        x, y = split_tensors(load_split(d, "train"))[:2]
    order = list(DistributedSampler(range(len(x)), num_replicas=world, rank=rank, shuffle=True, seed=0))
    per_rank = GLOBAL_BATCH // world
    batches = [torch.tensor(order[i : i + per_rank]) for i in range(0, len(order), per_rank)]

    results = {}
    for name, spec in MODELS.items():
        torch.manual_seed(0)
        model = build_model(spec, meta["n_features"], meta["n_outputs"], meta["task"], meta["irregular"])
        net = DDP(model)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)

        def epoch(variant: str) -> tuple[float, float]:
            agreement = StopAgreement(ctrl, stop, every=1 if variant == "async-1" else STOP_CHECK_STEPS)
            in_call = 0.0
            ctrl.barrier()
            t0 = time.perf_counter()
            for k in range(STEPS):
                idx = batches[k % len(batches)]
                loss = loss_fn(meta["task"], net(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                tc = time.perf_counter()
                if variant == "blocking" and ctrl.any(stop.requested):
                    break
                if variant in ("async-1", "loop") and agreement.after_step(k + 1):
                    break
                in_call += time.perf_counter() - tc
            elapsed = time.perf_counter() - t0
            agreement.drain()
            return tuple(ctrl.max([elapsed, in_call]))

        for v in VARIANTS:  # warm-up
            epoch(v)
        times = {v: [] for v in VARIANTS}
        calls = {v: [] for v in VARIANTS}
        shuffle = random.Random(0)  # the same order on every rank
        for _ in range(rounds):
            for v in shuffle.sample(VARIANTS, len(VARIANTS)):
                elapsed, in_call = epoch(v)
                times[v].append(elapsed)
                calls[v].append(in_call)
        results[name] = times, calls
    if rank == 0:
        print(f"ddp-cpu-2 (gloo, 2 processes x 1 thread), torch {torch.__version__}, sine {SINE}, "
              f"global batch {GLOBAL_BATCH}, {STEPS} steps an epoch, {rounds} interleaved rounds, "
              f"loop: every {STOP_CHECK_STEPS} steps")
        print(f"{'model':6} {'variant':9} {'ms/step':>8} {'in call us/step':>16} {'in call %':>10} "
              f"{'paired %':>9}")
        for name, (times, calls) in results.items():
            base = times["none"]
            base_step = statistics.median(base) / STEPS
            for v in VARIANTS:
                step_ms = 1000 * statistics.median(times[v]) / STEPS
                call = statistics.median(calls[v]) / STEPS
                paired = 100 * statistics.median(a / b - 1 for a, b in zip(times[v], base))
                print(f"{name:6} {v:9} {step_ms:8.3f} {1e6 * call:16.1f} {100 * call / base_step:10.3f} "
                      f"{paired:9.2f}")
    dist.destroy_process_group()


def main(rounds: int = ROUNDS) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           os.path.abspath(__file__), "--worker", str(rounds)]
    subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
