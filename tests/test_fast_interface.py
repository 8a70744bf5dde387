"""``liquidbench.fast.CfC`` and ``LTC`` against ``ncps.torch.CfC`` and ``LTC`` (1.0.1): ncps's own
torch tests (shapes for the default, batch_first, proj_size and unbatched input), then values, not
only shapes, for every constructor option: outputs, final states and every gradient within 1e-5."""

import shutil

import pytest
import torch
from conftest import missing_part
from ncps import torch as ncps_torch
from ncps.wirings import AutoNCP

from liquidbench import fast
from liquidbench.models import paths

TOL = {"rtol": 1e-5, "atol": 1e-5}


def twins(kind: str, inputs: int, units: int, seed: int = 0, wiring: int | None = None, **kwargs):
    """The ncps module and the fast one, built from the same seed (so the same weights); with
    ``wiring`` (motor neurons) an AutoNCP of ``units`` neurons, a new one for each module."""
    modules = []
    for cls in (getattr(ncps_torch, kind), getattr(fast, kind)):
        torch.manual_seed(seed)
        modules.append(cls(inputs, units if wiring is None else AutoNCP(units, wiring, seed=5), **kwargs))
    ref, new = modules
    a, b = ref.state_dict(), new.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    return ref, new


def leaves(tree):
    return [tree] if isinstance(tree, torch.Tensor) else [t for part in tree for t in leaves(part)]


def run(model, x, hx=None, timespans=None):
    """(output, hx, gradients of a weighted sum of both by parameter name and by 'hx<i>')."""
    hx = None if hx is None else [h.clone().requires_grad_() for h in leaves(hx)]
    out, h_n = model(x, None if hx is None else (tuple(hx) if len(hx) == 2 else hx[0]), timespans)
    gen = torch.Generator().manual_seed(1)
    total = sum((t * torch.randn(t.shape, generator=gen)).sum() for t in leaves((out, h_n)))
    params = dict(model.named_parameters())
    wrt = [p for p in params.values() if p.requires_grad] + (hx or [])
    grads = torch.autograd.grad(total, wrt, allow_unused=True)
    names = [n for n, p in params.items() if p.requires_grad] + [f"hx{i}" for i in range(len(hx or []))]
    return out, h_n, dict(zip(names, grads))


def assert_same(ref, new, x, hx=None, timespans=None):
    ref_out, ref_h, ref_g = run(ref, x, hx, timespans)
    out, h, g = run(new, x, hx, timespans)
    torch.testing.assert_close(out, ref_out, **TOL)
    for a, b in zip(leaves(h), leaves(ref_h), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert g.keys() == ref_g.keys()
    for name in ref_g:
        if ref_g[name] is None:
            assert g[name] is None or not g[name].any(), name
        else:
            torch.testing.assert_close(g[name], ref_g[name], **TOL, msg=lambda m: f"gradient of {name}: {m}")
    return out, h


# ncps's own torch tests (ncps/tests/test_torch.py), on the fast classes and with values
@pytest.mark.parametrize("kind", ["CfC", "LTC"])
def test_ncps_own_shape_tests_hold_with_ncps_values(kind):
    ref, new = twins(kind, 8, 32)
    out, h = assert_same(ref, new, torch.randn(5, 3, 8))
    assert out.shape == (5, 3, 32) and h.shape == (5, 32)
    ref, new = twins(kind, 8, 32, batch_first=False)
    out, h = assert_same(ref, new, torch.randn(5, 3, 8))
    assert out.shape == (5, 3, 32) and h.shape == (3, 32)
    for batch_first in (True, False):
        ref, new = twins(kind, 8, 32, batch_first=batch_first)
        out, h = assert_same(ref, new, torch.randn(3, 8), hx=torch.randn(32))
        assert out.shape == (3, 32) and h.shape == (32,)
    if kind == "CfC":
        ref, new = twins(kind, 8, 32, proj_size=10)
        assert assert_same(ref, new, torch.randn(5, 3, 8))[0].shape == (5, 3, 10)


CFC_OPTIONS = [
    {},
    {"mode": "pure"},
    {"mode": "no_gate"},
    {"mixed_memory": True},
    {"mixed_memory": True, "mode": "pure", "proj_size": 2},
    {"proj_size": 3, "return_sequences": False},
    {"batch_first": False, "mixed_memory": True},
    {"backbone_units": 7, "backbone_layers": 3},
    {"backbone_layers": 0},
    {"backbone_layers": 0, "mode": "pure"},
    {"backbone_layers": 0, "mode": "no_gate", "proj_size": 3},
    {"backbone_layers": 0, "mode": "pure", "mixed_memory": True},
    *({"activation": a, "backbone_units": 9, "backbone_layers": 2} for a in ("silu", "relu", "tanh", "gelu")),
    {"wiring": 4, "mode": "default"},
    {"wiring": 4, "mode": "pure"},
    {"wiring": 4, "mode": "pure", "mixed_memory": True, "proj_size": 2},
    {"wiring": 4, "mode": "no_gate", "return_sequences": False},
]


@pytest.mark.parametrize("options", CFC_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_cfc_options_match_ncps(options):
    ref, new = twins("CfC", 5, 13 if "wiring" in options else 11, seed=2, **options)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, 5, generator=gen)
    x = x if options.get("batch_first", True) else x.transpose(0, 1)  # (steps, batch, features)
    state = torch.randn(4, ref.state_size, generator=gen)
    hx = (state, torch.randn(4, ref.state_size, generator=gen)) if ref.use_mixed else state
    assert_same(ref, new, x)
    assert_same(ref, new, x, hx=hx)


LTC_OPTIONS = [
    {},
    {"mixed_memory": True},
    {"input_mapping": "linear", "output_mapping": "linear"},
    {"input_mapping": "none", "output_mapping": "none"},
    {"ode_unfolds": 2, "epsilon": 1e-3},
    {"implicit_param_constraints": False},
    {"return_sequences": False, "batch_first": False},
    {"wiring": 3},
    {"wiring": 3, "mixed_memory": True, "return_sequences": False},
]


@pytest.mark.parametrize("options", LTC_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_ltc_options_match_ncps(options):
    ref, new = twins("LTC", 4, 12 if "wiring" in options else 9, seed=2, **options)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 5, 4, generator=gen)
    x = x if options.get("batch_first", True) else x.transpose(0, 1)  # (steps, batch, features)
    state = torch.randn(3, ref.state_size, generator=gen)
    hx = (state, torch.randn(3, ref.state_size, generator=gen)) if ref.use_mixed else state
    assert_same(ref, new, x)
    assert_same(ref, new, x, hx=hx)


@pytest.mark.parametrize("kind, options", [("CfC", {}), ("CfC", {"mode": "pure", "mixed_memory": True}),
                                           ("CfC", {"backbone_layers": 0}), ("CfC", {"wiring": 4}),
                                           ("LTC", {}), ("LTC", {"mixed_memory": True})])
def test_timespans_are_per_sample_as_ncps_computes_one_sample(kind, options):
    """ncps squeezes each step's times to (batch,) and broadcasts them against the units, so it
    gives per-sample results only for one sample at a time: the fast classes take (batch, steps)
    times and equal ncps run on each sample alone."""
    units = 12 if "wiring" in options else 10
    ref, new = twins(kind, 3, units, seed=4, **options)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 7, 3, generator=gen)
    ts = torch.rand(3, 7, generator=gen) * 2 + 0.1
    for b in range(3):
        assert_same(ref, new, x[b: b + 1], timespans=ts[b: b + 1])
    out, _ = new(x, timespans=ts.unsqueeze(-1))
    alone = torch.cat([ref(x[b: b + 1], timespans=ts[b: b + 1])[0] for b in range(3)])
    torch.testing.assert_close(out, alone, **TOL)
    # time first (batch_first=False): the same numbers, transposed
    _, new_tm = twins(kind, 3, units, seed=4, batch_first=False, **options)
    out_tm, _ = new_tm(x.transpose(0, 1), timespans=ts.t())
    torch.testing.assert_close(out_tm.transpose(0, 1), out, **TOL)


