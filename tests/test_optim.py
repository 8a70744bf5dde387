"""The ``optimizer_impl`` training setting: Adam and gradient clipping over the parameters as
torch's per-device default, foreach or fused, for every model alike; the same training within
float32 rounding; recorded in metrics.json and the provenance table."""

import pandas as pd
import pytest
import torch

from liquidbench.data.sine import prepare
from liquidbench.models import build_model
from liquidbench.results.provenance import provenance
from liquidbench.train import checkpoint as ckpt
from liquidbench.train.loop import RunSpec, run_fingerprint, train
from liquidbench.train.optim import adam, clip_gradients
from liquidbench.train.settings import OPTIMIZER_IMPLS, TRAINING_DEFAULTS, Hardware, Training
from liquidbench.train.tasks import loss_fn


def trained(spec: dict, impl: str, steps: int = 5) -> dict:
    torch.manual_seed(0)
    model = build_model(spec, 3, 1, "regression_per_step")
    opt = adam(model.parameters(), impl, lr=0.01, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 6, 3, generator=gen), torch.randn(4, 6, 1, generator=gen)
    norms = []
    for _ in range(steps):
        loss = loss_fn("regression_per_step", model(x), y * 10)
        opt.zero_grad()
        loss.backward()
        norms.append(clip_gradients(model.parameters(), 0.5, impl))
        opt.step()
    assert all(n > 0.5 for n in norms)  # the clipping acted on every step
    return {"params": dict(model.named_parameters()), "norms": torch.stack(norms)}


@pytest.mark.parametrize("spec", [{"type": "cfc", "units": 5, "backbone_units": 7, "impl": "fast"},
                                  {"type": "ltc", "units": 5}, {"type": "gru", "hidden_size": 5}],
                         ids=["cfc-fast", "ltc-ncps", "gru"])
def test_every_optimizer_impl_trains_alike(spec):
    runs = {impl: trained(spec, impl) for impl in OPTIMIZER_IMPLS}
    ref = runs["default"]
    for impl in ("foreach", "fused"):
        torch.testing.assert_close(runs[impl]["norms"], ref["norms"], rtol=1e-5, atol=1e-6)
        for name, p in runs[impl]["params"].items():
            torch.testing.assert_close(p, ref["params"][name], rtol=1e-5, atol=1e-6, msg=f"{impl}: {name}")
    assert not torch.equal(ref["params"][next(iter(ref["params"]))],
                           trained(spec, "default", steps=1)["params"][next(iter(ref["params"]))])


def test_the_setting_is_checked_and_its_default_is_fused_adam():
    assert TRAINING_DEFAULTS["optimizer_impl"] == "fused"
    assert Training.from_params({}).optimizer_impl == "fused"
    with pytest.raises(ValueError, match=r"training: optimizer_impl must be one of \['default', 'foreach', "
                                         r"'fused'\], got 'fast'"):
        Training.from_params({"optimizer_impl": "fast"})
    with pytest.raises(ValueError, match="optimizer_impl 'fast' is unknown"):
        adam([torch.nn.Parameter(torch.zeros(2))], "fast", lr=0.1)
    assert adam([torch.nn.Parameter(torch.zeros(2))], "fused", lr=0.1).defaults["fused"] is True


def test_metrics_and_provenance_record_the_optimizer_impl(tmp_path):
    prepare({"n_sequences": 24, "seq_len": 5, "seed": 0}, tmp_path / "sine")
    metrics = {}
    for impl in ("default", "fused"):
        metrics[impl] = train(RunSpec(dataset="sine", model="gru", hardware="cpu", seed=0, data_dir=tmp_path / "sine",
                                      out_dir=tmp_path / impl, model_spec={"type": "gru", "hidden_size": 4},
                                      train_params={"epochs": 1, "batch_size": 8, "optimizer_impl": impl},
                                      hardware_spec={"device": "cpu", "threads": 1}))
        assert metrics[impl]["train_params"]["optimizer_impl"] == impl
    runs = pd.DataFrame([{"hardware": "cpu", "seed": 0, "status": "ok",
                          "train_params.optimizer_impl": m["train_params"]["optimizer_impl"]}
                         for m in metrics.values()])
    assert provenance(runs).iloc[0]["Adam and clipping"] == "default, fused"


def test_a_checkpoint_from_before_the_setting_resumes_only_under_torchs_default_adam():
    """At ``default`` (the Adam every run used before ``optimizer_impl`` existed) the run's
    fingerprint is the one it had then (its checkpoints resume); another value, the study's default
    ``fused`` included, is another run."""
    spec = RunSpec(dataset="sine", model="gru", hardware="cpu", seed=0, data_dir="d", out_dir="o",
                   model_spec={"type": "gru", "hidden_size": 4})
    hw, meta = Hardware.from_entry("cpu", {"device": "cpu", "threads": 1}), {"sha256": "x"}
    fp = {impl: run_fingerprint(spec, Training(optimizer_impl=impl), hw, 1, meta) for impl in OPTIMIZER_IMPLS}
    # the fingerprint of the same run made before the setting existed: its train_params without it
    # (and without divergence_factor, which joined later still: LATER_DEFAULTS)
    before = {k: v for k, v in TRAINING_DEFAULTS.items() if k not in ("optimizer_impl", "divergence_factor")}
    hardware_spec = {k: v for k, v in hw.as_dict().items() if k not in ("timeout_s", "telemetry_interval_s")}
    assert fp["default"] == ckpt.fingerprint(dataset="sine", model="gru", hardware="cpu", seed=0,
                                             model_spec=spec.model_spec, train_params=before,
                                             hardware_spec=hardware_spec, world=1, data="x")
    assert len(set(fp.values())) == len(OPTIMIZER_IMPLS)
    other_bound = run_fingerprint(spec, Training(optimizer_impl="default", divergence_factor=5), hw, 1, meta)
    assert other_bound not in fp.values()
