"""`liquidbench gpu-check`: stops at once without a GPU; its decisions and report on given figures
(in the shapes the GPU runs produce: metrics.json's telemetry block, per-step times)."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import tool_env
from liquidbench.gpucheck import (Check, build_report, decide_equality, decide_nvml, decide_run, decide_step_times,
                                  decide_tests, driver_problem, driver_version, gpu_check)
from liquidbench.train.errors import HardwareError

GPU_BLOCK = {"util_mean_pct": 41.5, "util_max_pct": 87.0, "mem_used_peak_mb": 1210.0, "power_mean_w": 96.4,
             "energy_j": 212.7, "energy_per_epoch_j": 70.9, "energy_source": "counter", "sm_clock_mean_mhz": 1410.0,
             "temp_max_c": 47.0, "n_gpus": 1, "torch_max_memory_allocated_mb": 38.2}
RUN = {"status": "ok", "device": "cuda", "world_size": 1, "backend": None, "step_time_median_s": 0.0123,
       "env": {"ltc_kernel": "not used", "cfc_kernel": "torch: tensors on cuda (the compiled kernel runs on the CPU)"}}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_stops_at_once_without_a_gpu_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "liquidbench.cli", "gpu-check", "--out", str(tmp_path / "gc")],
                          capture_output=True, text=True, env=tool_env(), timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpu-check: no CUDA GPU is visible" in lines[0] and "run it on a GPU node" in lines[0]
    assert not (tmp_path / "gc").exists()  # nothing written


class DriverOnlyNvml:
    """NVML as a node answers it whose driver loads but whose GPU torch cannot use: the driver's
    version string, as nvidia-ml-py returns it (bytes in some versions)."""

    def __init__(self, version):
        self.version = version

    def nvmlInit(self):
        if self.version is None:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlSystemGetDriverVersion(self):
        return self.version


def test_driver_too_old_for_the_cuda_build_is_named():
    # recorded driver versions: a common cluster driver (CUDA 12.4 era), the first of CUDA 13.0's, CUDA 12.0's
    assert driver_problem("550.54.15", "13.0") == (
        "gpu-check: NVIDIA driver 550.54.15 is too old for this torch's CUDA 13.0 (needs driver 580 or later): "
        "update the driver, or use an image built for an older CUDA "
        "(docs/containers.md: make image TORCH_INDEX=https://download.pytorch.org/whl/cu126)")
    assert driver_problem("580.65.06", "13.0") is None
    assert driver_problem("550.54.15", "12.6") is None  # 12.x runs on 525.60.13 and later
    assert driver_problem("525.60.11", "12.1") is not None
    assert driver_problem("470.256.02", "12.6").startswith("gpu-check: NVIDIA driver 470.256.02 is too old")
    for unknown in ((None, "13.0"), ("550.54.15", None), ("unknown", "13.0"), ("550.54.15", "99.0")):
        assert driver_problem(*unknown) is None, unknown


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
@pytest.mark.parametrize("driver, line", [
    (b"550.54.15", "gpu-check: NVIDIA driver 550.54.15 is too old for this torch's CUDA"),
    ("580.82.07", "gpu-check: no CUDA GPU is visible (torch"),
    (None, "NVIDIA driver not found): run it on a GPU node"),
])
def test_no_gpu_line_names_the_driver(tmp_path, monkeypatch, driver, line):
    """gpu-check on recorded NVML answers, with torch's CUDA build that of the cuda image (this
    machine's CPU torch has none)."""
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    nvml = DriverOnlyNvml(driver)
    assert driver_version(nvml) == (driver.decode() if isinstance(driver, bytes) else driver)
    with pytest.raises(HardwareError) as err:
        gpu_check(tmp_path / "gc", tmp_path, nvml=nvml)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and line in message, message
    if driver == "580.82.07":
        assert "CUDA build 13.0, NVIDIA driver 580.82.07" in message
    assert not (tmp_path / "gc").exists()


def test_nvml_decisions():
    util, energy, memory = decide_nvml(GPU_BLOCK, None)
    assert (util.passed, util.figure) == (True, 87.0)
    assert (energy.passed, energy.figure) == (True, 212.7)
    assert memory.passed and memory.detail == "torch peak allocation 38.2 MiB"
    idle = decide_nvml({**GPU_BLOCK, "util_max_pct": 0.0}, None)[0]
    assert idle.passed is False
    integrated = decide_nvml({**GPU_BLOCK, "energy_source": "power_integral"}, None)[1]
    assert integrated.passed is False and integrated.detail == "source power_integral"  # the counter did not count
    short = decide_nvml({**GPU_BLOCK, "mem_used_peak_mb": 30.0}, None)[2]
    assert short.passed is False  # NVML cannot see less than torch allocated: wrong device
    none = decide_nvml(None, "no NVML device has the UUID of CUDA device 0 (x); not reading another device's counters")
    assert [c.passed for c in none] == [False] * 3 and "no NVML device has the UUID" in none[0].detail


