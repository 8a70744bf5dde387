"""The fast LTC and CfC (``impl: fast``) against ncps (``impl: ncps``): same state dict, same
outputs and gradients within 1e-5 (float32), same training losses within 1e-4."""

import importlib
import random

import pytest
import torch

from conftest import missing_part
from liquidbench.data.sine import generate
from liquidbench.models import build_model, paths
from liquidbench.models.cfc_fast import FastCfcCore
from liquidbench.models.liquid import NcpCore
from liquidbench.models.ltc_fast import FastLtcCore
from liquidbench.train.tasks import loss_fn

TOL = {"rtol": 1e-5, "atol": 1e-5}


def random_case(seed: int) -> dict:
    """A random model entry, shape and sampling; every option is drawn from what ncps accepts."""
    rng = random.Random(seed)
    kind = rng.choice(["ltc", "cfc"])
    units = rng.randint(5, 20)
    spec = {"type": kind, "units": units, "mixed_memory": rng.random() < 0.3}
    if rng.random() < 0.4:
        spec.update(wiring="autoncp", motor_neurons=rng.randint(1, units - 3))
    if kind == "ltc":
        spec["ode_unfolds"] = rng.randint(1, 7)
    else:
        spec["mode"] = rng.choice(["default", "pure", "no_gate"])
        if spec.get("wiring") != "autoncp":
            spec.update(backbone_units=rng.randint(4, 24), backbone_layers=rng.randint(1, 3))
    return {"spec": spec, "batch": rng.randint(1, 9), "steps": rng.randint(1, 12), "features": rng.randint(1, 6),
            "outputs": rng.randint(1, 3), "irregular": rng.random() < 0.5, "seed": seed}


def pair(spec: dict, features: int, outputs: int, seed: int = 0):
    torch.manual_seed(seed)
    ref = build_model({**spec, "impl": "ncps"}, features, outputs, "regression_per_step")
    fast = build_model({**spec, "impl": "fast"}, features, outputs, "regression_per_step")
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def grads(model, x, elapsed, weight):
    out = model(x, elapsed)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    g = torch.autograd.grad((out * weight).sum(), [p for n, p in model.named_parameters() if p.requires_grad])
    return out, dict(zip(names, g))


def assert_equal_outputs_and_gradients(ref, fast, x, elapsed):
    ref_out = ref(x, elapsed)
    weight = torch.randn_like(ref_out)
    ref_out, ref_g = grads(ref, x, elapsed, weight)
    fast_out, fast_g = grads(fast, x, elapsed, weight)
    torch.testing.assert_close(fast_out, ref_out, **TOL)
    assert fast_g.keys() == ref_g.keys()
    for name in ref_g:
        torch.testing.assert_close(fast_g[name], ref_g[name], **TOL, msg=lambda m: f"gradient of {name}: {m}")


@pytest.mark.parametrize("seed", range(24))
def test_random_models_match_ncps(seed):
    case = random_case(seed)
    ref, fast = pair(case["spec"], case["features"], case["outputs"], seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(case["batch"], case["steps"], case["features"], generator=gen)
    elapsed = torch.rand(case["batch"], case["steps"], generator=gen) * 2 + 0.05 if case["irregular"] else None
    assert_equal_outputs_and_gradients(ref, fast, x, elapsed)


SPECS = [
    {"type": "ltc", "units": 16, "ode_unfolds": 6},
    {"type": "ltc", "units": 14, "wiring": "autoncp", "motor_neurons": 4, "ode_unfolds": 3, "mixed_memory": True},
    *({"type": "cfc", "units": 12, "mode": m, "backbone_units": 10, "mixed_memory": mm}
      for m in ("default", "pure", "no_gate") for mm in (False, True)),
    *({"type": "cfc", "units": 14, "wiring": "autoncp", "motor_neurons": 4, "mode": m} for m in ("default", "pure", "no_gate")),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(str(v) for v in s.values()))
@pytest.mark.parametrize("irregular", [False, True])
def test_every_mode_and_wiring_matches_ncps(spec, irregular):
    ref, fast = pair(spec, 5, 2)
    x = torch.randn(6, 9, 5)
    elapsed = torch.rand(6, 9) * 3 + 0.1 if irregular else None
    assert_equal_outputs_and_gradients(ref, fast, x, elapsed)


@pytest.mark.parametrize("spec", SPECS[:3] + SPECS[-1:], ids=lambda s: "-".join(str(v) for v in s.values()))
def test_state_dict_layout_is_ncps_and_loads_both_ways(spec):
    torch.manual_seed(3)
    ref = build_model(spec, 4, 2, "regression_per_step")
    torch.manual_seed(3)
    fast = build_model({**spec, "impl": "fast"}, 4, 2, "regression_per_step")
    a, b = ref.state_dict(), fast.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)  # same seed, same weights
    # a model changed by the fast implementation loads back into ncps and computes the same
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(fast(x), ref(x), **TOL)


