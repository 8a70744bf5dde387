"""`liquidbench gpu-check` (`make gpu-check`): one command that proves a GPU node, offline, in a few
minutes on one GPU, from the repository root or inside the image.

It runs: the suite's GPU tests (where tests/ exists); a tiny study with the ``gpu`` and
``ddp-1gpu`` (NCCL) configurations, and a 2-process NCCL run when two GPUs are visible; the fast
LTC and CfC against ncps on CUDA; NVML sanity on the ``gpu`` run (utilisation above 0 during
training, the energy counter increasing, memory used at least torch's peak allocation); CUDA-event
step times against host-clock times with the device synchronised; the scaling model's probes (a
step probe on CUDA, and NCCL's all-reduce sweep where two GPUs are visible), fitted as the model
fits them, so that the first GPU run gives the model its costs (``probes/``). It writes
``results/gpu-check/report.json`` and ``report.md``: device, driver, CUDA, torch, triton and NCCL
versions, and each check's figure and verdict. Without a GPU it stops at once with one line; where
the node has an NVIDIA driver too old for the CUDA that torch was built with, that line says so.

The decisions (``decide_*``) and the report are pure functions of the figures, tested on the CPU
with recorded ones (tests/test_gpu_check.py); the measuring functions need a GPU.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from .io import write_json, write_text
from .train.errors import HardwareError

STEP_TIME_TOLERANCE = 0.10  # CUDA-event step times within 10 % of the synchronised host clock
EQUALITY_TOLERANCE = 1e-5  # fast vs ncps on CUDA in float32, as on the CPU (tests/test_fast_impl.py)
GPU_TESTS = ["tests/test_hardware.py::test_cuda_configuration_trains_on_the_gpu",
             "tests/test_no_host_sync.py::test_no_host_read_inside_a_cuda_epoch"]  # the suite's tests that need a GPU
SINE = {"n_sequences": 256, "seq_len": 32, "seed": 0}
TRAIN = {"epochs": 3, "batch_size": 32}
MODELS = {"cfc_fast": {"type": "cfc", "units": 16, "backbone_units": 32, "impl": "fast"},
          "ltc_fast": {"type": "ltc", "units": 16, "ode_unfolds": 3, "impl": "fast"},
          "lstm": {"type": "lstm", "hidden_size": 32}}
HARDWARE = {
    "gpu": {"device": "cuda", "threads": 4, "telemetry_interval_s": 0.05},
    "ddp-1gpu": {"device": "cuda", "threads": 4, "backend": "nccl", "telemetry_interval_s": 0.05},
    "ddp-2gpu": {"device": "cuda", "threads": 4, "nproc_per_node": 2, "backend": "nccl", "scaling": "weak",
                 "telemetry_interval_s": 0.05},
}


# The oldest Linux driver each CUDA major version runs on (NVIDIA's CUDA toolkit release notes,
# "CUDA Toolkit and Minimum Required Driver Version": minor-version compatibility within a major).
MIN_DRIVER = {11: (450, 80, 2), 12: (525, 60, 13), 13: (580, 65, 6)}


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``passed`` is None when it did not run (``detail`` says why)."""

    name: str
    passed: bool | None
    figure: float | str | None = None
    unit: str = ""
    detail: str = ""


# ---- decisions on measured figures (pure) ----

def decide_tests(returncode: int | None, summary: str) -> Check:
    if returncode is None:
        return Check("suite's GPU tests", None, detail=summary)
    return Check("suite's GPU tests", returncode == 0, summary, "", "pytest " + ("passed" if returncode == 0 else "failed"))


def decide_run(name: str, metrics: dict | None, error: str = "") -> Check:
    """A training run on CUDA: finished, on the GPU, with the torch paths of the fast models."""
    if metrics is None:
        return Check(f"training run {name}", False, detail=error.strip().splitlines()[-1] if error.strip() else "no metrics.json")
    problems = []
    if metrics.get("status") != "ok":
        problems.append(f"status {metrics.get('status')}")
    if metrics.get("device") != "cuda":
        problems.append(f"device {metrics.get('device')}")
    for key in ("ltc_kernel", "cfc_kernel"):
        path = metrics.get("env", {}).get(key, "")
        if path not in ("not used",) and not path.startswith("torch: tensors on cuda"):
            problems.append(f"env.{key} '{path}'")
    return Check(f"training run {name}", not problems, metrics.get("step_time_median_s"), "s median step",
                 "; ".join(problems) or f"world {metrics.get('world_size')}, backend {metrics.get('backend')}")


