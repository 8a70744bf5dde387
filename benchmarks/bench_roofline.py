"""The fast LTC and CfC against ncps and against a floor from their arithmetic, over the shape grid.

For every shape and cell variant of ``liquidbench.models.grid`` (``SHAPES`` x ``VARIANTS``), ncps's
model and the fast one are built from the same weights (seed 0, ncps's state dict loaded into the
fast model) and measured on one batch (inputs and targets from seed 1, a per-step regression with one
output, as the study's traffic data set):

* **equality**: one forward and backward of each from the same weights, before any update: the
  largest ``|fast - ncps|`` of the outputs and of all parameter gradients (printed; the two must agree
  within 1e-4, flagged ``DIFF`` where they do not);
* **time**: after warm-up steps (not timed), repetitions interleaved (ncps, fast, then fast, ncps,
  ...), so that a change in the machine's load hits both alike; each repetition times, per
  implementation, the forward alone (model and loss, with autograd recording, as in training), the
  backward alone (``loss.backward()``, gradients zeroed beforehand, untimed) and then a whole
  training step as ``bench_step.train_step`` runs it (forward, backward, gradient clipping, Adam;
  ``optimizer_impl`` the study's default). Figures are medians over the repetitions;
* **peak memory per step**: one training step of each after warm-up. On the CPU: the growth of the
  process's peak resident set over the resident set at the step's start (the peak ``VmHWM`` reset
  through ``/proc/self/clear_refs`` and freed heap memory given back with ``malloc_trim`` just before;
  it counts every allocation, torch's and the compiled kernels' alike, including the gradients, which
  ``zero_grad`` frees); on CUDA ``torch.cuda.max_memory_allocated`` over ``memory_allocated`` at the
  step's start.

The clock is read with ``time.perf_counter`` after synchronising the device (CUDA). One thread
(``torch.set_num_threads(1)``). The step's CPU time on this thread (``time.thread_time``) is kept
beside it in the JSON, and the run prints the share of its wall time the process had a CPU: on a
shared machine the wall times include waiting for other work, and that share says how much.

**Floor.** ``liquidbench.models.cost`` counts one training step's matrix-product flops, other
(elementwise) flops and transcendental evaluations from the shape alone (what the step needs, the
same for both implementations). This machine's rates are measured in the same run, on one thread:
the FMA rate from a float32 ``torch.mm`` of 1024 x 1024 by 1024 x 1024 (cuBLAS at 4096 on CUDA), the
elementwise rate from ``torch.addcmul`` (a multiply-add, 2 flops per element) and each
transcendental's rate from ``torch.exp``, ``sigmoid``, ``tanh`` and ``softplus``, over a vector of
2^16 floats (it fits the L2 cache; 2^24 on CUDA), median of several timings each, before the grid
(the floor's) and again after it (printed, to show how they drifted with the load). One core does the
three kinds of work in sequence, and no flop runs faster than the FMA rate, so the floor is::

    floor = (product flops + elementwise flops) / FMA rate
            + sum over functions of evaluations / that function's rate

(each function at its own rate: the LTC's are sigmoids, the CfC's mostly tanh). "bound by" names
the largest of the three terms (product, elementwise, transcendental). Each implementation's step
time is given as a multiple of the floor. The elementwise rate of torch's own kernels on a vector in
cache (``addcmul``) is printed beside the rates for reference, not used: a kernel that keeps its
values in registers does elementwise work faster than that (the compiled LTC step did, by up to a
quarter), so it is no bound; the FMA rate is.

**Targets** (issue 34, printed beside the figures as met/missed, never asserted): the fast LTC >= 4x
ncps's speed; the fast CfC >= 2x where batch <= 64 and >= 1.5x above; where batch >= 64 each fast
cell within 2.5x of its floor.

**Run time.** Repetitions are fewer for the big shapes: each point gets as many as fit
``LIQUIDBENCH_ROOFLINE_POINT_S`` seconds of timed work (estimated from its last warm-up step), at
least ``MIN_REPEATS`` (or the maximum, where that is lower) and at most the maximum; the count is
printed per point. The whole grid (35 points) took 209 s on one core of the project's 2-core CPU
machine (AMD EPYC) while a study ran on it (the process had a CPU 91 % of that time), so the
repetitions need no further cut to stay under 10 minutes.

Output: a table (and the rates, load average, versions), ``results/bench/roofline.json`` and the
figure ``roofline.png`` beside it (time / floor per shape, a panel per variant, log scale); the
directory is ``LIQUIDBENCH_BENCH_DIR`` where set. On CUDA (``torch.cuda.is_available()``) the same
again on the GPU (the fast cells take their Triton kernels where Triton is installed).

Environment knobs (for a quick run):

* ``LIQUIDBENCH_ROOFLINE_SHAPES``: comma-separated shape labels (``BxTxIxU``, e.g.
  ``64x32x7x32,1x128x4x16``); default all of the grid;
* ``LIQUIDBENCH_ROOFLINE_VARIANTS``: comma-separated variant names or families (``ltc``, ``cfc``);
  default all;
* ``LIQUIDBENCH_ROOFLINE_REPEATS``: the most timed repetitions per point (default 25);
* ``LIQUIDBENCH_ROOFLINE_WARMUP``: warm-up steps per implementation (default 3);
* ``LIQUIDBENCH_ROOFLINE_POINT_S``: seconds of timed work a point aims at (default 8).
"""