@pytest.mark.parametrize("path", ["compiled", "torch"])
def test_ltc_sigma_zero_gives_ncps_gradients(path, monkeypatch):
    """A synapse with sigma exactly 0: the torch version (what runs on a GPU) masks it instead of
    reading sigma to the host to choose a path; both versions still give ncps's gradients."""
    from liquidbench.models import ltc_kernel

    if path == "torch":
        monkeypatch.setattr(ltc_kernel, "usable", lambda *tensors, **why: False)
    spec = {"type": "ltc", "units": 10, "ode_unfolds": 4}
    ref, fast = pair(spec, 3, 1)
    with torch.no_grad():
        for model in (ref, fast):
            model.core.rnn.rnn_cell.sigma[2, 3] = 0.0
    assert_equal_outputs_and_gradients(ref, fast, torch.randn(4, 5, 3), None)


def test_cfc_backbone_dropout_draws_the_same_masks():
    spec = {"type": "cfc", "units": 8, "backbone_units": 12, "backbone_layers": 3, "backbone_dropout": 0.3}
    ref, fast = pair(spec, 3, 1)
    x = torch.randn(5, 6, 3)
    torch.manual_seed(11)
    ref_out, ref_g = grads(ref, x, None, torch.ones(5, 6, 1))
    torch.manual_seed(11)
    fast_out, fast_g = grads(fast, x, None, torch.ones(5, 6, 1))
    torch.testing.assert_close(fast_out, ref_out, **TOL)
    for name in ref_g:
        torch.testing.assert_close(fast_g[name], ref_g[name], **TOL)
    ref.eval()
    fast.eval()
    torch.testing.assert_close(fast(x), ref(x), **TOL)


