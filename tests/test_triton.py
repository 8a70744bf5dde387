"""The fast CfC's Triton kernels (its CUDA path), checked without a GPU: run by Triton's
interpreter (``TRITON_INTERPRET=1``, CPU tensors) against ncps, and compiled ahead of time for
sm_80 and sm_90 with the ptxas that the Triton wheel ships, checking its register spills."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import missing_part, tool_env


def require_triton():
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        missing_part("Triton kernels", f"triton is not installed ({exc}): pip install -c constraints.txt triton")


# Runs in a fresh interpreter, since TRITON_INTERPRET is read when the kernels are defined.
INTERPRETED = r"""
import json, random, sys, torch
from ncps import torch as nt
from ncps.wirings import AutoNCP
from liquidbench import fast
from liquidbench.models import cfc_fast, ltc_fast

kind = sys.argv[1]
calls = []
for module in (cfc_fast.cfc_triton, ltc_fast.ltc_triton):
    real = module.forward
    module.forward = lambda *a, real=real: calls.append(a[0] if isinstance(a[0], str) else "ltc") or real(*a)
worst, cases = 0.0, []
for seed in range(6):
    rng = random.Random(seed)
    units, bsz, steps, feats = rng.randint(3, 19), rng.randint(1, 18), rng.randint(1, 5), rng.randint(1, 4)
    if kind == "CfC":
        mode, width, layers = ["default", "no_gate", "pure"][seed % 3], rng.randint(3, 21), 1 + seed % 3
        case = dict(mode=mode, units=units, width=width, layers=layers)
        kw, wiring = dict(mode=mode, backbone_units=width, backbone_layers=layers), None
    else:  # every other LTC on an AutoNCP wiring (sparse synapses), 1 to 6 unfolds
        units, unfolds = max(units, 6), 1 + seed
        wiring = rng.randint(1, units - 4) if seed % 2 else None
        case = dict(units=units, unfolds=unfolds, motor=wiring)
        kw = dict(ode_unfolds=unfolds)
    models = []
    for cls in (getattr(nt, kind), getattr(fast, kind)):
        torch.manual_seed(seed)
        models.append(cls(feats, units if wiring is None else AutoNCP(units, wiring, seed=seed), **kw))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(bsz, steps, feats, generator=gen)
    h0 = torch.randn(bsz, units, generator=gen)
    ts = torch.rand(bsz, steps, generator=gen) * 2 + 0.1
    for irregular in (False, True):
        results = []
        for m in models:
            h = h0.clone().requires_grad_()
            if irregular:  # ncps takes per-sample times one sample at a time (see interface.py)
                outs = [m(x[b:b + 1], h[b:b + 1], ts[b:b + 1]) for b in range(bsz)]
                out, hn = torch.cat([o for o, _ in outs]), torch.cat([s for _, s in outs])
            else:
                out, hn = m(x, h)
            w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
            ((out * w).sum() + hn.sum()).backward()
            results.append([out.detach(), h.grad] + [p.grad.clone() for p in m.parameters() if p.requires_grad])
            m.zero_grad()
        for a, b in zip(*results, strict=True):  # torch.testing's measure: |a - b| <= atol + rtol |b|
            worst = max(worst, ((a - b).abs() - 1e-5 * b.abs()).max().item())
        cases.append(dict(case, batch=bsz, steps=steps, irregular=irregular))
print(json.dumps({"worst": worst, "calls": calls, "cases": cases}))
"""


def interpreted(kind: str) -> dict:
    require_triton()
    env = {**tool_env(), "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", INTERPRETED, kind], capture_output=True, text=True, env=env,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["worst"] <= 1e-5, result  # rtol = atol = 1e-5
    return result


def test_interpreted_cfc_kernels_match_ncps():
    """Outputs, every parameter's gradient and the initial state's, within 1e-5 of ncps: every
    mode, one to three backbone layers, units and widths that are not powers of two, batches
    that do not fill a block, regular and irregular elapsed times."""
    result = interpreted("CfC")
    # the Triton path ran for every check: one forward call a model run
    runs = sum(c["batch"] if c["irregular"] else 1 for c in result["cases"])
    assert len(result["calls"]) == runs and "ltc" not in result["calls"]
    assert {c["mode"] for c in result["cases"]} == {"default", "no_gate", "pure"}
    assert {c["layers"] for c in result["cases"]} == {1, 2, 3}


def test_interpreted_ltc_kernels_match_ncps():
    """The same for the LTC: 1 to 6 unfolds, fully connected and AutoNCP (sparse) wirings, units
    that are not powers of two, regular and irregular elapsed times."""
    result = interpreted("LTC")
    # one call a step of every model run
    runs = sum(c["steps"] * (c["batch"] if c["irregular"] else 1) for c in result["cases"])
    assert result["calls"] == ["ltc"] * runs
    assert {c["motor"] is None for c in result["cases"]} == {True, False}


FORWARD = ["pre0", "ts", "h0", "w0t", "hwt", "hb", "wht", "bh", "wtau", "amp", "out", "tanhs", "aux"]
BACKWARD = ["grad", "ts", "w0h", "hw", "wh", "wtau", "amp", "tanhs", "aux", "g_pre0", "g_hid", "g_heads", "g_wtau",
            "g_amp", "g_h0"]


def compile_ahead(kernel, pointers, constexprs, capability, ints="TBUKL", module=None):
    """(cubin bytes, ptxas's resource report) of one kernel for sm_<capability>, without a GPU,
    with the warps its module launches it with."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from liquidbench.models import cfc_triton

    signature = {**{name: "*fp32" for name in pointers}, **{name: "i32" for name in ints},
                 **{name: "constexpr" for name in constexprs}}
    warps = (module or cfc_triton).NUM_WARPS
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs),
                              target=GPUTarget("cuda", capability, 32), options={"num_warps": warps})
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    arch = f"sm_{capability}a" if capability >= 90 else f"sm_{capability}"
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "kernel.ptx"
        ptx.write_text(compiled.asm["ptx"])
        report = subprocess.run([str(ptxas), "-v", f"--gpu-name={arch}", str(ptx), "-o", os.devnull],
                                capture_output=True, text=True, check=True).stderr
    return compiled.asm["cubin"], report