def decide_equality(max_abs_diff: float, tolerance: float = EQUALITY_TOLERANCE) -> Check:
    return Check("fast vs ncps on CUDA", max_abs_diff <= tolerance, max_abs_diff, "max abs difference",
                 f"outputs and gradients, tolerance {tolerance:g}")


def decide_nvml(gpu: dict | None, reason: str | None) -> list[Check]:
    """NVML sanity from a run's telemetry ``gpu`` block."""
    names = ["NVML utilisation during training", "NVML energy counter increases", "NVML memory >= torch peak"]
    if not gpu or not gpu.get("n_gpus"):
        return [Check(n, False, detail=f"no NVML samples: {reason or 'unknown reason'}") for n in names]
    util, energy = gpu.get("util_max_pct"), gpu.get("energy_j")
    mem, peak = gpu.get("mem_used_peak_mb"), gpu.get("torch_max_memory_allocated_mb")
    return [
        Check(names[0], util is not None and util > 0, util, "% max"),
        Check(names[1], energy is not None and energy > 0 and gpu.get("energy_source") == "counter", energy, "J",
              f"source {gpu.get('energy_source')}"),
        Check(names[2], mem is not None and peak is not None and mem >= peak, mem, "MiB used",
              f"torch peak allocation {peak} MiB"),
    ]


def decide_step_times(event_s: list[float], host_s: list[float], tolerance: float = STEP_TIME_TOLERANCE) -> Check:
    """Median CUDA-event step time against the median host-clock time of the same steps."""
    ev, host = statistics.median(event_s), statistics.median(host_s)
    rel = abs(ev - host) / host
    return Check("CUDA-event vs host step time", rel <= tolerance, rel, "relative difference",
                 f"medians over {len(event_s)} steps: events {ev * 1e3:.3f} ms, host {host * 1e3:.3f} ms; "
                 f"tolerance {tolerance:.0%}")


def decide_step_probe(probe: dict | None, error: str = "") -> Check:
    """The scaling model's compute fit from a CUDA step probe (probe-step JSON): c0 + c1 b fits
    (liquidbench.results.scaling_model.fit_compute)."""
    from .results.scaling_model import fit_compute

    name = "step probe on CUDA (c0 + c1 b)"
    if probe is None:
        return Check(name, False, detail=error.strip().splitlines()[-1] if error.strip() else "no probe written")
    fit = fit_compute([p["batch"] for p in probe["points"]], [p["samples_s"] for p in probe["points"]],
                      where=f"gpu-check {probe['model_spec'].get('type')}")
    detail = (f"c1 = {fit.c1.value:.3g} s/sample [{fit.c1.low:.3g}, {fit.c1.high:.3g}], R^2 {fit.r2:.3f}, "
              f"batches {probe['points'][0]['batch']}-{probe['points'][-1]['batch']}")
    return Check(name, fit.ok, fit.c0.value, "s per step (c0)", detail if fit.ok else fit.reason)


def decide_allreduce_probe(probe: dict | None, error: str = "") -> Check:
    """The scaling model's all-reduce fit from an NCCL probe (probe-allreduce JSON): latency and
    bandwidth (liquidbench.results.scaling_model.fit_allreduce); not run with one GPU."""
    from .results.scaling_model import fit_allreduce

    name = "NCCL all-reduce (alpha-beta)"
    if probe is None:
        return Check(name, None if not error else False, detail=error.strip().splitlines()[-1] if error.strip()
                     else "one GPU visible: an all-reduce needs two")
    rows = [(probe["world"], p["size_bytes"], p["samples_s"]) for p in probe["points"]]
    fit = fit_allreduce(rows, where=f"gpu-check nccl world {probe['world']}")
    if not fit.ok:
        return Check(name, False, detail=fit.reason)
    ab = fit.model
    gbps = 1 / ab.beta.value / 1e9 if ab.beta.value > 0 else float("inf")
    return Check(name, True, ab.alpha.value, "s latency (alpha)",
                 f"{ab.form}: beta {ab.beta.value:.3g} s/byte ({gbps:.3g} GB/s), world {probe['world']}")