def train_losses(spec: dict, impl: str, epochs: int = 2) -> list[float]:
    """Per-batch training losses of a plain Adam training from seed 0 on the sine data set."""
    data = generate({"n_sequences": 64, "seq_len": 16, "seed": 0, "irregular": True})
    x, y, elapsed = (torch.from_numpy(data[k]) for k in ("x", "y", "t"))
    torch.manual_seed(0)
    model = build_model({**spec, "impl": impl}, x.shape[-1], y.shape[-1], "regression_per_step", irregular=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 16):
            idx = order[i: i + 16]
            loss = loss_fn("regression_per_step", model(x[idx], elapsed[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
    return losses


@pytest.mark.parametrize("spec", [{"type": "ltc", "units": 12, "ode_unfolds": 6},
                                  {"type": "cfc", "units": 12, "backbone_units": 16}], ids=["ltc", "cfc"])
def test_two_epochs_of_training_give_the_same_losses(spec):
    ref, fast = train_losses(spec, "ncps"), train_losses(spec, "fast")
    assert len(ref) == len(fast) == 8
    assert max(abs(a - b) for a, b in zip(ref, fast)) < 1e-4
    assert fast[-1] < fast[0]


def test_fast_cores_are_built_for_impl_fast_and_unknown_impl_is_named():
    assert isinstance(build_model({"type": "ltc", "impl": "fast"}, 2, 1, "regression_per_step").core, FastLtcCore)
    assert isinstance(build_model({"type": "cfc", "impl": "fast"}, 2, 1, "regression_per_step").core, FastCfcCore)
    assert isinstance(build_model({"type": "cfc"}, 2, 1, "regression_per_step").core, NcpCore)
    with pytest.raises(ValueError, match="model 'ltc': impl 'cuda' is unknown, expected one of"):
        build_model({"type": "ltc", "impl": "cuda"}, 2, 1, "regression_per_step")


def test_torch_paths_match_ncps_without_the_compiled_kernels(monkeypatch):
    """Where no C compiler exists (or off the CPU) the fast LTC and CfC run their torch versions."""
    from liquidbench.models import cfc_kernel, ltc_kernel

    for kernel in (ltc_kernel, cfc_kernel):
        monkeypatch.setattr(kernel, "usable", lambda *tensors, **why: False)
        monkeypatch.setattr(kernel, "forward", None)  # would fail if called
    for spec in SPECS:
        ref, fast = pair(spec, 5, 2)
        x = torch.randn(6, 9, 5)
        assert_equal_outputs_and_gradients(ref, fast, x, torch.rand(6, 9) * 3 + 0.1)
        assert_equal_outputs_and_gradients(ref, fast, x, None)


def require_c_compiler() -> None:
    """The compiled LTC and CfC kernels need a C compiler: skip (fail under CI) where there is none."""
    import shutil

    if not (shutil.which("cc") or shutil.which("gcc")):
        missing_part("compiled LTC and CfC kernels",
                     "no C compiler on this machine (apt-get install gcc); the torch paths are tested above")


@pytest.mark.parametrize("limit", [0, 2**40], ids=["recompute", "store"])
def test_ltc_kernel_matches_ncps_storing_or_recomputing_the_activations(limit, monkeypatch):
    """The compiled step keeps the synapse activations for the backward below STORE_BELOW_UNITS units
    up to STORE_LIMIT_BYTES a sequence and computes them again otherwise; both give ncps's outputs
    and gradients. Without mixed memory the whole sequence is one call each way; with it, one call
    per step."""
    from liquidbench.models import ltc_fast, ltc_kernel

    require_c_compiler()
    assert ltc_kernel.library() is not None, ltc_kernel.KERNEL.build
    monkeypatch.setattr(ltc_fast, "STORE_LIMIT_BYTES", limit)
    monkeypatch.setattr(ltc_fast, "STORE_BELOW_UNITS", 10**6)
    calls = []
    for name in ("forward", "seq_forward"):
        real = getattr(ltc_kernel, name)
        monkeypatch.setattr(ltc_kernel, name, lambda *a, name=name, real=real: calls.append((name, a[-1])) or real(*a))
    for spec in SPECS[:2]:
        calls.clear()
        ref, fast = pair(spec, 5, 2)
        x = torch.randn(6, 9, 5)
        assert_equal_outputs_and_gradients(ref, fast, x, torch.rand(6, 9) * 3 + 0.1)
        assert_equal_outputs_and_gradients(ref, fast, x, None)
        # the fast model runs once a check: one sequence call, or one call per step (9 steps)
        per_check = 9 if spec.get("mixed_memory") else 1
        name = "forward" if spec.get("mixed_memory") else "seq_forward"
        assert calls == [(name, limit > 0)] * (2 * per_check)


def test_cfc_kernel_runs_every_backbone_cfc_without_mixed_memory_or_dropout(monkeypatch):
    """The compiled recurrence takes the backbone CfC in every mode, with one to three backbone
    layers and regular or irregular steps (ncps's outputs and gradients); mixed memory and active
    dropout take the torch version."""
    from liquidbench.models import cfc_kernel

    require_c_compiler()
    assert cfc_kernel.library() is not None, cfc_kernel.KERNEL.build
    calls = []
    real = cfc_kernel.forward
    monkeypatch.setattr(cfc_kernel, "forward", lambda *a: calls.append(a[0]) or real(*a))
    for mode in ("default", "pure", "no_gate"):
        for layers in (1, 2, 3):
            spec = {"type": "cfc", "units": 9, "mode": mode, "backbone_units": 11, "backbone_layers": layers}
            ref, fast = pair(spec, 4, 2, seed=layers)
            x = torch.randn(5, 7, 4)
            assert_equal_outputs_and_gradients(ref, fast, x, torch.rand(5, 7) * 2 + 0.1)
            assert_equal_outputs_and_gradients(ref, fast, x, None)
    assert calls.count("default") == calls.count("pure") == calls.count("no_gate") == 3 * 2  # one call a check
    calls.clear()
    for extra in ({"mixed_memory": True}, {"backbone_layers": 2, "backbone_dropout": 0.2}):  # ncps: dropout between layers
        _, fast = pair({"type": "cfc", "units": 6, "backbone_units": 8, **extra}, 3, 1)
        fast(torch.randn(2, 4, 3)).sum().backward()
    assert calls == []
    fast.eval()  # dropout is off in evaluation: the compiled path again
    fast(torch.randn(2, 4, 3))
    assert calls == ["default"]


def saturated(spec: dict, changes: dict, seed: int = 0):
    """ncps's model and the fast one with the same weights, ``changes`` (name -> function of the
    tensor) applied to both."""
    ref, fast = pair(spec, 3, 1, seed=seed)
    weights = ref.state_dict()
    torch.manual_seed(seed)
    weights.update({name: change(weights[name]) for name, change in changes.items()})
    ref.load_state_dict(weights)
    fast.load_state_dict(weights)
    return ref, fast


def test_sigmoids_far_in_their_lower_tail_stay_finite_and_equal_ncps():
    """A sigmoid whose input is below -88.7, where expf overflows to infinity, is 0 in ncps. The
    compiled kernels are built with -ffast-math, under which gcc divides by a reciprocal estimate
    refined by a Newton step: 1 / (1 + inf) gave NaN there, not 0. A fast LTC trained on traffic
    reached it (sigma above 16) and its loss turned NaN (docs/measurements-history.md, issue 24). LTC
    synapses with sigma 60 and mu in [-3, 3], and CfC gates with biases of -200 and +200, give
    ncps's outputs and gradients, all finite, on the compiled path."""
    require_c_compiler()
    paths.reset()
    ltc = saturated({"type": "ltc", "units": 8, "ode_unfolds": 6},
                    {"core.rnn.rnn_cell.sigma": lambda t: torch.full_like(t, 60.0),
                     "core.rnn.rnn_cell.mu": lambda t: torch.rand_like(t) * 6 - 3})
    cfc = saturated({"type": "cfc", "units": 8, "backbone_units": 8},
                    {"core.rnn.rnn_cell.time_b.bias": lambda t: torch.tensor([-200.0, 200.0]).repeat(4)})
    x = torch.randn(4, 10, 3)
    for ref, fast in (ltc, cfc):
        for elapsed in (None, torch.rand(4, 10) * 2 + 0.1):
            out, g = grads(fast, x, elapsed, torch.ones(4, 10, 1))
            assert torch.isfinite(out).all() and all(torch.isfinite(t).all() for t in g.values())
            assert_equal_outputs_and_gradients(ref, fast, x, elapsed)
    assert paths.taken() == "cfc: compiled; ltc: compiled"


def test_compiled_ltc_sigmoid_is_within_1e_6_of_float64_and_finite_far_below():
    """The compiled LTC's own sigmoid (an inline exp polynomial, ltc_kernel.c): relative error below
    1e-6 against float64 over [-80, 100], and in the lower tail, where its exponent is capped at 80,
    finite and at most 1.81e-35 (as ncps's 0 to every float32 sum)."""
    from liquidbench.models import ltc_kernel

    require_c_compiler()
    z = torch.linspace(-80, 100, 400_001)
    exact = torch.sigmoid(z.double())
    assert ((ltc_kernel.sigmoid(z).double() - exact).abs() / exact).max() < 1e-6
    tail = ltc_kernel.sigmoid(torch.linspace(-1e4, -80, 1001))
    assert torch.isfinite(tail).all() and tail.max() <= 1.81e-35 and tail.min() >= 0


def test_ltc_sensory_synapses_are_one_compiled_call_each_way(monkeypatch):
    """On the CPU the LTC's sensory synapses of every batch row and step are one call of the compiled
    C each way (forward: the sums, backward: the activations computed again), with ncps's outputs and
    gradients: many inputs (the case where they dominate a step) and a wiring's sparse sensory
    synapses (inputs without a mapping, whose gradient is not wanted: tests/test_fast_interface.py)."""
    from liquidbench.models import ltc_kernel

    require_c_compiler()
    calls = []
    for name in ("sensory_forward", "sensory_backward"):
        real = getattr(ltc_kernel, name)
        monkeypatch.setattr(ltc_kernel, name, lambda *a, name=name, real=real: calls.append(name) or real(*a))
    for spec in ({"type": "ltc", "units": 6, "ode_unfolds": 2},
                 {"type": "ltc", "units": 10, "wiring": "autoncp", "motor_neurons": 2, "ode_unfolds": 2}):
        calls.clear()
        ref, fast = pair(spec, 40, 2)
        x = torch.randn(3, 4, 40)
        assert_equal_outputs_and_gradients(ref, fast, x, torch.rand(3, 4) * 3 + 0.1)
        assert calls == ["sensory_forward", "sensory_backward"], spec


@pytest.mark.parametrize("name", ["ltc_kernel", "cfc_kernel"])
def test_kernel_is_built_and_used_where_a_compiler_exists(name, tmp_path, monkeypatch):
    module = importlib.import_module(f"liquidbench.models.{name}")
    kernel = module.KERNEL
    require_c_compiler()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(kernel, "_tried", False)
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setattr(kernel, "paths", {})
    assert module.status() == "not used"
    assert module.library() is not None
    assert module.status() == "not used"  # built, but no call took it yet
    assert kernel.build["seconds"] > 0 and kernel.build["path"].startswith(str(tmp_path))
    assert len(list(tmp_path.glob(f"liquidbench/{name}_*.so"))) == 1  # no temporary left behind
    assert module.usable(torch.zeros(2))
    assert module.status() == "compiled"
    assert not module.usable(torch.zeros(2, dtype=torch.float64))
    assert module.status() == "compiled; torch: not float32 (the compiled kernel takes float32)"


@pytest.mark.parametrize("name", ["ltc_kernel", "cfc_kernel"])
def test_kernel_disabled_says_so(name, monkeypatch):
    """LIQUIDBENCH_LTC_KERNEL=0 (CFC likewise): the torch path, and metrics.json's env says which
    path ran."""
    module = importlib.import_module(f"liquidbench.models.{name}")
    variable = f"LIQUIDBENCH_{name.upper()}"
    monkeypatch.setenv(variable, "0")
    monkeypatch.setattr(module.KERNEL, "_tried", False)
    monkeypatch.setattr(module.KERNEL, "_lib", None)
    monkeypatch.setattr(module.KERNEL, "build", {})
    monkeypatch.setattr(module.KERNEL, "paths", {})
    assert module.library() is None and not module.usable(torch.zeros(2))
    assert module.status() == f"torch: disabled by {variable}=0"


def test_kernel_sources_are_files_beside_their_modules_and_packaged():
    """The C sources live in .c files next to their modules, and pyproject ships them in the wheel
    (the container image installs the package without its source tree)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    from liquidbench.models import cfc_kernel, ltc_kernel

    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["liquidbench.models"]
    for module in (ltc_kernel, cfc_kernel):
        path = module.KERNEL.source_path
        assert path.parent == Path(module.__file__).parent and path.suffix == ".c"
        assert module.KERNEL.source == path.read_text() and "void " in module.KERNEL.source
        assert any(fnmatch.fnmatch(path.name, p) for p in patterns), (path.name, patterns)


def test_one_place_picks_the_path_per_device_and_dtype(monkeypatch):
    from liquidbench.models import cfc_kernel, ltc_kernel, paths

    require_c_compiler()
    for model in ("ltc", "cfc"):
        assert paths.choose(model, torch.zeros(2)) == "compiled"
        assert paths.choose(model, torch.zeros(2), torch.zeros(2, dtype=torch.float64)) == "torch"
        assert paths.choose(model, torch.zeros(2, device="meta")) == "torch"
    monkeypatch.setattr(cfc_kernel, "usable", lambda *tensors: False)
    assert paths.choose("cfc", torch.zeros(2)) == "torch" and paths.choose("ltc", torch.zeros(2)) == "compiled"
    with pytest.raises(ValueError, match="fast model 'gru' is unknown"):
        paths.choose("gru", torch.zeros(2))
    assert ltc_kernel.usable is paths.KERNELS["ltc"].usable
