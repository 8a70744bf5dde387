"""The fast LTC's and CfC's Triton kernels (their CUDA path), checked without a GPU: run by Triton's
interpreter (``TRITON_INTERPRET=1``, CPU tensors) against ncps, and compiled ahead of time for
sm_80 and sm_90 with the ptxas that the Triton wheel ships, checking its register spills."""

import json
import re
import subprocess
import sys

import pytest

import ahead_of_time
from conftest import missing_part, tool_env

from liquidbench.models import cfc_triton, grid, ltc_triton


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


def interpreted(interpreter_runs, test: str) -> dict:
    result = interpreter_runs(test)
    assert result["worst"] <= 1e-5, result  # rtol = atol = 1e-5
    return result


def test_interpreted_cfc_kernels_match_ncps(interpreter_runs):
    """Outputs, every parameter's gradient and the initial state's, within 1e-5 of ncps: every
    mode, one to three backbone layers, units and widths that are not powers of two, batches
    that do not fill a block, regular and irregular elapsed times."""
    result = interpreted(interpreter_runs, "test_interpreted_cfc_kernels_match_ncps")
    # the Triton path ran for every check: one forward call a model run
    runs = sum(c["batch"] if c["irregular"] else 1 for c in result["cases"])
    assert len(result["calls"]) == runs and "ltc" not in result["calls"]
    assert {c["mode"] for c in result["cases"]} == {"default", "no_gate", "pure"}
    assert {c["layers"] for c in result["cases"]} == {1, 2, 3}


def test_interpreted_ltc_kernels_match_ncps(interpreter_runs):
    """The same for the LTC: 1 to 6 unfolds, fully connected and AutoNCP (sparse) wirings, units
    that are not powers of two, regular and irregular elapsed times."""
    result = interpreted(interpreter_runs, "test_interpreted_ltc_kernels_match_ncps")
    # one call a step of every model run
    runs = sum(c["steps"] * (c["batch"] if c["irregular"] else 1) for c in result["cases"])
    assert result["calls"] == ["ltc"] * runs
    assert {c["motor"] is None for c in result["cases"]} == {True, False}


# The tiled kernels forced at widths that the resident ones take, with tiles smaller still: every
# loop over tiles runs several times, its last tile partly masked (CfC: 20 units in tiles of 16,
# a backbone of 40 in tiles of 16; LTC: 10 units in tiles of 4).
TILED = r"""
import dataclasses, json, torch
from ncps import torch as nt
from liquidbench import fast
from liquidbench.models import cfc_triton, ltc_triton

tiled = []
for module, tiles in ((cfc_triton, dict(tu=16, tk=16)), (ltc_triton, dict(tile=4))):
    def blocks(*widths, real=module.blocks, tiles=tiles, **kw):
        b = dataclasses.replace(real(*widths, **kw), **tiles)
        tiled.append(b.tiled)
        return b
    module.blocks = blocks
worst, cases = 0.0, []
for seed, (kind, units, kw) in enumerate([
        ("CfC", 20, dict(mode="default", backbone_units=40, backbone_layers=1)),
        ("CfC", 20, dict(mode="no_gate", backbone_units=40, backbone_layers=2)),
        ("CfC", 20, dict(mode="pure", backbone_units=40, backbone_layers=3)),
        ("LTC", 10, dict(ode_unfolds=3))]):
    models = []
    for cls in (getattr(nt, kind), getattr(fast, kind)):
        torch.manual_seed(seed)
        models.append(cls(3, units, **kw))
    gen = torch.Generator().manual_seed(seed)
    bsz, steps = 3, 3
    x, h0 = torch.randn(bsz, steps, 3, generator=gen), torch.randn(bsz, units, generator=gen)
    ts = torch.rand(bsz, steps, generator=gen) * 2 + 0.1
    for irregular in (False, True) if kind == "CfC" else (False,):  # the LTC's kernels take no times
        results = []
        for m in models:
            h = h0.clone().requires_grad_()
            if irregular:
                outs = [m(x[b:b + 1], h[b:b + 1], ts[b:b + 1]) for b in range(bsz)]
                out, hn = torch.cat([o for o, _ in outs]), torch.cat([s for _, s in outs])
            else:
                out, hn = m(x, h)
            w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
            ((out * w).sum() + hn.sum()).backward()
            results.append([out.detach(), h.grad] + [p.grad.clone() for p in m.parameters() if p.requires_grad])
        for a, b in zip(*results, strict=True):
            worst = max(worst, ((a - b).abs() - 1e-5 * b.abs()).max().item())
        cases.append(dict(kind=kind, irregular=irregular, **kw))
print(json.dumps({"worst": worst, "tiled": tiled, "cases": cases}))
"""


