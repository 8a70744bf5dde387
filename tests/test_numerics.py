"""The numerics policy (TF32, deterministic algorithms) and the kernel path each run records."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from liquidbench.data.sine import prepare
from liquidbench.models import build_model, cfc_kernel, ltc_kernel
from liquidbench.results.provenance import provenance
from liquidbench.train.loop import RunSpec, train
from liquidbench.train.numerics import CUBLAS_WORKSPACE, numerics, state
from liquidbench.train.settings import HARDWARE_DEFAULTS, Hardware


@pytest.fixture(scope="module")
def sine_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sine")
    prepare({"n_sequences": 40, "seq_len": 6, "seed": 0}, d)
    return d


def run(data_dir, out_dir, model=None, **hw):
    model = model or {"type": "cfc", "units": 6, "backbone_units": 8, "impl": "fast"}
    return train(RunSpec(dataset="sine", model=model["type"], hardware="cpu", seed=0, data_dir=data_dir,
                         out_dir=out_dir, model_spec=model, train_params={"epochs": 2, "batch_size": 8},
                         hardware_spec={"device": "cpu", "threads": 1, **hw}))


def test_defaults_are_full_float32_and_not_deterministic():
    assert HARDWARE_DEFAULTS["tf32"] is False and HARDWARE_DEFAULTS["deterministic"] is False
    with pytest.raises(ValueError, match="hardware 'gpu': tf32 must be true or false, got 'yes'"):
        Hardware.from_entry("gpu", {"device": "cuda", "tf32": "yes"})


def test_numerics_applies_the_entry_and_restores_the_previous_settings(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = state()
    with numerics(tf32=False, deterministic=False):
        off = state()
    with numerics(tf32=True, deterministic=True):
        on = state()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert off == {"tf32": False, "fp32_precision": "matmul ieee, cudnn conv ieee, cudnn rnn ieee",
                   "deterministic": False, "cublas_workspace_config": None}
    assert on == {"tf32": True, "fp32_precision": "matmul tf32, cudnn conv tf32, cudnn rnn tf32",
                  "deterministic": True, "cublas_workspace_config": CUBLAS_WORKSPACE}
    assert state() == before and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    # a workspace setting of the user's own is kept, and recorded
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with numerics(tf32=False, deterministic=True):
        assert state()["cublas_workspace_config"] == ":16:8"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_metrics_record_the_numerics_and_determinism_changes_no_cpu_result(sine_dir, tmp_path):
    plain = run(sine_dir, tmp_path / "plain")
    det = run(sine_dir, tmp_path / "det", deterministic=True, tf32=True)
    on_disk = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert (on_disk["env"]["tf32"], on_disk["env"]["deterministic"]) == (False, False)
    assert on_disk["env"]["fp32_precision"] == "matmul ieee, cudnn conv ieee, cudnn rnn ieee"
    assert (det["env"]["tf32"], det["env"]["deterministic"]) == (True, True)
    assert det["env"]["cublas_workspace_config"] is not None
    # TF32 concerns CUDA only, and the CPU kernels used here are deterministic already
    assert det["final_params_sha256"] == plain["final_params_sha256"]
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run
    # the provenance table shows both per hardware entry
    runs = pd.DataFrame([{"hardware": "cpu", "seed": 0, "status": "ok", "env.tf32": m["env"]["tf32"],
                          "env.deterministic": m["env"]["deterministic"]} for m in (plain, det)])
    row = provenance(runs).iloc[0]
    assert (row["TF32"], row["deterministic algorithms"]) == ("False, True", "False, True")


def test_kernel_status_is_the_path_the_calls_took(monkeypatch):
    """A tensor off the CPU takes the torch version (what a GPU run records), and so does a CfC
    with mixed memory, even where the compiled kernels are built."""
    kernel = ltc_kernel.KERNEL
    monkeypatch.setattr(kernel, "paths", {})
    assert not ltc_kernel.usable(torch.zeros(2, device="meta"), torch.zeros(2))
    assert ltc_kernel.status() == "torch: tensors on meta (the compiled kernel runs on the CPU)"
    assert not ltc_kernel.usable(torch.zeros(2, dtype=torch.float64))
    assert ltc_kernel.status().endswith("; torch: not float32 (the compiled kernel takes float32)")
    kernel.reset()
    assert ltc_kernel.usable(torch.zeros(2)) == (ltc_kernel.library() is not None)

    monkeypatch.setattr(cfc_kernel.KERNEL, "paths", {})
    model = build_model({"type": "cfc", "units": 6, "backbone_units": 8, "impl": "fast", "mixed_memory": True},
                        2, 1, "regression_per_step")
    model(torch.randn(3, 4, 2))
    assert cfc_kernel.status() == "torch: mixed memory"


def test_a_run_records_its_own_kernel_path(sine_dir, tmp_path, monkeypatch):
    """Runs in one process: each metrics.json names the path of its own run only."""
    mixed = run(sine_dir, tmp_path / "mixed",
                {"type": "cfc", "units": 6, "backbone_units": 8, "impl": "fast", "mixed_memory": True})
    assert mixed["env"]["cfc_kernel"] == "torch: mixed memory"
    gru = run(sine_dir, tmp_path / "gru", {"type": "gru", "hidden_size": 6})
    assert (gru["env"]["ltc_kernel"], gru["env"]["cfc_kernel"]) == ("not used", "not used")


def test_a_jobs_start_imports_only_what_it_uses():
    """Every job starts a process: building the command line must not import pandas or scipy (the
    results modules), and a run that keeps torch's default determinism must not import torch's
    compiler (torch.use_deterministic_algorithms does, about 1.3 s); asking for determinism still
    sets it."""
    code = """
import sys
import torch
from liquidbench.cli import build_parser
from liquidbench.train.numerics import numerics
build_parser()
with numerics(tf32=False, deterministic=False):
    pass
print(sorted(m for m in ("pandas", "scipy", "torch._inductor", "liquidbench.results.reference") if m in sys.modules))
with numerics(tf32=False, deterministic=True):
    print(torch.are_deterministic_algorithms_enabled())
print(torch.are_deterministic_algorithms_enabled())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["[]", "True", "False"], proc.stdout
