"""ncps vs the fast LTC and CfC: milliseconds per training step and their ratio.

One training step is forward, backward, gradient clipping and an Adam update, on one batch, as
the training loop runs it. Each case is measured twice: with Adam and clipping as torch runs them
by default (``optimizer_impl: default``) and with the study-wide default
``optimizer_impl: fused`` (fused Adam, foreach clipping; liquidbench.train.optim), the same for
ncps's model and the fast one. The
two implementations of a model start from the same weights and are timed interleaved (ncps step,
fast step, ncps step, ...), so that a change in the machine's load hits both alike; the figure is
the median over the timed steps after warm-up steps. One thread. The figures are also written
to ``results/bench/impl.json`` (override with ``LIQUIDBENCH_BENCH_DIR``).

Shapes: ``traffic`` is the study's traffic data set (batch 64, 32 steps, 7 inputs, per-step
regression; the issue's reference shape), ``sine`` the study's sine data set (batch 64, 64 steps,
2 inputs).

Devices: the CPU (one thread), and where torch sees a CUDA GPU also that GPU (the device is
synchronised before every clock reading; there the fast LTC and CfC run their Triton kernels
where Triton is installed, else their torch versions; the compiled C steps are CPU-only). Target:
>= 4x on the CPU (issue 23, on a quiet machine: the load average is printed), >= 10x on one GPU.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import torch

from liquidbench.envinfo import environment
from liquidbench.io import write_json
from liquidbench.models import build_model
from liquidbench.train.optim import adam

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import train_step  # noqa: E402

MODELS = {
    "ltc": {"type": "ltc", "units": 32, "wiring": "fully_connected", "ode_unfolds": 6},
    "cfc": {"type": "cfc", "units": 32, "wiring": "fully_connected", "mode": "default", "backbone_units": 64},
}
SHAPES = {"traffic": (64, 32, 7), "sine": (64, 64, 2)}
IMPLS = ("ncps", "fast")
OPTIMIZER_IMPLS = ("default", "fused")
TARGET = {"cpu": 4.0, "cuda": 10.0}


def _setup(spec: dict, impl: str, x: torch.Tensor, y: torch.Tensor, state: dict | None, optimizer_impl: str):
    torch.manual_seed(0)
    model = build_model({**spec, "impl": impl}, x.shape[-1], y.shape[-1], "regression_per_step").to(x.device)
    if state is not None:
        model.load_state_dict(state)
    opt = adam(model.parameters(), optimizer_impl, lr=1e-3)
    return model, lambda: train_step(model, opt, x, y, optimizer_impl)


def measure(spec: dict, shape: tuple[int, int, int], warmup: int, steps: int,
            device: str = "cpu", optimizer_impl: str = "default") -> dict[str, list[float]]:
    """Interleaved step times (seconds) of each implementation after ``warmup`` steps each."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=gen).to(device)
    y = torch.randn(*shape[:2], 1, generator=gen).to(device)
    ref, ref_step = _setup(spec, "ncps", x, y, None, optimizer_impl)
    runners = {"ncps": ref_step, "fast": _setup(spec, "fast", x, y, ref.state_dict(), optimizer_impl)[1]}
    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for i in range(warmup + steps):
        for impl in IMPLS if i % 2 == 0 else IMPLS[::-1]:
            t = runners[impl]()
            if i >= warmup:
                times[impl].append(t)
    return times


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def main(warmup: int = 5, steps: int = 30) -> list[dict]:
    torch.set_num_threads(1)
    out_dir = Path(os.environ.get("LIQUIDBENCH_BENCH_DIR", "results/bench"))
    rows = []
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {warmup} warm-up + {steps} timed steps, interleaved")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the start")
    print(f"{'device':6} {'model':5} {'shape':8} {'B,T,F':10} {'adam':8} {'ncps ms':>9} {'fast ms':>9} {'ratio':>7}"
          "  target")
    for device in devices():
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        for model, spec in MODELS.items():
            for shape_name, shape in SHAPES.items():
                for optimizer_impl in OPTIMIZER_IMPLS:
                    times = measure(spec, shape, warmup, steps, device, optimizer_impl)
                    med = {impl: 1000 * statistics.median(t) for impl, t in times.items()}
                    ratio = med["ncps"] / med["fast"]
                    for impl in IMPLS:
                        rows.append({
                            "implementation": impl, "model": model, "device": device, "device_name": name,
                            "threads": 1, "shape": shape_name, "batch": shape[0], "steps": shape[1],
                            "features": shape[2], "units": spec["units"], "optimizer_impl": optimizer_impl,
                            "ms_per_step": med[impl], "ratio_to_ncps": med["ncps"] / med[impl],
                            "timed_steps": steps, "warmup_steps": warmup, "load_average_1min": os.getloadavg()[0],
                        })
                    print(f"{device:6} {model:5} {shape_name:8} {','.join(map(str, shape)):10} {optimizer_impl:8} "
                          f"{med['ncps']:9.2f} {med['fast']:9.2f} {ratio:6.2f}x  >= {TARGET[device]:.0f}x",
                          flush=True)
    write_json(out_dir / "impl.json", {"environment": environment(), "rows": rows})
    print(f"wrote {out_dir / 'impl.json'}")
    return rows


if __name__ == "__main__":
    main()