# no `from __future__ import annotations`: benchmarks/run.py loads this file without registering it in
# sys.modules, where dataclasses would look string annotations up
import ctypes
import gc
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from liquidbench.envinfo import environment
from liquidbench.io import atomic_path, write_json
from liquidbench.models import build_model
from liquidbench.models.cost import StepCost, Work, step_cost
from liquidbench.models.grid import SHAPES, VARIANTS, Shape, Variant
from liquidbench.train.optim import adam
from liquidbench.train.settings import TRAINING_DEFAULTS
from liquidbench.train.tasks import loss_fn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import train_step  # noqa: E402

TASK = "regression_per_step"
OUTPUTS = 1
IMPLS = ("ncps", "fast")
MIN_REPEATS = 5
TOLERANCE = 1e-4
SPEED_TARGET = {"ltc": lambda batch: 4.0, "cfc": lambda batch: 2.0 if batch <= 64 else 1.5}
FLOOR_TARGET, FLOOR_TARGET_MIN_BATCH = 2.5, 64
TRANSCENDENTALS = ("exp", "sigmoid", "tanh", "softplus")


@dataclass(frozen=True)
class Settings:
    """What to run: the grid's points, repetitions (most, least), warm-up steps, seconds of timed work
    a point aims at, the output directory and the optimiser's implementation."""

    shapes: tuple[Shape, ...]
    variants: tuple[Variant, ...]
    repeats: int = 25
    min_repeats: int = MIN_REPEATS
    warmup: int = 3
    point_s: float = 8.0
    out_dir: Path = Path("results/bench")
    optimizer_impl: str = TRAINING_DEFAULTS["optimizer_impl"]

    @classmethod
    def from_env(cls, env=os.environ) -> "Settings":
        shapes = _pick("LIQUIDBENCH_ROOFLINE_SHAPES", env, {s.label: (s,) for s in SHAPES})
        variants = _pick("LIQUIDBENCH_ROOFLINE_VARIANTS", env,
                         {**{v.name: (v,) for vs in VARIANTS.values() for v in vs}, **VARIANTS})
        repeats = _positive_int("LIQUIDBENCH_ROOFLINE_REPEATS", env, 25)
        return cls(shapes=shapes, variants=variants, repeats=repeats, min_repeats=min(MIN_REPEATS, repeats),
                   warmup=_positive_int("LIQUIDBENCH_ROOFLINE_WARMUP", env, 3),
                   point_s=float(_positive_int("LIQUIDBENCH_ROOFLINE_POINT_S", env, 8)),
                   out_dir=Path(env.get("LIQUIDBENCH_BENCH_DIR", "results/bench")))


