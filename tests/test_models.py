import pytest
import torch

from liquidbench.models import BUILDERS, build_model, count_parameters
from liquidbench.train.tasks import loss_fn

SPECS = {
    "ltc": {"type": "ltc", "units": 8, "ode_unfolds": 2},
    "ltc-ncp": {"type": "ltc", "units": 12, "wiring": "autoncp", "motor_neurons": 3, "ode_unfolds": 2},
    "cfc": {"type": "cfc", "units": 8, "backbone_units": 8},
    "cfc-pure": {"type": "cfc", "units": 8, "mode": "pure", "backbone_units": 8},
    "cfc-ncp": {"type": "cfc", "units": 12, "wiring": "autoncp", "motor_neurons": 3},
    "lstm": {"type": "lstm", "hidden_size": 8},
    "gru": {"type": "gru", "hidden_size": 8},
}
TASKS = {
    "regression_per_step": lambda b, t: torch.randn(b, t, 2),
    "classification_per_step": lambda b, t: torch.randint(0, 4, (b, t)),
    "classification_per_sequence": lambda b, t: torch.randint(0, 4, (b,)),
}
N_OUT = {"regression_per_step": 2, "classification_per_step": 4, "classification_per_sequence": 4}


def test_registry_has_the_four_model_types():
    assert set(BUILDERS) == {"ltc", "cfc", "lstm", "gru"}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", SPECS)
def test_forward_shapes(name, task):
    torch.manual_seed(0)
    model = build_model(SPECS[name], 3, N_OUT[task], task)
    out = model(torch.randn(5, 7, 3))
    expected = (5, N_OUT[task]) if task == "classification_per_sequence" else (5, 7, N_OUT[task])
    assert out.shape == expected


