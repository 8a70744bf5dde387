"""Two measurements for a DDP scaling model (liquidbench.results.scaling_model):

- :func:`step_probe`: the seconds of one optimisation step of a model against the per-process batch
  size, on one process (no DDP wrapper, so no gradient all-reduce: that is the other probe);
- :func:`allreduce_probe`: the seconds of one ``all_reduce`` of a float32 tensor against its size
  in bytes, max over the ranks of an initialised process group.

Both time honestly: warm-up repetitions run first and are not counted; the device is synchronised
before each clock reading; every timed repetition is kept (``samples_s``) besides its median and a
95 % interval of the median. The interval is the distribution-free order-statistic interval
(:func:`median_interval`): with n samples sorted, ``[x_(j), x_(n+1-j)]`` covers the true median with
probability ``1 - 2 P(B <= j - 1)``, B ~ Binomial(n, 1/2), whatever the distribution of the times;
the widest j whose coverage is at least 95 % is taken and its exact coverage recorded. It needs at
least :data:`MIN_REPEATS` (6) samples: with 5 the widest interval, minimum to maximum, covers only
93.75 %.

A probe's result is a frozen dataclass whose :meth:`to_json` is what the CLI writes (atomically):
``liquidbench probe-step`` and ``liquidbench probe-allreduce``. The all-reduce probe runs in every
rank of a process group: :func:`run_allreduce_probe` starts ``world`` processes on this host (gloo
on the CPU, or NCCL on as many GPUs), and under torchrun (RANK, WORLD_SIZE, MASTER_ADDR set)
:func:`init_from_env` joins the group torchrun describes, so a GPU node and several nodes run the
same code: ``torchrun --nproc-per-node 4 -m liquidbench.train.probes --backend nccl --out F.json``
(the arguments of ``liquidbench probe-allreduce``).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ..data.store import TASKS
from ..envinfo import cpu_model, environment, reset_kernel_status
from ..models import build_model, count_parameters
from .distributed import Control, Place, sync
from .errors import HardwareError
from .numerics import state as numerics_state
from .optim import adam, clip_gradients
from .settings import TRAINING_DEFAULTS
from .tasks import loss_fn

CONFIDENCE = 0.95
INTERVAL_METHOD = ("distribution-free order-statistic interval of the median: [x_(j), x_(n+1-j)] of the n sorted "
                   "samples, the widest j whose coverage 1 - 2 P(Binomial(n, 1/2) <= j - 1) is at least the "
                   "confidence; its exact coverage is recorded per point")
GRAD_CLIP = 1.0  # the training default (liquidbench.train.settings), as the training loop clips
LR = 1e-3  # Adam's learning rate in the probe (a step's time does not depend on it)
FLOAT32_BYTES = 4
# message sizes around the models' gradients (5-20 thousand float32 parameters = 20-80 kB): 4 kB .. 1 MB
DEFAULT_SIZES_BYTES = tuple(4096 * 2 ** k for k in range(9))
DEFAULT_TIMEOUT_S = 300


def coverage(n: int, j: int) -> float:
    """The probability that ``[x_(j), x_(n+1-j)]`` (1-based order statistics of n samples) holds the
    true median of a continuous distribution."""
    below = sum(math.comb(n, i) for i in range(j)) / 2 ** n  # P(B <= j - 1)
    return 1.0 - 2.0 * below


def min_samples(confidence: float = CONFIDENCE) -> int:
    """The fewest samples whose widest order-statistic interval (minimum to maximum) reaches ``confidence``."""
    n = 1
    while coverage(n, 1) < confidence:
        n += 1
    return n


MIN_REPEATS = min_samples(CONFIDENCE)  # 6


@dataclass(frozen=True)
class MedianInterval:
    """The median of some samples with its order-statistic interval and that interval's exact coverage."""

    median: float
    lo: float
    hi: float
    coverage: float
    n: int