def test_step_time_decision_at_the_10_percent_bound():
    host = [0.0100, 0.0102, 0.0101, 0.0100, 0.0103]
    near = decide_step_times([0.0095, 0.0097, 0.0096, 0.0096, 0.0098], host)
    assert near.passed and near.figure == pytest.approx(abs(0.0096 - 0.0101) / 0.0101)
    far = decide_step_times([0.0085, 0.0086, 0.0087, 0.0088, 0.0089], host)
    assert not far.passed and far.figure == pytest.approx((0.0101 - 0.0087) / 0.0101)


def test_run_equality_and_test_decisions():
    assert decide_run("gpu cfc_fast", RUN).passed
    compiled = decide_run("gpu cfc_fast", {**RUN, "env": {**RUN["env"], "cfc_kernel": "compiled"}})
    assert not compiled.passed and compiled.detail == "env.cfc_kernel 'compiled'"
    cpu = decide_run("gpu lstm", {**RUN, "device": "cpu", "status": "diverged"})
    assert cpu.detail == "status diverged; device cpu"
    failed = decide_run("ddp-1gpu cfc_fast", None, "Traceback ...\nRuntimeError: NCCL error: unhandled system error\n")
    assert not failed.passed and failed.detail == "RuntimeError: NCCL error: unhandled system error"
    assert decide_equality(3e-6).passed and not decide_equality(2e-4).passed
    assert decide_tests(0, "12 passed in 30.1s").passed
    assert decide_tests(None, "no tests/ here").passed is None


def test_report_lists_versions_and_every_check(tmp_path):
    facts = {"device": "NVIDIA A100-SXM4-40GB", "driver": "550.54.15", "cuda": "12.8", "torch": "2.13.0",
             "triton": "3.7.1", "nccl": "2.27.3"}
    checks = [decide_tests(0, "12 passed"), decide_run("gpu cfc_fast", RUN), *decide_nvml(GPU_BLOCK, None),
              Check("training run ddp-2gpu cfc_fast", None, detail="one GPU visible")]
    report, md = build_report(facts, checks)
    assert report["verdict"] == "pass"  # a check that did not run does not fail the node
    assert report["driver"] == "550.54.15" and len(report["checks"]) == 6
    assert json.loads(json.dumps(report)) == report
    assert md.startswith("# GPU check: pass\n")
    assert "- triton: 3.7.1" in md and "| training run ddp-2gpu cfc_fast | not run |  | one GPU visible |" in md
    assert "| NVML energy counter increases | pass | 212.7 J | source counter |" in md
    failing, md = build_report(facts, checks + [decide_equality(1e-3)])
    assert failing["verdict"] == "fail" and "| fast vs ncps on CUDA | FAIL | 0.001 max abs difference |" in md


def _step_probe(c0: float, c1: float) -> dict:
    """A probe-step JSON's points timed exactly c0 + c1 b (jitter of 1e-7 s around it)."""
    points = [{"batch": b, "samples_s": [c0 + c1 * b + d for d in (-1e-7, 0.0, 0.0, 1e-7, 0.0, 0.0)]}
              for b in (1, 2, 4, 8, 16, 32, 64)]
    return {"model_spec": {"type": "cfc"}, "points": points}


def test_scaling_probe_decisions():
    """gpu-check fits the scaling model's probes as the model does: c0 + c1 b from the CUDA step
    probe, alpha-beta from NCCL's all-reduce sweep; a probe that failed or a fit below zero fails."""
    from liquidbench.gpucheck import decide_allreduce_probe, decide_step_probe

    step = decide_step_probe(_step_probe(2e-3, 1e-5))
    assert step.passed and step.figure == pytest.approx(2e-3, rel=1e-3) and "c1 = 1e-05 s/sample" in step.detail
    launched = decide_step_probe(_step_probe(-5e-4, 1e-3))  # an overhead below zero: not the model's shape
    assert launched.passed is False and "c0 = " in launched.detail and "below 0" in launched.detail
    assert decide_step_probe(None, "Traceback\nRuntimeError: CUDA error: out of memory\n").detail.startswith(
        "RuntimeError: CUDA error")
    sizes = [4096 * 2 ** k for k in range(6)]
    alpha, beta = 20e-6, 1 / 50e9  # ring, n = 2: t = 2 alpha + m beta
    nccl = {"world": 2, "points": [{"size_bytes": m, "samples_s": [2 * alpha + m * beta] * 6} for m in sizes]}
    fit = decide_allreduce_probe(nccl)
    assert fit.passed and fit.figure == pytest.approx(alpha, rel=1e-6) and "(50 GB/s)" in fit.detail
    assert decide_allreduce_probe(None).passed is None  # one GPU: not run, and said so
    assert decide_allreduce_probe(None, "NCCL error: unhandled system error").passed is False