# test -> the script (and its argument) it runs under the interpreter
INTERPRETER_RUNS = {"test_interpreted_cfc_kernels_match_ncps": (INTERPRETED, "CfC"),
                    "test_interpreted_ltc_kernels_match_ncps": (INTERPRETED, "LTC"),
                    "test_interpreted_tiled_kernels_match_ncps": (TILED,)}


@pytest.fixture(scope="module")
def interpreter_runs(request, tmp_path_factory):
    """The interpreter runs of the tests this session runs, started together (each is one process
    of several seconds on one core): ``interpreter_runs(test)`` waits for that test's and returns
    the JSON it printed."""
    require_triton()
    env = {**tool_env(), "TRITON_INTERPRET": "1"}
    tmp = tmp_path_factory.mktemp("interpreted")
    procs = {}
    for test in {item.originalname for item in request.session.items
                 if item.module is sys.modules[__name__] and item.originalname in INTERPRETER_RUNS}:
        with open(tmp / f"{test}.out", "w") as out, open(tmp / f"{test}.err", "w") as err:
            procs[test] = subprocess.Popen([sys.executable, "-c", *INTERPRETER_RUNS[test]], stdout=out, stderr=err,
                                           text=True, env=env)

    def result(test: str) -> dict:
        assert procs[test].wait(timeout=900) == 0, (tmp / f"{test}.err").read_text()[-3000:]
        return json.loads((tmp / f"{test}.out").read_text().strip().splitlines()[-1])

    yield result
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_interpreted_tiled_kernels_match_ncps(interpreter_runs):
    """The tiled kernels (the wide widths' path) against ncps within 1e-5, outputs, the initial
    state's and every parameter's gradient, at a tiny shape with several tiles a width: every
    CfC mode, one to three backbone layers, regular and irregular times; the LTC."""
    result = interpreted(interpreter_runs, "test_interpreted_tiled_kernels_match_ncps")
    assert result["tiled"] and all(result["tiled"]), result  # every launch took the tiled kernels
    assert len(result["cases"]) == 7


def spill_bytes(report: str) -> int:
    """Spill stores plus loads in ptxas -v's report."""
    return sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", report))


def _powers(low: int, high: int) -> list[int]:
    return [1 << n for n in range(low.bit_length() - 1, high.bit_length())]


CAPABILITIES = (80, 90)
MODES = ("default", "no_gate", "pure")
# every units value of the grid with each backbone width of its CfC variants (the tiled kernels
# take them); and every block the resident kernels take (units 16 and 32, backbone 16 to 64: the
# study's 32 and 64 among them), so that every width takes blocks compiled here
CFC_RESIDENT = [(units, width) for units in _powers(16, cfc_triton.RESIDENT_UNITS)
                for width in _powers(16, cfc_triton.RESIDENT_WIDTH)]
CFC_WIDTHS = [(units, width) for units in grid.UNITS for width in grid.BACKBONE_UNITS] + CFC_RESIDENT
# Both capabilities for the grid's widths, the study's block (32 x 64), the smallest and the one where
# 8 warps spilled on sm_80 only (16 x 32); the other resident blocks on sm_90 alone (the suite's time:
# each block is 12 compilations per capability)
BOTH = {(units, width) for units, width in CFC_WIDTHS if (units, width) not in CFC_RESIDENT} | {(32, 64), (16, 16),
                                                                                             (16, 32)}
CFC_CASES = [pytest.param(kernel, mode, steps, units, width, cap,
                          id=f"cfc_{kernel}-{mode}-{steps}-units{units}-backbone{width}-sm{cap}")
             for kernel in ("forward", "backward") for mode in MODES for steps in ("regular", "irregular")
             for units, width in CFC_WIDTHS for cap in CAPABILITIES if cap == 90 or (units, width) in BOTH]