def median_interval(samples, confidence: float = CONFIDENCE) -> MedianInterval:
    """The median of ``samples`` and its distribution-free ``confidence`` interval (see the module's doc)."""
    xs = sorted(float(x) for x in samples)
    n = len(xs)
    if n < min_samples(confidence):
        raise ValueError(f"median_interval: {n} sample(s) give no {confidence:.0%} interval of the median, "
                         f"expected at least {min_samples(confidence)}")
    j = 1
    while j + 1 <= (n + 1) // 2 and coverage(n, j + 1) >= confidence:
        j += 1
    return MedianInterval(statistics.median(xs), xs[j - 1], xs[n - j], coverage(n, j), n)


@dataclass(frozen=True)
class Point:
    """The timed repetitions at one value of a probe's grid (a batch size or a message size)."""

    x: int
    samples_s: tuple[float, ...]
    median_s: float
    lo_s: float
    hi_s: float
    coverage: float

    @classmethod
    def of(cls, x: int, samples: list[float]) -> Point:
        m = median_interval(samples)
        return cls(x, tuple(samples), m.median, m.lo, m.hi, m.coverage)

    def to_json(self, name: str) -> dict:
        """The point with its grid value under ``name`` (batch, size_bytes)."""
        d = asdict(self)
        d[name] = d.pop("x")
        d["samples_s"] = list(self.samples_s)
        return d