def build_report(facts: dict, checks: list[Check]) -> tuple[dict, str]:
    """report.json's content and report.md's text."""
    ran = [c for c in checks if c.passed is not None]
    verdict = "pass" if ran and all(c.passed for c in ran) else "fail"
    report = {"verdict": verdict, **facts, "checks": [asdict(c) for c in checks]}
    lines = [f"# GPU check: {verdict}", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += ["", "| check | result | figure | detail |", "|---|---|---|---|"]
    for c in checks:
        result = "not run" if c.passed is None else ("pass" if c.passed else "FAIL")
        figure = "" if c.figure is None else (f"{c.figure:.4g} {c.unit}" if isinstance(c.figure, float) else f"{c.figure} {c.unit}")
        lines.append(f"| {c.name} | {result} | {figure.strip()} | {c.detail} |")
    return report, "\n".join(lines) + "\n"


def driver_problem(driver: str | None, cuda: str | None) -> str | None:
    """One line when the NVIDIA driver ``driver`` (NVML's version string, e.g. "550.54.15") is too old
    for torch's CUDA ``cuda`` (e.g. "13.0"); None when it is new enough or either is unknown."""
    if not driver or not cuda:
        return None
    try:
        have = tuple(int(part) for part in driver.split("."))
        major = int(cuda.split(".")[0])
    except ValueError:
        return None
    need = MIN_DRIVER.get(major)
    if need is None or have >= need:
        return None
    return (f"gpu-check: NVIDIA driver {driver} is too old for this torch's CUDA {cuda} (needs driver "
            f"{need[0]} or later): update the driver, or use an image built for an older CUDA "
            f"(docs/containers.md: make image TORCH_INDEX=https://download.pytorch.org/whl/cu126)")


def no_gpu_message(torch_version: str, cuda: str | None, driver: str | None) -> str:
    """The one line gpu-check stops with when torch sees no CUDA device."""
    return driver_problem(driver, cuda) or (
        f"gpu-check: no CUDA GPU is visible (torch {torch_version}, CUDA build {cuda or 'none'}, NVIDIA driver "
        f"{driver or 'not found'}): run it on a GPU node, in the cuda image")


# ---- measuring (needs a GPU) ----

def driver_version(nvml=None) -> str | None:
    """The node's NVIDIA driver version from NVML (``nvml`` defaults to the pynvml module; tests pass
    recorded ones), or None where there is no NVML or no driver."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return None
    try:
        nvml.nvmlInit()
        version = nvml.nvmlSystemGetDriverVersion()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    return version.decode() if isinstance(version, bytes) else version


def versions() -> dict:
    import torch

    driver = driver_version() or "unknown (NVML cannot read it)"  # reported, not fatal: the NVML checks say more
    try:
        triton = metadata.version("triton")
    except metadata.PackageNotFoundError:
        triton = None
    nccl = torch.cuda.nccl.version() if torch.distributed.is_nccl_available() else None
    return {"device": torch.cuda.get_device_name(0), "gpus_visible": torch.cuda.device_count(), "driver": driver,
            "cuda": torch.version.cuda, "torch": torch.__version__, "triton": triton,
            "nccl": ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl,
            "image_variant": os.environ.get("LIQUIDBENCH_IMAGE_VARIANT")}


def run_tests(repo: Path) -> Check:
    if not (repo / "tests").is_dir():
        return decide_tests(None, f"no tests/ under {repo} (inside the image): run from the repository root")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    return decide_tests(proc.returncode, tail)


def train_run(data: Path, out: Path, hardware: str, model: str) -> tuple[dict | None, str]:
    hw = HARDWARE[hardware]
    cmd = [sys.executable, "-m", "liquidbench.cli", "train", "--data", str(data), "--dataset", "sine", "--model",
           model, "--model-params", json.dumps(MODELS[model]), "--hardware", hardware, "--hardware-params",
           json.dumps(hw), "--train-params", json.dumps(TRAIN), "--seed", "0", "--out", str(out)]
    if hw.get("nproc_per_node", 1) > 1:
        cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nnodes=1",
               f"--nproc_per_node={hw['nproc_per_node']}", "-m"] + cmd[2:]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    path = out / "metrics.json"
    return (json.loads(path.read_text()) if proc.returncode == 0 and path.exists() else None), proc.stderr


def measure_equality() -> float:
    """Largest absolute difference of outputs and gradients, fast vs ncps, on CUDA."""
    import torch

    from .models import build_model

    worst = 0.0
    for spec in ({"type": "ltc", "units": 12, "ode_unfolds": 4}, {"type": "cfc", "units": 12, "backbone_units": 16}):
        for elapsed in (None, torch.rand(8, 10, device="cuda") + 0.1):
            torch.manual_seed(0)
            ref = build_model({**spec, "impl": "ncps"}, 3, 2, "regression_per_step").cuda()
            fast = build_model({**spec, "impl": "fast"}, 3, 2, "regression_per_step").cuda()
            fast.load_state_dict(ref.state_dict())
            x = torch.randn(8, 10, 3, device="cuda")
            outs = []
            for model in (ref, fast):
                out = model(x, elapsed)
                grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
                outs.append([out.detach()] + list(grads))
            worst = max(worst, max(float((a - b).abs().max()) for a, b in zip(*outs)))
    return worst


def measure_step_times(steps: int = 30) -> tuple[list[float], list[float]]:
    """Per step: CUDA-event time and host-clock time with the device synchronised before and after."""
    import torch

    from .models import build_model
    from .train.tasks import loss_fn

    torch.manual_seed(0)
    model = build_model(MODELS["cfc_fast"], 2, 1, "regression_per_step").cuda()
    opt = torch.optim.Adam(model.parameters())
    x, y = torch.randn(64, 32, 2, device="cuda"), torch.randn(64, 32, 1, device="cuda")
    events, host = [], []
    for k in range(steps + 5):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start.record()
        loss = loss_fn("regression_per_step", model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stop.record()
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        if k >= 5:  # warm-up steps left out
            events.append(start.elapsed_time(stop) / 1000)
            host.append(t1 - t0)
    return events, host


def probe(kind: str, out: Path, *args: str) -> tuple[dict | None, str]:
    """``liquidbench probe-step`` or ``probe-allreduce`` (``kind``) in a subprocess: its JSON, or None and its stderr."""
    proc = subprocess.run([sys.executable, "-m", "liquidbench.cli", f"probe-{kind}", *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    return (json.loads(out.read_text()) if proc.returncode == 0 and out.exists() else None), proc.stderr


def gpu_check(out_dir: Path, repo: Path, nvml=None) -> dict:
    """Run every check and write the report; returns report.json's content. ``nvml`` defaults to the
    pynvml module (tests pass recorded ones)."""
    import torch

    if not torch.cuda.is_available():
        raise HardwareError(no_gpu_message(torch.__version__, torch.version.cuda, driver_version(nvml)))
    from .data.sine import prepare

    facts = versions()
    work = out_dir / "runs"
    data = work / "sine"
    prepare(SINE, data)
    checks = [run_tests(repo)]
    hardware = ["gpu", "ddp-1gpu"] + (["ddp-2gpu"] if torch.cuda.device_count() >= 2 else [])
    gpu_metrics = None
    for hw in hardware:
        for model in MODELS if hw == "gpu" else ["cfc_fast"]:
            metrics, err = train_run(data, work / hw / model, hw, model)
            checks.append(decide_run(f"{hw} {model}", metrics, err))
            if hw == "gpu" and model == "cfc_fast":
                gpu_metrics = metrics
    if torch.cuda.device_count() < 2:
        checks.append(Check("training run ddp-2gpu cfc_fast", None, detail="one GPU visible"))
    checks.append(decide_equality(measure_equality()))
    telemetry = (gpu_metrics or {}).get("telemetry", {})
    checks += decide_nvml(telemetry.get("gpu"), telemetry.get("gpu_reason"))
    checks.append(decide_step_times(*measure_step_times()))
    # the scaling model's probes on this node (docs/statistics.md, "Scaling model"): step time against
    # the batch on CUDA, and NCCL's all-reduce against the message size where two GPUs are visible
    probes = out_dir / "probes"
    probes.mkdir(parents=True, exist_ok=True)
    checks.append(decide_step_probe(*probe("step", probes / "step_cfc_fast.json", "--model-params",
                                           json.dumps(MODELS["cfc_fast"]), "--features", "2", "--outputs", "1",
                                           "--task", "regression_per_step", "--seq-len", "32", "--batches",
                                           "1,2,4,8,16,32,64", "--device", "cuda", "--threads", "4")))
    if torch.cuda.device_count() >= 2:
        checks.append(decide_allreduce_probe(*probe("allreduce", probes / "allreduce_nccl.json", "--world", "2",
                                                    "--backend", "nccl")))
    else:
        checks.append(decide_allreduce_probe(None))
    report, md = build_report(facts, checks)
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", md)
    return report