LTC_CASES = [pytest.param(kernel, units, cap, id=f"ltc_{kernel}-units{units}-sm{cap}")
             for kernel in ("forward", "backward") for units in grid.UNITS for cap in CAPABILITIES]


def cfc_key(kernel, mode, steps, units, width, capability) -> tuple:
    """The compiled kernel of one CfC case: the kernel that :func:`cfc_triton.blocks` picks for these
    widths, with its blocks, warps and stages (the launches' own choice)."""
    from liquidbench.models import cfc_kernel

    b = cfc_triton.blocks(units, width, backward=kernel == "backward")
    forward, backward = cfc_triton.kernels(b)
    constexprs = {"MODE": cfc_kernel.MODES[mode], "HAS_TS": steps == "irregular", **b.constexprs}
    if kernel == "forward" and not b.tiled:
        constexprs["HAS_H0"] = True
    return ahead_of_time.key(forward if kernel == "forward" else backward, constexprs, capability, b.options)


def ltc_key(kernel, units, capability) -> tuple:
    b = ltc_triton.blocks(units)
    forward, backward = ltc_triton.kernels(b)
    return ahead_of_time.key(forward if kernel == "forward" else backward, b.constexprs, capability, b.options)


KEYS = {"test_cfc_kernels_compile_without_spills_at_every_grid_width": cfc_key,
        "test_ltc_kernels_compile_without_spills_at_every_grid_width": ltc_key}


@pytest.fixture(scope="module")
def compiled(request):
    """key -> (cubin bytes, ptxas's report) for every case of the compile tests that this session
    runs, compiled once each (widths that take the same blocks share one), in parallel."""
    require_triton()
    keys = [KEYS[item.originalname](**item.callspec.params) for item in request.session.items
            if item.module is sys.modules[__name__] and item.originalname in KEYS]
    return ahead_of_time.compile_all(keys)


def assert_clean(compiled, key):
    size, report = compiled[key]
    assert size > 1000 and key[1] in report  # the kernel's name
    assert spill_bytes(report) == 0, report


@pytest.mark.parametrize("kernel, mode, steps, units, width, capability", CFC_CASES)
def test_cfc_kernels_compile_without_spills_at_every_grid_width(compiled, kernel, mode, steps, units, width, capability):
    """The kernel that :func:`cfc_triton.blocks` picks for these widths, with its blocks, warps and
    stages (the launches' own choice), builds for sm_80 and sm_90 with no register spills, for
    regular steps (no elapsed times) and irregular ones."""
    assert_clean(compiled, cfc_key(kernel, mode, steps, units, width, capability))


@pytest.mark.parametrize("kernel, units, capability", LTC_CASES)
def test_ltc_kernels_compile_without_spills_at_every_grid_width(compiled, kernel, units, capability):
    """As for the CfC: :func:`ltc_triton.blocks`'s kernel and blocks for each units value."""
    assert_clean(compiled, ltc_key(kernel, units, capability))


def test_every_width_takes_blocks_compiled_above():
    """The tiled kernels' code does not depend on the widths (their loops run to the sizes given
    at launch), and the compile tests build every block of the resident ones: whatever the
    widths, the launches take a kernel, blocks and options built above without spills."""
    def key(b):
        return b.tiled, tuple(sorted(b.constexprs.items())), tuple(sorted(b.options.items()))

    for backward in (False, True):
        built = {key(cfc_triton.blocks(units, width, backward)) for units, width in CFC_WIDTHS}
        for units in range(1, 300, 7):
            for width in range(1, 300, 5):
                assert key(cfc_triton.blocks(units, width, backward)) in built, (units, width, backward)
    built = {key(ltc_triton.blocks(units)) for units in grid.UNITS}
    assert all(key(ltc_triton.blocks(units)) in built for units in range(1, 1000))
    assert not cfc_triton.blocks(32, 64).tiled and not ltc_triton.blocks(32).tiled  # the study's widths
    assert cfc_triton.blocks(33, 64).tiled and cfc_triton.blocks(32, 65).tiled and ltc_triton.blocks(33).tiled


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