def probe_env(device: torch.device, world: int, backend: str | None) -> dict:
    """What a probe ran on: the software and host (liquidbench.envinfo.environment), the device and
    its name, torch's threads, the world and backend, and the float32 precision in force (TF32)."""
    return {
        **environment(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "world": world,
        "backend": backend,
        "dtype": "float32",
        **numerics_state(),
    }


def _interval_json() -> dict:
    return {"method": INTERVAL_METHOD, "confidence": CONFIDENCE, "min_repeats": MIN_REPEATS}


def check_grid(values, name: str, what: str, minimum: int = 1) -> list[int]:
    """``values`` as a list of integers: non-empty, each >= ``minimum``, strictly increasing;
    otherwise a ValueError naming ``name``."""
    values = list(values)
    if not values:
        raise ValueError(f"{name}: expected a non-empty list of {what}, got none")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{name}: expected {what} (integers >= {minimum}), got {v!r} in {values}")
    for a, b in zip(values, values[1:]):
        if b <= a:
            raise ValueError(f"{name}: expected strictly increasing {what}, got {b} after {a} in {values}")
    return values


def check_counts(warmup: int, repeats: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: expected an integer >= 0 (untimed repetitions), got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < MIN_REPEATS:
        raise ValueError(f"repeats: expected an integer >= {MIN_REPEATS}, got {repeats!r}: the {CONFIDENCE:.0%} "
                         f"order-statistic interval of the median needs {MIN_REPEATS} timed repetitions "
                         f"(minimum to maximum of {MIN_REPEATS - 1} covers only "
                         f"{coverage(MIN_REPEATS - 1, 1):.2%})")


def parse_int_list(text: str, name: str) -> list[int]:
    """A comma-separated list of integers (``1,2,4``) from the command line; ``name`` is the flag."""
    try:
        return [int(part) for part in text.split(",")] if text.strip() else []
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers such as 1,2,4, got {text!r}") from None


# -- step time against per-process batch size ------------------------------------------------------


@dataclass(frozen=True)
class StepProbe:
    """One optimisation step's seconds at each per-process batch size of the grid, with what was run."""

    model_spec: dict
    n_params: int
    gradient_bytes: int  # float32 gradients, what DDP all-reduces per step
    task: str
    n_features: int
    n_outputs: int
    seq_len: int
    irregular: bool
    optimizer_impl: str
    warmup: int
    repeats: int
    seed: int
    points: tuple[Point, ...]
    env: dict

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "points"}
        return {"probe": "step",
                "timed": "forward, loss, zero_grad, backward, clip_gradients at 1.0, Adam step; "
                         "device synchronised before each clock reading; no DDP",
                "grad_clip": GRAD_CLIP, "interval": _interval_json(), **d,
                "points": [p.to_json("batch") for p in self.points]}


def synthetic_batch(b: int, seq_len: int, n_features: int, n_outputs: int, task: str, irregular: bool,
                    generator: torch.Generator) -> list[torch.Tensor]:
    """x (b, seq_len, n_features) standard normal, targets as ``task`` has them (regression:
    (b, seq_len, n_outputs) normal; per-step classification: (b, seq_len) labels; per-sequence:
    (b,) labels) and, for irregular sampling, elapsed times (b, seq_len) in [0.5, 1.5)."""
    x = torch.randn(b, seq_len, n_features, generator=generator)
    if task == "regression_per_step":
        y = torch.randn(b, seq_len, n_outputs, generator=generator)
    else:
        shape = (b, seq_len) if task == "classification_per_step" else (b,)
        y = torch.randint(0, n_outputs, shape, generator=generator)
    out = [x, y]
    if irregular:
        out.append(0.5 + torch.rand(b, seq_len, generator=generator))
    return out


def seeded_model(model_spec: dict, n_features: int, n_outputs: int, task: str, irregular: bool, seed: int,
                 device: torch.device) -> torch.nn.Module:
    """The model built from ``seed`` (torch's global generator is restored afterwards)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return build_model(model_spec, n_features, n_outputs, task, irregular).to(device)


def step_probe(model_spec: dict, n_features: int, n_outputs: int, task: str, seq_len: int, batches: list[int],
               device: torch.device | str, warmup: int, repeats: int, seed: int,
               optimizer_impl: str = TRAINING_DEFAULTS["optimizer_impl"], irregular: bool = False) -> StepProbe:
    """Time one optimisation step (as the training loop runs it) at each per-process batch size of
    ``batches``. For each batch size the model is built anew from ``seed`` with a fresh Adam, so that
    every point starts from the same weights; the batch is synthetic (:func:`synthetic_batch`, seeded
    with ``seed``). ``warmup`` steps run untimed, then ``repeats`` timed ones."""
    batches = check_grid(batches, "batches", "per-process batch sizes")
    check_counts(warmup, repeats)
    if task not in TASKS:
        raise ValueError(f"task: '{task}' is unknown, expected one of {sorted(TASKS)}")
    for name, value in (("n_features", n_features), ("n_outputs", n_outputs), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    device = torch.device(device)
    reset_kernel_status()  # the record of the paths the fast models take describes this probe
    points, n_params = [], None
    for b in batches:
        model = seeded_model(model_spec, n_features, n_outputs, task, irregular, seed, device)
        n_params = count_parameters(model)
        opt = adam(model.parameters(), optimizer_impl, lr=LR)
        gen = torch.Generator().manual_seed(seed)
        x, y, *t = (v.to(device) for v in synthetic_batch(b, seq_len, n_features, n_outputs, task, irregular, gen))
        elapsed = t[0] if t else None

        def step() -> float:
            sync(device)
            t0 = time.perf_counter()
            loss = loss_fn(task, model(x, elapsed), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(model.parameters(), GRAD_CLIP, optimizer_impl)
            opt.step()
            sync(device)
            return time.perf_counter() - t0

        for _ in range(warmup):
            step()
        points.append(Point.of(b, [step() for _ in range(repeats)]))
    return StepProbe(model_spec=dict(model_spec), n_params=n_params, gradient_bytes=FLOAT32_BYTES * n_params,
                     task=task, n_features=n_features, n_outputs=n_outputs, seq_len=seq_len, irregular=irregular,
                     optimizer_impl=optimizer_impl, warmup=warmup, repeats=repeats, seed=seed, points=tuple(points),
                     env=probe_env(device, 1, None))


# -- all-reduce time against message size ----------------------------------------------------------


@dataclass(frozen=True)
class AllreduceProbe:
    """One all_reduce's seconds (max over ranks) at each message size, with where it ran."""

    backend: str
    world: int
    hosts: tuple[str, ...]  # each rank's host, in rank order
    warmup: int
    repeats: int
    points: tuple[Point, ...]
    env: dict  # rank 0's

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "points"}
        return {"probe": "allreduce",
                "timed": "one all_reduce (sum) of a float32 tensor of size_bytes / 4 elements; ranks meet at a "
                         "gloo barrier before each; device synchronised before each clock reading; max over ranks",
                "interval": _interval_json(), **d, "hosts": list(self.hosts), "nodes": len(set(self.hosts)),
                "points": [p.to_json("size_bytes") for p in self.points]}


