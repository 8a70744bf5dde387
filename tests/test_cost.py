"""The step counts of liquidbench.models.cost: their matrix products against torch's FlopCounterMode
on ncps's models (forward, and backward with the weight gradients), a case of each cell counted by
hand, and refused input."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from liquidbench.models import build_model, count_parameters
from liquidbench.models.cost import Work, cfc_cost, ltc_cost, step_cost

BATCH, STEPS, INPUTS, OUTPUTS = 3, 4, 2, 2


def _counted(spec: dict) -> tuple[int, int, int]:
    """(FlopCounterMode's forward flops, its backward flops, trainable parameters) of ncps's model
    over one batch at the test's tiny shape."""
    torch.manual_seed(0)
    model = build_model({**spec, "impl": "ncps"}, INPUTS, OUTPUTS, "regression_per_step")
    x, y = torch.randn(BATCH, STEPS, INPUTS), torch.randn(BATCH, STEPS, OUTPUTS)
    with FlopCounterMode(display=False) as forward:
        loss = F.mse_loss(model(x), y)
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    return forward.get_total_flops(), backward.get_total_flops(), count_parameters(model)


SPECS = [
    {"type": "ltc", "units": 5, "wiring": "fully_connected", "ode_unfolds": 3},
    {"type": "ltc", "units": 8, "wiring": "autoncp", "motor_neurons": 2, "ode_unfolds": 2},
    {"type": "cfc", "units": 5, "mode": "default", "backbone_units": 6, "backbone_layers": 1},
    {"type": "cfc", "units": 5, "mode": "no_gate", "backbone_units": 6, "backbone_layers": 2},
    {"type": "cfc", "units": 5, "mode": "pure", "backbone_units": 6, "backbone_layers": 1},
    {"type": "cfc", "units": 5, "mode": "default", "backbone_layers": 0},
    {"type": "cfc", "units": 5, "mode": "pure", "backbone_layers": 0},
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_products_are_those_flop_counter_counts_on_ncps(spec):
    forward, backward, params = _counted(spec)
    cost = step_cost(spec, batch=BATCH, steps=STEPS, inputs=INPUTS, outputs=OUTPUTS, ncps=True)
    assert cost.forward.product == forward
    assert cost.backward.product + cost.weight_grads.product == backward
    assert cost.parameters == params
    assert cost.update == Work(elementwise=16 * params)


def test_what_the_cfc_step_needs_is_less_than_ncps_computes():
    dims = dict(batch=BATCH, steps=STEPS, inputs=INPUTS, units=5, outputs=OUTPUTS, backbone_units=6)
    needed, elapsed, ncps = cfc_cost(**dims), cfc_cost(**dims, elapsed=True), cfc_cost(**dims, ncps=True)
    # with steps of 1 the gate is one head (5 units from 6 backbone units) fewer, each way
    head = 2 * BATCH * STEPS * 6 * 5
    assert elapsed.forward.product - needed.forward.product == head
    assert elapsed.weight_grads.product - needed.weight_grads.product == head
    assert elapsed.backward.product - needed.backward.product == head
    # ncps's backward also forms the gradient of the inputs' columns of [x, h] after the first step
    assert ncps.backward.product - elapsed.backward.product == 2 * BATCH * (STEPS - 1) * 6 * INPUTS
    assert ncps.forward == elapsed.forward and ncps.weight_grads == elapsed.weight_grads
    assert cfc_cost(**dims, mode="pure", ncps=True).forward == cfc_cost(**dims, mode="pure").forward


def test_ltc_by_hand():
    # batch 1, 2 steps, 1 input, 2 units (both read out), 1 unfold, 1 output: 2 rows, 2 rows x unfolds,
    # 4 synapses, 2 sensory synapses
    c = ltc_cost(batch=1, steps=2, inputs=1, units=2, outputs=1, unfolds=1)
    assert c.forward == Work(
        product=2 * 2 * 2 * 1,  # read-out: 2 rows x 2 -> 1
        elementwise=(2 * 2 * 1          # input map: 2 per input value
                     + 6 * 2 * 2        # sensory synapses: 6 each per row
                     + 2 * 2 * 2        # the step's constant numerator and denominator
                     + 6 * 2 * 4        # synapses: 6 each per row and unfold
                     + 5 * 2 * 2        # neurons: 5 each per row and unfold
                     + 2 * 2 * 2        # output map
                     + (2 * 4 + 2 * 2 + 4 * 2)  # masks and w erev (4 + 2 weights), gleak and cm terms
                     + 2 * 1 * (1 + 3) + 1),    # read-out bias, loss, mean
        sigmoid=2 * 2 + 2 * 4,
        softplus=4 + 2 + 2 * 2)
    assert c.backward == Work(product=2 * 2 * 1 * 2,
                              elementwise=2 * 2 + 2 * 2 + 8 * 2 * 4 + 4 * 2 * 2 + 2 * 2 * 1)
    assert c.weight_grads == Work(
        product=2 * 2 * 1 * 2,
        elementwise=(3 * 2 * 2 + 7 * 2 * 4 + 4 * 2 * 2 + 15 * 2 * 2 + 3 * 2 * 1 + 3 * 2 * 2
                     + 9 * 4 + 9 * 2 + 6 * 2 + 2 * 1),
        sigmoid=4 + 2 + 2 * 2)
    # sigma, mu, w, erev (4 each), their sensory ones (2 each), gleak, vleak, cm (2 each), input
    # map (2), output map (2 x 2), read-out (2 + 1)
    assert c.parameters == 16 + 8 + 6 + 2 + 4 + 3 == 39
    assert c.update == Work(elementwise=16 * 39)


def test_cfc_by_hand():
    # batch 1, 2 steps, 1 input, 1 unit, 1 output; one backbone layer of 2; default mode with steps of
    # 1: 3 heads (ff1, ff2, the gate); 2 rows, of which 1 after the first step; [x, h] has 2 columns
    c = cfc_cost(batch=1, steps=2, inputs=1, units=1, outputs=1, backbone_units=2, backbone_layers=1)
    assert c.forward == Work(product=2 * 2 * 2 * 2 + 3 * 2 * 2 * 2 * 1 + 2 * 2 * 1 * 1,  # layer, heads, read-out
                             elementwise=(3 * 2 * 2           # backbone: bias, 2 scalings
                                          + (3 + 3) * 2 * 1   # head biases, combination
                                          + (2 + 1) * 1       # time_a + time_b: weights and bias
                                          + (2 * 1 * 4 + 1)),  # read-out bias, loss, mean
                             tanh=2 * 2 + 2 * 2, sigmoid=2)
    assert c.backward == Work(product=3 * 2 * 2 * 1 * 2 + 2 * 1 * 2 * 1 + 2 * 2 * 1 * 1,  # heads, state, read-out
                              elementwise=4 * 2 * 2 + (1 + 13) * 2 * 1 + 2 * 2)
    assert c.weight_grads == Work(product=2 * 2 * 2 * 2 + 3 * 2 * 2 * 2 * 1 + 2 * 2 * 1 * 1,
                                  elementwise=2 * 2 + 3 * 2 + 2)
    assert c.parameters == 3 * 2 + 4 * 3 + 2 == 20
    assert c.total.transcendental == 10 and c.total.tanh == 8


@pytest.mark.parametrize("bad, name", [
    (dict(batch=0), "batch"), (dict(steps=-1), "steps"), (dict(inputs=0), "inputs"), (dict(units=0), "units"),
    (dict(outputs=0), "outputs"), (dict(unfolds=0), "unfolds"), (dict(batch=2.0), "batch"),
])
def test_a_non_positive_dimension_is_refused_by_name(bad, name):
    dims = dict(batch=2, steps=3, inputs=1, units=4, outputs=1)
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got"):
        ltc_cost(**{**dims, **bad})
    if name != "unfolds":
        with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
            cfc_cost(**{**dims, **bad})


def test_other_bad_input_is_refused():
    dims = dict(batch=2, steps=3, inputs=1, units=4, outputs=1)
    with pytest.raises(ValueError, match="backbone_units must be a positive integer, got 0"):
        cfc_cost(**dims, backbone_units=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        cfc_cost(**dims, mode="gated")
    with pytest.raises(ValueError, match="synapses must be an integer from 0 to 16, got 17"):
        ltc_cost(**dims, synapses=17)
    with pytest.raises(ValueError, match="wired CfC is not counted"):
        step_cost({"type": "cfc", "units": 8, "wiring": "autoncp", "motor_neurons": 1}, batch=1, steps=1, inputs=1,
                  outputs=1)