@pytest.mark.parametrize("kind", ["CfC", "LTC"])
def test_state_dicts_load_both_ways(kind):
    torch.manual_seed(0)
    ref = getattr(ncps_torch, kind)(4, 8, mixed_memory=True)
    torch.manual_seed(1)
    new = getattr(fast, kind)(4, 8, mixed_memory=True)
    new.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(new(x)[0], ref(x)[0], **TOL)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ref.load_state_dict(new.state_dict())
    torch.testing.assert_close(new(x)[0], ref(x)[0], **TOL)


@pytest.mark.parametrize("kind", ["CfC", "LTC"])
def test_bad_state_and_timespans_raise_what_ncps_raises_or_name_the_argument(kind):
    rnn = getattr(fast, kind)(3, 6, mixed_memory=True)
    x = torch.randn(2, 4, 3)
    with pytest.raises(RuntimeError, match=r"requires a tuple \(h0,c0\)"):
        rnn(x, torch.zeros(2, 6))
    with pytest.raises(RuntimeError, match="For batched 2-D input, hx and cx should also be 2-D"):
        rnn(x, (torch.zeros(6), torch.zeros(6)))
    with pytest.raises(RuntimeError, match="For unbatched 1-D input, hx and cx should also be 1-D"):
        rnn(x[0], (torch.zeros(2, 6), torch.zeros(2, 6)))
    with pytest.raises(ValueError, match=r"hx: expected the state of shape \(2, 6\), got \(2, 5\)"):
        rnn(x, (torch.zeros(2, 5), torch.zeros(2, 5)))
    with pytest.raises(ValueError, match=r"timespans: expected one elapsed time per sample and step, shape \(2, 4\)"):
        rnn(x, timespans=torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"input: expected \(steps, features\) or a batch of 3 dimensions"):
        rnn(torch.zeros(1, 2, 4, 3))


def test_cfc_engines_say_how_each_option_runs():
    assert fast.CfC(3, 5).engine == "fused"
    assert fast.CfC(3, 5, backbone_layers=0).engine == "layers"
    assert fast.CfC(3, AutoNCP(8, 2, seed=1)).engine == "layers"
    assert fast.CfC(3, 5, activation="relu").engine == "ncps cell"
    with pytest.raises(ValueError, match="Unknown activation swish"):  # ncps's own check, unchanged
        fast.CfC(3, 5, activation="swish")


@pytest.mark.parametrize("options", [{"backbone_layers": 0}, {"wiring": 4, "mode": "no_gate"}],
                         ids=["backbone_layers=0", "wired"])
def test_cfc_without_backbone_runs_its_layers_in_the_compiled_kernel(options):
    """A CfC without backbone (one cell, or a wired NCP's layers) runs each layer's sequence in one
    call of the compiled C each way on the CPU, with ncps's results."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        missing_part("compiled CfC kernel", "no C compiler on this machine (apt-get install gcc)")
    ref, new = twins("CfC", 5, 13 if "wiring" in options else 11, seed=4, **options)
    gen = torch.Generator().manual_seed(5)
    paths.reset()
    assert_same(ref, new, torch.randn(9, 7, 5, generator=gen), hx=torch.randn(9, ref.state_size, generator=gen))
    assert paths.taken() == "cfc: compiled"