def check_sizes(sizes_bytes) -> list[int]:
    sizes = check_grid(sizes_bytes, "sizes_bytes", "message sizes in bytes", minimum=FLOAT32_BYTES)
    odd = [s for s in sizes if s % FLOAT32_BYTES]
    if odd:
        raise ValueError(f"sizes_bytes: expected multiples of {FLOAT32_BYTES} bytes (float32 elements), got {odd}")
    return sizes


def check_backend(backend: str) -> None:
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend: '{backend}' is unknown, expected gloo or nccl")


def allreduce_probe(sizes_bytes: list[int], backend: str, device: torch.device | str, warmup: int, repeats: int,
                    timeout_s: int = DEFAULT_TIMEOUT_S) -> AllreduceProbe | None:
    """Time ``all_reduce`` at each message size, in every rank of an initialised process group of
    two or more processes whose backend is ``backend``; ``device`` is this rank's. Before each timed
    all_reduce the device is synchronised and the ranks meet at a barrier of a gloo group (so that
    no rank's clock starts while another is still busy, and NCCL's barrier does not enter the
    clock); a repetition's time is the maximum over the ranks. The result on rank 0, None elsewhere."""
    sizes = check_sizes(sizes_bytes)
    check_counts(warmup, repeats)
    check_backend(backend)
    if not dist.is_initialized():
        raise ValueError("allreduce_probe: expected an initialised process group (call it in every rank, "
                         "after init_from_env or inside run_allreduce_probe)")
    world = dist.get_world_size()
    if world < 2:
        raise ValueError(f"allreduce_probe: expected a world of at least 2 processes, got {world}")
    if dist.get_backend() != backend:
        raise ValueError(f"allreduce_probe: backend '{backend}' asked for, but the process group uses "
                         f"'{dist.get_backend()}'")
    device = torch.device(device)
    ctrl = Control(world, timeout_s)
    points = []
    for size in sizes:
        tensor = torch.empty(size // FLOAT32_BYTES, dtype=torch.float32, device=device)

        def once() -> float:
            tensor.fill_(1.0)  # outside the clock: the sums stay finite
            sync(device)
            ctrl.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(tensor)
            sync(device)
            return time.perf_counter() - t0

        for _ in range(warmup):
            once()
        mine = [once() for _ in range(repeats)]
        points.append((size, ctrl.max(mine)))  # per repetition, the slowest rank
    hosts = ctrl.gather(socket.gethostname())
    if dist.get_rank() != 0:
        return None
    return AllreduceProbe(backend=backend, world=world, hosts=tuple(hosts), warmup=warmup, repeats=repeats,
                          points=tuple(Point.of(size, samples) for size, samples in points),
                          env=probe_env(device, world, backend))


def rank_device(backend: str, local_rank: int) -> torch.device:
    """gloo on the CPU; NCCL on GPU ``local_rank`` (made the current device)."""
    if backend == "gloo":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise HardwareError(f"backend nccl needs CUDA, which is not available on this machine "
                            f"(torch {torch.__version__}); use gloo")
    if local_rank >= torch.cuda.device_count():
        raise HardwareError(f"backend nccl: local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible)")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def init_from_env(backend: str, timeout_s: int = DEFAULT_TIMEOUT_S) -> Place:
    """This process's place in the group torchrun (or any launcher setting RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR and MASTER_PORT) describes; joins it unless a group is initialised."""
    check_backend(backend)
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if not dist.is_initialized() and missing:
        raise ValueError(f"probe-allreduce: not started by torchrun ({', '.join(missing)} not set): start it under "
                         "torchrun, or give --world N to start N processes on this host")
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = rank_device(backend, local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    else:
        rank, world = dist.get_rank(), dist.get_world_size()
    return Place(rank, local_rank, world, device, True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the system's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(args_json: str) -> None:
    """One process of :func:`run_allreduce_probe`: joins the group its environment describes (as
    under torchrun), runs the probe and, on rank 0, pickles the result into the file named."""
    a = json.loads(args_json)
    torch.set_num_threads(a["threads"])
    place = init_from_env(a["backend"], a["timeout_s"])
    try:
        result = allreduce_probe(a["sizes"], a["backend"], place.device, a["warmup"], a["repeats"], a["timeout_s"])
        if place.rank == 0:
            with open(a["result_file"], "wb") as fh:
                pickle.dump(result, fh)
    finally:
        dist.destroy_process_group()


def _last_line(path: str) -> str:
    lines = [line for line in open(path, errors="replace").read().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_allreduce_probe(world: int, sizes_bytes: list[int], backend: str = "gloo", warmup: int = 5,
                        repeats: int = 20, threads: int = 1, timeout_s: int = DEFAULT_TIMEOUT_S) -> AllreduceProbe:
    """Start ``world`` processes on this host, each with ``threads`` torch threads (gloo on the CPU,
    NCCL on GPUs 0..world-1), run :func:`allreduce_probe` in each and return rank 0's result. The
    processes are told their places as torchrun tells its workers (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR=127.0.0.1, MASTER_PORT a free port), so they join the group as under torchrun
    (:func:`init_from_env`). A process that fails stops the others; the error names its rank and last line."""
    if isinstance(world, bool) or not isinstance(world, int) or world < 2:
        raise ValueError(f"world: expected at least 2 processes for an all-reduce, got {world!r}")
    sizes = check_sizes(sizes_bytes)
    check_counts(warmup, repeats)
    check_backend(backend)
    if backend == "nccl" and torch.cuda.device_count() < world:
        raise HardwareError(f"backend nccl with world {world}: expected {world} GPUs on this host, "
                            f"{torch.cuda.device_count()} visible")
    with tempfile.TemporaryDirectory(prefix="liquidbench-allreduce-") as tmp:
        result_file = os.path.join(tmp, "rank0.pickle")
        args = json.dumps({"sizes": sizes, "backend": backend, "warmup": warmup, "repeats": repeats,
                           "threads": threads, "timeout_s": timeout_s, "result_file": result_file})
        port = free_port()
        procs, logs, timed_out = [], [], False
        # the children import this package as this process does, installed or not
        src = str(Path(__file__).resolve().parents[2])
        pythonpath = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
        try:
            for rank in range(world):
                env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "PYTHONPATH": pythonpath}
                logs.append(os.path.join(tmp, f"rank{rank}.log"))
                with open(logs[-1], "wb") as log:
                    procs.append(subprocess.Popen(
                        [sys.executable, "-c", "import sys; from liquidbench.train.probes import _rank_main; "
                                               "_rank_main(sys.argv[1])", args],
                        env=env, stdout=log, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + timeout_s + 60
            while any(p.poll() is None for p in procs):
                failed = [r for r, p in enumerate(procs) if p.returncode not in (None, 0)]
                timed_out = time.monotonic() > deadline
                if failed or timed_out:
                    break
                time.sleep(0.05)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        failed = [r for r, p in enumerate(procs) if p.returncode != 0]
        if timed_out:
            raise RuntimeError(f"all-reduce probe with world {world} ({backend}) did not finish within "
                               f"{timeout_s + 60} s; its processes were stopped")
        if failed:
            detail = "; ".join(f"rank {r} (exit {procs[r].returncode}): {_last_line(logs[r])}" for r in failed)
            raise RuntimeError(f"all-reduce probe with world {world} ({backend}) failed: {detail}")
        with open(result_file, "rb") as fh:
            return pickle.load(fh)


if __name__ == "__main__":  # torchrun ... -m liquidbench.train.probes ARGS: `liquidbench probe-allreduce ARGS`
    from ..cli import main

    sys.exit(main(["probe-allreduce", *sys.argv[1:]]))