def spill_bytes(report: str) -> int:
    """Spill stores plus loads in ptxas -v's report."""
    import re

    return sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", report))


# the study's shape (32 units, backbone 64: blocks of 32 and 64) and a small one
SHAPES = [{"BU": 32, "BK": 64}, {"BU": 16, "BK": 16}]


@pytest.mark.parametrize("capability", [80, 90])
@pytest.mark.parametrize("mode", [0, 2], ids=["default", "pure"])
def test_backward_kernel_compiles_for_sm80_and_sm90_without_spills(capability, mode):
    require_triton()
    from liquidbench.models import cfc_triton

    for shape in SHAPES:
        constexprs = {"MODE": mode, "HAS_TS": True, "BB": cfc_triton.BB, **shape}
        cubin, report = compile_ahead(cfc_triton.cfc_backward_kernel, BACKWARD, constexprs, capability)
        assert len(cubin) > 1000 and "cfc_backward_kernel" in report
        assert spill_bytes(report) == 0, report


@pytest.mark.parametrize("capability", [80, 90])
def test_forward_kernel_compiles_for_sm80_and_sm90_without_spills(capability):
    require_triton()
    from liquidbench.models import cfc_triton

    for mode in (0, 1, 2):
        for shape in SHAPES:
            constexprs = {"MODE": mode, "HAS_TS": True, "HAS_H0": True, "BB": cfc_triton.BB, **shape}
            cubin, report = compile_ahead(cfc_triton.cfc_forward_kernel, FORWARD, constexprs, capability)
            assert len(cubin) > 1000 and "cfc_forward_kernel" in report
            assert spill_bytes(report) == 0, report


LTC_FORWARD = ["v0", "nc", "dt", "cm", "sig", "nsm", "we", "w", "vs", "dens"]
LTC_BACKWARD = ["g", "vs", "dens", "cm", "sig", "nsm", "mu", "we", "w", "g_n", "g_d", "g_cm", "g_sig", "g_mu", "g_we",
                "g_w"]


@pytest.mark.parametrize("capability", [80, 90])
def test_ltc_kernels_compile_for_sm80_and_sm90_without_spills(capability):
    require_triton()
    from liquidbench.models import ltc_triton

    for kernel, pointers in ((ltc_triton.ltc_forward_kernel, LTC_FORWARD),
                             (ltc_triton.ltc_backward_kernel, LTC_BACKWARD)):
        for units in (16, 32):  # blocks of the study's 32 units and of fewer
            constexprs = {"BB": ltc_triton.BB, "BU": units}
            cubin, report = compile_ahead(kernel, pointers, constexprs, capability, ints="BUK", module=ltc_triton)
            assert len(cubin) > 1000 and kernel.__name__ in report
            assert spill_bytes(report) == 0, report


def test_triton_path_is_chosen_under_the_interpreter_and_falls_back_when_disabled(monkeypatch):
    """paths.choose takes Triton for float32 tensors on the kernels' device (CUDA; the CPU under the
    interpreter, as here), and the next path where Triton is disabled or the dtype is not float32."""
    import torch

    from liquidbench.models import cfc_triton, paths

    require_triton()
    x = torch.zeros(2)
    assert cfc_triton.available() is None
    monkeypatch.setattr(cfc_triton, "interpreted", lambda: False)  # CPU tensors: not Triton's device
    assert paths.choose("cfc", x) != "triton"
    monkeypatch.setattr(cfc_triton, "interpreted", lambda: True)
    assert paths.choose("cfc", x) == "triton"
    assert paths.choose("cfc", x, x.double()) == "torch"
    assert paths.choose("ltc", x) == "triton"
    monkeypatch.setenv("LIQUIDBENCH_TRITON", "0")
    assert cfc_triton.available() == "disabled by LIQUIDBENCH_TRITON=0"
    assert paths.choose("cfc", x) != "triton"


def test_metrics_env_records_the_paths_the_fast_models_took(monkeypatch):
    import shutil

    import torch

    from liquidbench import envinfo, fast
    from liquidbench.models import cfc_triton, paths

    monkeypatch.setattr(paths, "_TAKEN", {})
    assert envinfo.fast_paths() == "not used"
    monkeypatch.setattr(cfc_triton, "interpreted", lambda: False)
    torch.manual_seed(0)
    fast.CfC(2, 4, backbone_units=5)(torch.randn(1, 2, 2))
    fast.LTC(2, 4).double()(torch.randn(1, 2, 2, dtype=torch.float64))
    compiled = "compiled" if shutil.which("cc") or shutil.which("gcc") else "torch"
    assert envinfo.fast_paths() == f"cfc: {compiled}; ltc: torch"
    assert envinfo.environment()["fast_paths"] == envinfo.fast_paths()  # metrics.json's env.fast_paths