def _pick(name: str, env, choices: dict) -> tuple:
    """The items an environment variable names (comma-separated keys of ``choices``), all where unset."""
    raw = env.get(name, "").strip()
    keys = [k.strip() for k in raw.split(",") if k.strip()] or list(choices)
    picked = []
    for key in keys:
        if key not in choices:
            raise ValueError(f"{name}: '{key}' is not in the grid, expected some of {sorted(choices)}")
        picked.extend(item for item in choices[key] if item not in picked)  # (variants are unhashable)
    return tuple(picked)


def _positive_int(name: str, env, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a positive integer, got '{raw}'")
    return int(raw)


# ----------------------------------------------------------------------------------------------
# rates


@dataclass(frozen=True)
class Rates:
    """This machine's rates on one thread: ``fma`` and ``elementwise`` in flop/s, the transcendental
    functions in evaluations/s; how they were measured."""

    device: str
    fma: float
    elementwise: float
    exp: float
    sigmoid: float
    tanh: float
    softplus: float
    how: str

    def transcendental(self, name: str) -> float:
        return getattr(self, name)


def _median_seconds(fn: Callable[[], object], sync: Callable[[], None], inner: int, repeats: int = 7) -> float:
    """Median over ``repeats`` timings of ``inner`` calls of ``fn`` (after one untimed call), per call."""
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def measure_rates(device: str) -> Rates:
    """The FMA rate (float32 matrix product), the elementwise rate (vector multiply-add) and each
    transcendental's rate (vector ``exp``, ``sigmoid``, ``tanh``, ``softplus``) on ``device``."""
    sync = _sync(device)
    cuda = device == "cuda"
    n_mm, n_vec = (4096, 2**24) if cuda else (1024, 2**16)
    gen = torch.Generator().manual_seed(2)
    a, b = (torch.randn(n_mm, n_mm, generator=gen).to(device) for _ in range(2))
    c = torch.empty_like(a)
    fma = 2 * n_mm**3 / _median_seconds(lambda: torch.mm(a, b, out=c), sync, inner=1 if not cuda else 5)
    x, y, z = (torch.randn(n_vec, generator=gen).to(device) for _ in range(3))
    out = torch.empty_like(x)
    inner = 20 if cuda else 100  # a vector call takes 10-200 us on the CPU: 100 of them per timing
    elementwise = 2 * n_vec / _median_seconds(lambda: torch.addcmul(z, x, y, out=out), sync, inner)
    funcs = {"exp": lambda: torch.exp(x, out=out), "sigmoid": lambda: torch.sigmoid(x, out=out),
             "tanh": lambda: torch.tanh(x, out=out), "softplus": lambda: F.softplus(x)}
    trans = {name: n_vec / _median_seconds(fn, sync, inner) for name, fn in funcs.items()}
    lib = "cuBLAS" if cuda else "torch.mm"
    how = (f"{lib} float32 {n_mm}^3 (TF32 {'on' if cuda and torch.backends.cuda.matmul.allow_tf32 else 'off'}); "
           f"vectors of {n_vec} float32: addcmul, exp, sigmoid, tanh, softplus; median of 7 timings")
    return Rates(device=device, fma=fma, elementwise=elementwise, how=how, **trans)


# ----------------------------------------------------------------------------------------------
# floor


@dataclass(frozen=True)
class Floor:
    """Seconds of each kind of work at this machine's rates, and their sum (module docstring)."""

    product_s: float
    elementwise_s: float
    transcendental_s: float

    @property
    def seconds(self) -> float:
        return self.product_s + self.elementwise_s + self.transcendental_s

    @property
    def bound_by(self) -> str:
        terms = {"product": self.product_s, "elementwise": self.elementwise_s, "transcendental": self.transcendental_s}
        return max(terms, key=terms.get)


def floor(work: Work, rates: Rates) -> Floor:
    return Floor(product_s=work.product / rates.fma, elementwise_s=work.elementwise / rates.fma,
                 transcendental_s=sum(getattr(work, name) / rates.transcendental(name) for name in TRANSCENDENTALS))


# ----------------------------------------------------------------------------------------------
# one point


@dataclass(frozen=True)
class Timing:
    """One implementation at one point: medians (ms) of forward, backward and the training step (and
    of the step's CPU time of this thread: on a loaded CPU the part of the step this thread ran), the
    samples of each, and the peak memory of a step (MB; None where it cannot be measured)."""

    forward_ms: float
    backward_ms: float
    step_ms: float
    step_cpu_ms: float
    peak_mb: float | None
    samples_ms: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    device: str
    shape: Shape
    variant: Variant
    repeats: int
    timings: dict  # impl -> Timing
    output_diff: float
    grad_diff: float
    cost: StepCost
    floors: dict  # "forward", "backward" (with the weight gradients), "step" -> Floor

    @property
    def family(self) -> str:
        return self.variant.spec["type"]

    @property
    def speedup(self) -> float:
        return self.timings["ncps"].step_ms / self.timings["fast"].step_ms

    def of_floor(self, impl: str) -> float:
        return self.timings[impl].step_ms / (1000 * self.floors["step"].seconds)

    @property
    def speed_target(self) -> float:
        return SPEED_TARGET[self.family](self.shape.batch)

    @property
    def floor_target(self) -> float | None:
        return FLOOR_TARGET if self.shape.batch >= FLOOR_TARGET_MIN_BATCH else None

    @property
    def equal(self) -> bool:
        return self.output_diff <= TOLERANCE and self.grad_diff <= TOLERANCE

    def as_dict(self) -> dict:
        met = lambda ok: "met" if ok else "missed"  # noqa: E731
        return {
            "device": self.device, "shape": self.shape.label, "batch": self.shape.batch, "steps": self.shape.steps,
            "inputs": self.shape.inputs, "units": self.shape.units, "variant": self.variant.name,
            "spec": self.variant.spec, "repeats": self.repeats,
            "timings": {impl: asdict(t) for impl, t in self.timings.items()},
            "speedup": self.speedup, "floor_ms": {k: 1000 * f.seconds for k, f in self.floors.items()},
            "floor_terms_ms": {k: {"product": 1000 * f.product_s, "elementwise": 1000 * f.elementwise_s,
                                   "transcendental": 1000 * f.transcendental_s} for k, f in self.floors.items()},
            "bound_by": self.floors["step"].bound_by,
            "of_floor": {impl: self.of_floor(impl) for impl in IMPLS},
            "max_abs_diff": {"outputs": self.output_diff, "gradients": self.grad_diff, "tolerance": TOLERANCE},
            "cost": self.cost.as_dict(),
            "targets": {"speedup": self.speed_target, "speedup_met": met(self.speedup >= self.speed_target),
                        "fast_of_floor": self.floor_target,
                        "fast_of_floor_met": (None if self.floor_target is None
                                              else met(self.of_floor("fast") <= self.floor_target))},
        }


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _build(spec: dict, shape: Shape, impl: str, device: str, state: dict | None, optimizer_impl: str):
    torch.manual_seed(0)
    model = build_model({**spec, "units": shape.units, "impl": impl}, shape.inputs, OUTPUTS, TASK).to(device)
    if state is not None:
        model.load_state_dict(state)
    return model, adam(model.parameters(), optimizer_impl, lr=1e-3)


def _batch(shape: Shape, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape.batch, shape.steps, shape.inputs, generator=gen)
    y = torch.randn(shape.batch, shape.steps, OUTPUTS, generator=gen)
    return x.to(device), y.to(device)


def differences(models: dict, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(max |fast - ncps| of the outputs, of all parameter gradients) of one forward and backward each;
    a gradient one side has and the other lacks counts against zero."""
    outputs, grads = {}, {}
    for impl, model in models.items():
        model.zero_grad(set_to_none=True)
        out = model(x)
        loss_fn(TASK, out, y).backward()
        outputs[impl] = out.detach()
        grads[impl] = {name: p.grad.detach() for name, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
    out_diff = (outputs["fast"] - outputs["ncps"]).abs().max().item()
    grad_diff = 0.0
    for name in grads["ncps"].keys() | grads["fast"].keys():
        a, b = grads["ncps"].get(name), grads["fast"].get(name)
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        grad_diff = max(grad_diff, (a - b).abs().max().item())
    return out_diff, grad_diff


def _forward_backward(model, opt, x, y, sync) -> tuple[float, float]:
    """Seconds of the forward (model and loss) and of the backward, gradients zeroed untimed before."""
    opt.zero_grad()
    sync()
    t0 = time.perf_counter()
    loss = loss_fn(TASK, model(x), y)
    sync()
    t1 = time.perf_counter()
    loss.backward()
    sync()
    return t1 - t0, time.perf_counter() - t1


_LIBC = None


def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc's malloc_trim), where there is glibc."""
    global _LIBC
    try:
        _LIBC = _LIBC or ctypes.CDLL("libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


def peak_memory_mb(step: Callable[[], object], device: str) -> float | None:
    """The peak memory ``step()`` adds (MB; module docstring for how), None where it cannot be measured."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        _trim_heap()
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set to the current one
        base = _status_kb("VmRSS")
        step()
        return (_status_kb("VmHWM") - base) / 1024
    except OSError:
        return None


def _repeats(settings: Settings, last_round_s: float) -> int:
    """Timed repetitions for a point whose warm-up round (both implementations' forward, backward and
    step) took ``last_round_s``: as many as fit ``settings.point_s``, within the settings' bounds."""
    fit = int(settings.point_s / max(last_round_s, 1e-9))
    return max(settings.min_repeats, min(settings.repeats, fit))


def measure_point(shape: Shape, variant: Variant, settings: Settings, rates: Rates) -> Point:
    device = rates.device
    sync = _sync(device)
    x, y = _batch(shape, device)
    ncps, ncps_opt = _build(variant.spec, shape, "ncps", device, None, settings.optimizer_impl)
    fast, fast_opt = _build(variant.spec, shape, "fast", device, ncps.state_dict(), settings.optimizer_impl)
    models, opts = {"ncps": ncps, "fast": fast}, {"ncps": ncps_opt, "fast": fast_opt}
    out_diff, grad_diff = differences(models, x, y)

    def one_round(order) -> dict:
        """Per implementation in ``order``: forward and backward, then (in the same order) a step."""
        got = {impl: {} for impl in order}
        for impl in order:
            got[impl]["forward"], got[impl]["backward"] = _forward_backward(models[impl], opts[impl], x, y, sync)
        for impl in order:
            cpu = time.thread_time()
            got[impl]["step"] = train_step(models[impl], opts[impl], x, y, settings.optimizer_impl)
            got[impl]["step_cpu"] = time.thread_time() - cpu
        return got

    gc.collect()
    last = None
    for i in range(max(settings.warmup, 1)):
        last = one_round(IMPLS if i % 2 == 0 else IMPLS[::-1])
    repeats = _repeats(settings, sum(r["forward"] + r["backward"] + r["step"] for r in last.values()))
    peaks = {impl: peak_memory_mb(lambda: train_step(models[impl], opts[impl], x, y, settings.optimizer_impl),
                                  device) for impl in IMPLS}
    samples = {impl: {"forward": [], "backward": [], "step": [], "step_cpu": []} for impl in IMPLS}
    for i in range(repeats):
        got = one_round(IMPLS if i % 2 == 0 else IMPLS[::-1])
        for impl, parts in got.items():
            for part, seconds in parts.items():
                samples[impl][part].append(1000 * seconds)
    timings = {impl: Timing(forward_ms=statistics.median(s["forward"]), backward_ms=statistics.median(s["backward"]),
                            step_ms=statistics.median(s["step"]), step_cpu_ms=statistics.median(s["step_cpu"]),
                            peak_mb=peaks[impl],
                            samples_ms={k: [round(v, 4) for v in vals] for k, vals in s.items()})
               for impl, s in samples.items()}
    cost = step_cost({**variant.spec, "units": shape.units}, batch=shape.batch, steps=shape.steps,
                     inputs=shape.inputs, outputs=OUTPUTS)
    floors = {"forward": floor(cost.forward, rates), "backward": floor(cost.backward + cost.weight_grads, rates),
              "step": floor(cost.total, rates)}
    return Point(device=device, shape=shape, variant=variant, repeats=repeats, timings=timings,
                 output_diff=out_diff, grad_diff=grad_diff, cost=cost, floors=floors)


# ----------------------------------------------------------------------------------------------
# output

HEADER = (f"{'shape':15} {'variant':26} {'reps':>4} {'fast ms':>9} {'ncps ms':>9} {'speedup':>7} {'floor ms':>9} "
          f"{'fast/fl':>7} {'ncps/fl':>7} {'bound by':14} {'speedup target':19} {'floor target':16} "
          f"{'fwd ms f/n':>15} {'bwd ms f/n':>15} {'peak MB f/n':>13} {'|d out|':>8} {'|d grad|':>8}")


def row(p: Point) -> str:
    f, n = p.timings["fast"], p.timings["ncps"]
    speed = f">= {p.speed_target:.1f}x {'met' if p.speedup >= p.speed_target else 'missed'}"
    if p.floor_target is None:
        floor_t = "-"
    else:
        floor_t = f"<= {p.floor_target:.1f}x {'met' if p.of_floor('fast') <= p.floor_target else 'missed'}"
    mem = "-" if f.peak_mb is None or n.peak_mb is None else f"{f.peak_mb:.1f}/{n.peak_mb:.1f}"
    flag = "" if p.equal else "  DIFF"
    return (f"{p.shape.label:15} {p.variant.name:26} {p.repeats:4d} {f.step_ms:9.2f} {n.step_ms:9.2f} "
            f"{p.speedup:6.2f}x {1000 * p.floors['step'].seconds:9.3f} {p.of_floor('fast'):7.2f} "
            f"{p.of_floor('ncps'):7.2f} {p.floors['step'].bound_by:14} {speed:19} {floor_t:16} "
            f"{f'{f.forward_ms:.2f}/{n.forward_ms:.2f}':>15} {f'{f.backward_ms:.2f}/{n.backward_ms:.2f}':>15} "
            f"{mem:>13} {p.output_diff:8.1e} {p.grad_diff:8.1e}{flag}")


def print_rates(rates: Rates, how: bool = True) -> None:
    g = 1e9
    print(f"rates ({rates.device}, one thread): FMA {rates.fma / g:.1f} GFLOP/s, "
          f"(torch's vector multiply-add {rates.elementwise / g:.2f} GFLOP/s, not in the floor), exp {rates.exp / g:.3f}, sigmoid {rates.sigmoid / g:.3f}, "
          f"tanh {rates.tanh / g:.3f}, softplus {rates.softplus / g:.3f} G evaluations/s "
          "(each function at its own rate in the floor; elementwise flops at the FMA rate)")
    if how:
        print(f"  measured with {rates.how}")


def write_figure(points: list[Point], path: Path) -> None:
    """Time / floor of the fast and ncps step per shape, a panel per variant (a row per device), log y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(dict.fromkeys(p.device for p in points))
    variants = list(dict.fromkeys(p.variant.name for p in points))
    fig, axes = plt.subplots(len(devices), len(variants), figsize=(3.6 * len(variants), 3.8 * len(devices)),
                             squeeze=False, sharey=True)
    for r, device in enumerate(devices):
        for c, name in enumerate(variants):
            ax = axes[r][c]
            mine = [p for p in points if p.device == device and p.variant.name == name]
            xs = range(len(mine))
            for impl, marker, face in (("fast", "o", None), ("ncps", "s", "none")):  # ncps hollow: both show
                ax.plot(xs, [p.of_floor(impl) for p in mine], marker=marker, mfc=face, ls="", label=impl)
            ax.axhline(1.0, color="black", lw=0.8)
            ax.axhline(FLOOR_TARGET, color="grey", lw=0.8, ls="--", label=f"target {FLOOR_TARGET}x (batch >= 64)")
            ax.set_yscale("log")
            ax.set_xticks(list(xs), [p.shape.label for p in mine], rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{name} ({device})", fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
            if c == 0:
                ax.set_ylabel("step time / floor")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def main() -> list[dict]:
    settings = Settings.from_env()
    torch.set_num_threads(1)
    start, cpu_start, load_start = time.perf_counter(), time.process_time(), os.getloadavg()
    env = environment()
    print(f"torch {env['torch']}, ncps {env['ncps']}, python {env['python']}, cpu {env['cpu_model']}, "
          f"threads {torch.get_num_threads()}, commit {env['git_commit'][:12]}")
    print(f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} (1, 5, 15 min) at the start")
    print(f"{len(settings.shapes)} shapes x {len(settings.variants)} variants; {settings.warmup} warm-up rounds; "
          f"{settings.min_repeats}-{settings.repeats} timed repetitions per point (about {settings.point_s:.0f} s "
          f"of timed work each: fewer for big shapes), interleaved; optimizer_impl {settings.optimizer_impl}; "
          "times are medians, ms per training step")
    points, all_rates, rates_after = [], [], []
    for device in devices():
        rates = measure_rates(device)
        all_rates.append(rates)
        name = torch.cuda.get_device_name() if device == "cuda" else env["cpu_model"]
        print(f"== {device} ({name})")
        print_rates(rates)
        print(HEADER)
        for shape in settings.shapes:
            for variant in settings.variants:
                point = measure_point(shape, variant, settings, rates)
                points.append(point)
                print(row(point), flush=True)
        rates_after.append(measure_rates(device))
        print("after the grid:", end=" ")
        print_rates(rates_after[-1], how=False)
    wall_s, load_end = time.perf_counter() - start, os.getloadavg()
    cpu_share = (time.process_time() - cpu_start) / wall_s
    unequal = [p for p in points if not p.equal]
    print(f"fast == ncps within {TOLERANCE:g} (outputs and gradients) at {len(points) - len(unequal)} of "
          f"{len(points)} points" + (": DIFF at " + ", ".join(f"{p.shape.label} {p.variant.name}" for p in unequal)
                                     if unequal else ""))
    print(f"load average {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} at the end; wall time {wall_s:.0f} s, "
          f"of which this process ran {100 * cpu_share:.0f} % (CPU time / wall time: where well under 100 %, it "
          "waited for the machine's other work and the figures are slower than a quiet machine's)")
    env = environment()  # now with the fast paths this run took
    print(f"fast paths: {env['fast_paths']}; ltc_kernel {env['ltc_kernel']}; cfc_kernel {env['cfc_kernel']}")
    rows = [p.as_dict() for p in points]
    out = settings.out_dir / "roofline.json"
    write_json(out, {
        "environment": env, "threads": torch.get_num_threads(), "rates": [asdict(r) for r in all_rates],
        "rates_after": [asdict(r) for r in rates_after], "cpu_share": cpu_share,
        "settings": {"repeats": settings.repeats, "min_repeats": settings.min_repeats, "warmup": settings.warmup,
                     "point_s": settings.point_s, "optimizer_impl": settings.optimizer_impl,
                     "shapes": [s.label for s in settings.shapes], "variants": [v.name for v in settings.variants]},
        "load_average": {"start": list(load_start), "end": list(load_end)}, "wall_s": wall_s,
        "memory": "CPU: growth of the peak resident set (VmHWM) over the step's start; CUDA: max_memory_allocated",
        "rows": rows,
    })
    if points:
        write_figure(points, settings.out_dir / "roofline.png")
    print(f"wrote {out} and {settings.out_dir / 'roofline.png'}")
    return rows


if __name__ == "__main__":
    main()