@pytest.mark.parametrize("name", SPECS)
def test_irregular_elapsed_time_changes_output_and_unit_gaps_match_regular(name):
    torch.manual_seed(0)
    model = build_model(SPECS[name], 3, 2, "regression_per_step", irregular=True)
    x = torch.randn(4, 6, 3)
    a = model(x, torch.full((4, 6), 0.2))
    b = model(x, torch.full((4, 6), 3.0))
    assert not torch.allclose(a, b)
    if SPECS[name]["type"] in ("ltc", "cfc"):
        # an elapsed time of 1 is ncps's regular-sampling step
        torch.testing.assert_close(model(x, torch.ones(4, 6)), model(x))


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", SPECS)
def test_one_step_lowers_loss_on_fixed_batch(name, task):
    torch.manual_seed(1)
    model = build_model(SPECS[name], 3, N_OUT[task], task)
    x, y = torch.randn(8, 6, 3), TASKS[task](8, 6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = loss_fn(task, model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_fn(task, model(x), y)
    assert after < before


NCPS_VARIANTS = {
    "ltc": {"type": "ltc", "units": 6, "ode_unfolds": 2},
    "ltc-mixed": {"type": "ltc", "units": 6, "ode_unfolds": 2, "mixed_memory": True},
    "ltc-ncp": {"type": "ltc", "units": 10, "wiring": "autoncp", "motor_neurons": 3, "ode_unfolds": 2},
    "cfc": {"type": "cfc", "units": 6, "backbone_units": 8},
    "cfc-pure": {"type": "cfc", "units": 6, "mode": "pure", "backbone_units": 8},
    "cfc-no-gate": {"type": "cfc", "units": 6, "mode": "no_gate", "backbone_units": 8},
    "cfc-mixed": {"type": "cfc", "units": 6, "backbone_units": 8, "mixed_memory": True},
    "cfc-ncp": {"type": "cfc", "units": 10, "wiring": "autoncp", "motor_neurons": 3},
}


@pytest.mark.parametrize("name", NCPS_VARIANTS)
def test_ncp_core_step_loop_matches_ncps_own_loop(name):
    """NcpCore's own loop over ncps's cell (used with elapsed times) against ncps's forward for
    regular sampling (timespans None, i.e. a gap of 1): the same outputs, also with mixed memory,
    every CfC mode and NCP wiring. Ties NcpCore to the pinned ncps version."""
    torch.manual_seed(0)
    core = build_model(NCPS_VARIANTS[name], 3, 2, "regression_per_step", irregular=True).core
    x = torch.randn(4, 7, 3)
    with torch.no_grad():
        own = core(x, torch.ones(4, 7))
        reference = core.rnn(x)[0]  # ncps's loop over the whole sequence
    torch.testing.assert_close(own, reference, rtol=1e-6, atol=1e-6)


def test_parameter_counts():
    # LSTM: 4 gates x (W_ih 3x8 + W_hh 8x8 + two biases 8) ; read-out 8x2 + 2
    lstm = build_model(SPECS["lstm"], 3, 2, "regression_per_step")
    assert count_parameters(lstm) == 4 * (3 * 8 + 8 * 8 + 8 + 8) + 8 * 2 + 2
    gru = build_model(SPECS["gru"], 3, 2, "regression_per_step")
    assert count_parameters(gru) == 3 * (3 * 8 + 8 * 8 + 8 + 8) + 8 * 2 + 2
    for name, spec in SPECS.items():
        model = build_model(spec, 3, 2, "regression_per_step")
        # the read-out sees the wiring's output neurons: all units, or the motor neurons of an NCP
        width = spec.get("motor_neurons") if spec.get("wiring") == "autoncp" else spec.get("units", spec.get("hidden_size"))
        assert model.readout.in_features == width
        # trainable parameters only: freezing the read-out (width x 2 weights, 2 biases) removes
        # exactly its parameters from the count
        total = count_parameters(model)
        model.readout.requires_grad_(False)
        assert total - count_parameters(model) == width * 2 + 2, name


def test_frozen_ltc_masks_are_not_counted():
    ltc = build_model(SPECS["ltc"], 3, 2, "regression_per_step")
    frozen = sum(p.numel() for p in ltc.parameters() if not p.requires_grad)
    assert frozen > 0
    assert count_parameters(ltc) == sum(p.numel() for p in ltc.parameters()) - frozen


def test_bad_model_parameters_are_named():
    with pytest.raises(ValueError, match="unknown parameter.*'hidden'"):
        build_model({"type": "lstm", "hidden": 3}, 3, 2, "regression_per_step")
    with pytest.raises(ValueError, match="model type 'transformer'"):
        build_model({"type": "transformer"}, 3, 2, "regression_per_step")
    with pytest.raises(ValueError, match="mode 'fast'"):
        build_model({"type": "cfc", "mode": "fast"}, 3, 2, "regression_per_step")


@pytest.mark.parametrize("spec", [
    {"type": "ltc", "units": 8, "ode_unfolds": 2},
    {"type": "cfc", "units": 8, "backbone_units": 8},
    {"type": "cfc", "units": 8, "backbone_units": 8, "mixed_memory": True},
    {"type": "ltc", "units": 12, "wiring": "autoncp", "motor_neurons": 3, "ode_unfolds": 2},
], ids=["ltc", "cfc", "cfc-mixed", "ltc-ncp"])
def test_checkpointed_chunks_give_the_same_outputs_and_gradients(spec):
    """checkpoint_every=6 over 20 steps (chunks 6, 6, 6, 2): outputs and every gradient as one call."""
    x, y = torch.randn(3, 20, 5), torch.randn(3, 20, 2)
    grads = []
    for k in (0, 6):
        torch.manual_seed(0)
        model = build_model({**spec, "checkpoint_every": k}, 5, 2, "regression_per_step")
        out = model(x)
        loss_fn("regression_per_step", out, y).backward()
        grads.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (out0, g0), (out6, g6) = grads
    torch.testing.assert_close(out6, out0, rtol=0, atol=1e-6)
    assert g0.keys() == g6.keys() and len(g0) > 3
    for name in g0:
        torch.testing.assert_close(g6[name], g0[name], rtol=1e-5, atol=1e-7, msg=name)


def test_bad_checkpoint_every_is_named():
    with pytest.raises(ValueError, match=r"model 'ltc': checkpoint_every must be a number of steps >= 0"):
        build_model({"type": "ltc", "units": 8, "checkpoint_every": -1}, 5, 2, "regression_per_step")


@pytest.mark.parametrize("irregular", [False, True])
@pytest.mark.parametrize("name", SPECS)
def test_a_sequence_run_in_pieces_from_the_state_left_equals_one_run(name, irregular):
    """SequenceModel.run (the evaluation stage's closed loop feeds predictions back with it): from the
    state the first piece left, the second piece's outputs are those of one run over the whole."""
    torch.manual_seed(0)
    model = build_model(SPECS[name], n_features=3, n_outputs=2, task="regression_per_step", irregular=irregular)
    x, elapsed = torch.randn(4, 9, 3), (torch.rand(4, 9) + 0.1 if irregular else None)
    with torch.no_grad():
        whole, last = model.run(x, elapsed)
        first, state = model.run(x[:, :5], None if elapsed is None else elapsed[:, :5])
        second, end = model.run(x[:, 5:], None if elapsed is None else elapsed[:, 5:], state)
        torch.testing.assert_close(whole, model(x, elapsed))
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-5, atol=1e-6)
    for a, b in zip(*(s if isinstance(s, tuple) else (s,) for s in (end, last))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
