"""The arithmetic of one training step of the LTC and the CfC, counted from the shapes.

One training step is what ``benchmarks/bench_step.train_step`` times: the model's forward over a
batch of sequences (the cell over every step, then the read-out ``nn.Linear``), the mean squared
error, the backward, gradient clipping and an Adam update. Its work is split into four parts:

* ``forward``: the model and the loss;
* ``backward``: the gradients that back-propagation carries through the model, those of the
  activations and of the recurrent state (the inputs are data and need none);
* ``weight_grads``: the parameters' gradients formed from those;
* ``update``: gradient clipping and Adam, per trainable parameter;

and each part into the kinds of work a core does at different rates (:class:`Work`):

* ``product``: matrix products, ``(M x K) @ (K x N)`` counting ``2 M N K`` flops: the work that can
  run at the machine's FMA rate. These are exactly the operations
  ``torch.utils.flop_counter.FlopCounterMode`` counts (``mm``, ``addmm``, ``bmm``; tests/test_cost.py
  checks the counts against it on ncps's models);
* ``elementwise``: every other arithmetic operation (including reductions that are not matrix
  products): an add, subtract, multiply, divide, abs, sign or square root counts 1, a multiply-add 2;
* ``exp``, ``sigmoid``, ``tanh``, ``softplus``: evaluations of each transcendental function, one per
  element (apart, because their rates differ). A derivative formed from a kept value (``s (1 - s)``,
  ``1 - t^2``) is elementwise work, not an evaluation.

What is counted is the work the step needs, done once: no implementation's extra work. Values the
forward computes are kept for the backward, not computed again (the fast LTC computes its synapse
activations again from 16 units up, ``ltc_fast.STORE_BELOW_UNITS``: every grid shape but the
one of 8 units); parameter transforms (softplus, the wiring's mask, ``w erev``) are formed once per step
(ncps forms them at every unfold). Steps are of elapsed time 1 (no timespans: the grid's and the
regularly sampled data sets' case). Two products ncps computes are not needed (:func:`cfc_cost`'s
``ncps`` counts them, and tests/test_cost.py checks that count against ncps): the CfC's gate heads
``time_a``, ``time_b`` enter as ``qa s + qb``, with ``s = 1`` one head of summed weights (the fast
CfC's compiled path does so; ``elapsed`` counts the general case); and where a layer reads the
concatenation ``[x, h]``, ncps's autograd forms the gradient of all of it at every step but the
first, where the step needs only the state's share.

LTC (ncps ``LTCCell``; the derivation in docs/fast-cells.md), per batch row and step, sums over pre-synaptic ``i``:

    x' = x input_w + input_b;  s^s_ij = sigmoid(ssig_ij (x'_i - smu_ij))              (sensory)
    n_j = sum_i swe_ij s^s_ij + gleak_j vleak_j;  d_j = sum_i sw_ij s^s_ij + gleak_j + eps + cm_t_j
    K unfolds: s_ij = sigmoid(sig_ij (v_i - mu_ij)),
               v'_j = (n_j + cm_t_j v_j + sum_i we_ij s_ij) / (d_j + sum_i w_ij s_ij)
    out = v[:M] output_w + output_b;  y = readout(out)

with ``w = softplus(w_raw) mask``, ``we = w erev`` (and the sensory ones alike), ``cm_t = softplus(cm) K``,
``gleak = softplus(gleak_raw)``. Wiring: ncps and the fast cell both compute every one of the
``U x U`` synapses and ``I x U`` sensory synapses, a wiring's absent ones with weight 0 (the mask
multiplies the weights), so the counts take the dense numbers by default (``synapses``,
``sensory_synapses`` take the mask's non-zeros for what an implementation skipping them would do).
There are no matrix products in the cell: ncps sums ``w s`` elementwise (``torch.sum``), and the
synapse sums are matrix-vector products of width 2 at best (the fast torch path's ``bmm``), which no
core runs at its FMA rate, so they are elementwise work; the LTC's only products are the read-out's.

CfC (ncps ``CfCCell``, fully connected; the derivation in docs/fast-cells.md), ``L`` backbone layers of width ``W``:

    a_0 = W_0 [x, h] + b_0, y_0 = A tanh(B a_0); a_l = W_l y_{l-1} + b_l, y_l = A tanh(B a_l)
    q = W_h y_{L-1} + b_h (heads ff1, ff2, time_a, time_b; pure: ff1; L = 0: the heads read [x, h])
    default: h' = f1 (1 - g) + g f2 with f1 = tanh q1, f2 = tanh q2, g = sigmoid(qa s + qb)
    no_gate: h' = f1 + g f2;  pure: h' = amp - amp exp(-s (|w_tau| + |q1|)) q1
    y = readout(h')

A wired (NCP) CfC is not counted (:func:`cfc_cost` takes the fully connected cell only).

Update, per trainable parameter: clipping's norm (a multiply-add) and scaling (1), Adam's first
moment (lerp: 3), second moment (4), denominator (square root, divide, add: 3) and step (divide and
multiply-add: 3): 16 flops.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

CFC_MODES = ("default", "no_gate", "pure")
# flops per trainable parameter of clipping (3) and Adam (13): see the module docstring
UPDATE_FLOPS_PER_PARAMETER = 16


@dataclass(frozen=True)
class Work:
    """The operations of one part of a step, by kind: ``product`` and ``elementwise`` in flops (a
    multiply-add 2), the transcendental functions in evaluations."""

    product: int = 0
    elementwise: int = 0
    exp: int = 0
    sigmoid: int = 0
    tanh: int = 0
    softplus: int = 0

    @property
    def transcendental(self) -> int:
        return self.exp + self.sigmoid + self.tanh + self.softplus

    @property
    def flops(self) -> int:
        return self.product + self.elementwise

    def __add__(self, other: Work) -> Work:
        return Work(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def times(self, n: int) -> Work:
        return Work(**{f.name: getattr(self, f.name) * n for f in fields(self)})


@dataclass(frozen=True)
class StepCost:
    """One training step's work (:class:`Work` per part, module docstring) and its number of
    trainable parameters."""

    forward: Work
    backward: Work
    weight_grads: Work
    update: Work
    parameters: int

    @property
    def total(self) -> Work:
        return self.forward + self.backward + self.weight_grads + self.update

    def as_dict(self) -> dict:
        parts = {"forward": self.forward, "backward": self.backward, "weight_grads": self.weight_grads,
                 "update": self.update, "total": self.total}
        return {"parameters": self.parameters,
                **{name: {**{f.name: getattr(w, f.name) for f in fields(w)}, "transcendental": w.transcendental}
                   for name, w in parts.items()}}


def _check_positive(**dims: int) -> None:
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"cost: {name} must be a positive integer, got {value!r}")


def _linear(rows: int, n_in: int, n_out: int) -> int:
    """Flops of ``rows`` rows through an (n_in -> n_out) matrix product."""
    return 2 * rows * n_in * n_out


def _update(parameters: int) -> Work:
    return Work(elementwise=UPDATE_FLOPS_PER_PARAMETER * parameters)


def _readout_and_loss(n: int, width: int, outputs: int) -> tuple[Work, Work, Work]:
    """(forward, backward, weight_grads) of the read-out ``Linear(width, outputs)`` over ``n`` rows
    and the mean squared error: forward product, bias add (1), loss (difference 1, squares summed 2);
    backward loss gradient (difference, scale: 2) and input-gradient product; weight-gradient product
    and bias sum (1)."""
    forward = Work(product=_linear(n, width, outputs), elementwise=n * outputs * (1 + 3) + 1)
    backward = Work(product=_linear(n, outputs, width), elementwise=2 * n * outputs)
    weight_grads = Work(product=_linear(n, outputs, width), elementwise=n * outputs)
    return forward, backward, weight_grads


def ltc_parameters(inputs: int, units: int, motor: int, outputs: int) -> int:
    """Trainable parameters of the LTC model: sigma, mu, w, erev (U x U), their sensory ones (I x U),
    gleak, vleak, cm (U), input_w, input_b (I), output_w, output_b (M) and the read-out."""
    return 4 * units * units + 4 * inputs * units + 3 * units + 2 * inputs + 2 * motor + motor * outputs + outputs


def ltc_cost(*, batch: int, steps: int, inputs: int, units: int, outputs: int, unfolds: int = 6,
             motor: int | None = None, synapses: int | None = None,
             sensory_synapses: int | None = None) -> StepCost:
    """One training step of an LTC with ``units`` neurons (``motor`` of them read out; None: all)
    over ``batch`` sequences of ``steps`` steps of ``inputs`` features, ``unfolds`` ODE unfolds per
    step, read out to ``outputs`` by a linear layer. ``synapses``, ``sensory_synapses``: those
    computed (None: all ``units**2`` and ``inputs * units``, what ncps and the fast cell compute for
    any wiring; the module docstring).

    Per synapse and unfold: forward ``sig (v - mu)`` (2), sigmoid, the two weighted sums (4);
    backward ``dnum we + dden w`` (3), times ``s (1 - s)`` (3), into ``dL/dv`` (2); weight gradients
    ``d we``, ``d w`` (4), ``sum dz``, ``sum dz v`` (3). Per neuron and unfold: forward numerator (3),
    denominator (1), division (1); backward ``dnum``, ``dden`` (2), ``dL/dv`` (2); weight gradients
    ``d n``, ``d d``, ``d cm_t`` (4). Per sensory synapse and step: forward as a synapse (6, sigmoid);
    weight gradients ``d we``, ``d w`` (4), ``dz`` (6), ``sum dz``, ``sum dz x'`` (3), ``dL/dx'`` (2)."""
    motor = units if motor is None else motor
    _check_positive(batch=batch, steps=steps, inputs=inputs, units=units, outputs=outputs, unfolds=unfolds,
                    motor=motor)
    if motor > units:
        raise ValueError(f"cost: motor must be at most units ({units}), got {motor}")
    syn = units * units if synapses is None else synapses
    sens = inputs * units if sensory_synapses is None else sensory_synapses
    for name, value, dense in (("synapses", syn, units * units), ("sensory_synapses", sens, inputs * units)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= dense:
            raise ValueError(f"cost: {name} must be an integer from 0 to {dense}, got {value!r}")
    n = batch * steps
    nk = n * unfolds
    uu, iu, u = units * units, inputs * units, units
    read_f, read_b, read_w = _readout_and_loss(n, motor, outputs)
    forward = read_f + Work(
        elementwise=(2 * n * inputs            # input map
                     + 6 * n * sens            # sensory synapses
                     + 2 * n * u               # the step's constant numerator and denominator
                     + 6 * nk * syn + 5 * nk * u  # unfolds
                     + 2 * n * motor           # output map
                     + 2 * uu + 2 * iu + 4 * u),  # per step: mask, w erev (both sets), gleak vleak, d's constant
        sigmoid=n * sens + nk * syn,
        softplus=uu + iu + 2 * u,
    )
    backward = read_b + Work(elementwise=(n * motor          # output map: dL/d(motor state)
                                          + n * motor        # output's and next step's gradient summed
                                          + 8 * nk * syn + 4 * nk * u))
    weight_grads = read_w + Work(
        elementwise=(3 * n * motor                      # output_w, output_b
                     + 7 * nk * syn + 4 * nk * u        # unfolds
                     + 15 * n * sens                    # sensory synapses
                     + 3 * n * inputs                   # input_w, input_b
                     + 3 * n * u                        # sums over batch and steps of d cm_t, d n, d d
                     + 9 * uu + 9 * iu + 6 * u),        # per parameter: chains through mask, softplus, erev
        sigmoid=uu + iu + 2 * u,                        # softplus' = sigmoid
    )
    params = ltc_parameters(inputs, units, motor, outputs)
    return StepCost(forward=forward, backward=backward, weight_grads=weight_grads, update=_update(params),
                    parameters=params)


def cfc_parameters(inputs: int, units: int, outputs: int, mode: str, backbone_units: int,
                   backbone_layers: int) -> int:
    """Trainable parameters of the fully connected CfC model (backbone, heads, pure mode's w_tau and
    A, read-out)."""
    heads = 1 if mode == "pure" else 4
    width = backbone_units if backbone_layers else inputs + units
    backbone = ((inputs + units + 1) * backbone_units + (backbone_layers - 1) * (backbone_units + 1) * backbone_units
                if backbone_layers else 0)
    return backbone + heads * (width + 1) * units + (2 * units if mode == "pure" else 0) + (units + 1) * outputs


def cfc_cost(*, batch: int, steps: int, inputs: int, units: int, outputs: int, mode: str = "default",
             backbone_units: int = 128, backbone_layers: int = 1, elapsed: bool = False,
             ncps: bool = False) -> StepCost:
    """One training step of a fully connected CfC with ``units`` neurons, ``mode`` (default, no_gate,
    pure) and ``backbone_layers`` lecun_tanh layers of ``backbone_units`` (0 layers: the heads read
    ``[x, h]``), read out to ``outputs``, over ``batch`` sequences of ``steps`` steps of ``inputs``
    features. ``elapsed``: elapsed times are given (not all 1), so that the gate needs both its heads.
    ``ncps``: count what ncps computes rather than what the step needs (module docstring): the gate's
    two heads apart, and the backward product of the first layer (the one that reads ``[x, h]``) over
    all of ``[x, h]`` rather than the state's share alone. Either way there is no backward product
    through the first layer at the first step (its state is the zero initial state, a constant).

    Per backbone unit: forward bias (1), lecun_tanh (tanh, 2 scalings); backward ``dy A B (1 - t^2)``
    (4); weight gradients the bias sum (1). Per unit, heads: forward biases (one per head), gate
    ``qa s + qb`` (2, with two gate heads), combination (default 3, no_gate 2), tanh twice, sigmoid
    once; pure: bias (1), ``|q1|``, sum, times ``-s`` (3), exp, ``amp - amp e q1`` (3). Backward: the
    output's and next step's gradient summed (1), the heads' gradients (default 13, no_gate 11, one
    more for a second gate head: ``dqa = dqb s``; pure 8; docs/fast-cells.md's derivation); weight gradients
    the head biases (one per head; pure 1, and ``d amp`` 4, ``d w_tau`` 1). One gate head of summed
    weights: ``(width + 1) units`` flops per step to sum them."""
    _check_positive(batch=batch, steps=steps, inputs=inputs, units=units, outputs=outputs)
    if mode not in CFC_MODES:
        raise ValueError(f"cost: mode must be one of {CFC_MODES}, got {mode!r}")
    if isinstance(backbone_layers, bool) or not isinstance(backbone_layers, int) or backbone_layers < 0:
        raise ValueError(f"cost: backbone_layers must be an integer >= 0, got {backbone_layers!r}")
    if backbone_layers:
        _check_positive(backbone_units=backbone_units)
    n = batch * steps
    later = batch * (steps - 1)  # rows whose state is not the initial one
    u, cat = units, inputs + units
    layers, width = backbone_layers, (backbone_units if backbone_layers else inputs + units)
    pure = mode == "pure"
    two_gate_heads = not pure and (elapsed or ncps)
    heads = 1 if pure else 4 if two_gate_heads else 3
    # products: the layers' forward and weight gradients over every row; the backward's through the
    # heads and hidden layers over every row, through the first layer (reading [x, h]) over later rows
    first_out = backbone_units if layers else heads * u  # the first layer's outputs
    layer_flops = ((_linear(n, cat, backbone_units) + (layers - 1) * _linear(n, backbone_units, backbone_units))
                   if layers else 0)
    head_flops = heads * _linear(n, width, u)
    state_back = _linear(later, first_out, cat if ncps else u)
    hidden_back = ((layers - 1) * _linear(n, backbone_units, backbone_units) + heads * _linear(n, u, width)
                   if layers else 0)
    read_f, read_b, read_w = _readout_and_loss(n, u, outputs)
    in_backbone = layers * backbone_units
    if pure:  # per step also |w_tau| (forward) and sign(w_tau) times its gradient's sum
        head_forward, head_backward, head_weights, per_step, per_step_back = 7, 8, 1 + 4 + 1, u, 2 * u
    else:
        gate = 2 if two_gate_heads else 0
        head_forward = heads + gate + (3 if mode == "default" else 2)
        head_backward = (13 if mode == "default" else 11) + (1 if two_gate_heads else 0)
        head_weights = heads
        per_step = 0 if two_gate_heads else (width + 1) * u  # time_a + time_b, weights and biases
        per_step_back = 0
    forward = read_f + Work(
        product=layer_flops + head_flops,
        elementwise=3 * n * in_backbone + head_forward * n * u + per_step,
        tanh=n * in_backbone + (0 if pure else 2 * n * u),
        sigmoid=0 if pure else n * u,
        exp=n * u if pure else 0,
    )
    backward = read_b + Work(product=hidden_back + state_back,
                             elementwise=4 * n * in_backbone + (1 + head_backward) * n * u)
    weight_grads = read_w + Work(product=layer_flops + head_flops,
                                 elementwise=n * in_backbone + head_weights * n * u + per_step_back)
    params = cfc_parameters(inputs, units, outputs, mode, backbone_units, layers)
    return StepCost(forward=forward, backward=backward, weight_grads=weight_grads, update=_update(params),
                    parameters=params)


def step_cost(spec: dict, *, batch: int, steps: int, inputs: int, outputs: int, ncps: bool = False) -> StepCost:
    """The step's cost of a model given as a config ``models:`` entry (``type`` ltc or cfc, ``units``
    and the rest; liquidbench.models.build_model's spec, defaults filled in as there); ``impl`` and
    ``checkpoint_every`` do not change what is counted; ``ncps``: :func:`cfc_cost`'s (the LTC's counts
    are the same for both). Steps of elapsed time 1. A wired CfC and mixed memory are refused."""
    from .liquid import CfcSpec, LtcSpec

    settings = dict(spec)
    kind = settings.pop("type", None)
    if kind not in ("ltc", "cfc"):
        raise ValueError(f"cost: model type must be 'ltc' or 'cfc', got {kind!r}")
    p = (LtcSpec if kind == "ltc" else CfcSpec).from_spec(settings)
    if p.mixed_memory:
        raise ValueError(f"cost: mixed_memory is not counted (model '{kind}'), expected mixed_memory false")
    dims = dict(batch=batch, steps=steps, inputs=inputs, units=p.units, outputs=outputs)
    if kind == "ltc":
        motor = p.motor_neurons if p.wiring == "autoncp" else p.units
        return ltc_cost(**dims, unfolds=p.ode_unfolds, motor=motor)
    if p.wiring != "fully_connected":
        raise ValueError(f"cost: a wired CfC is not counted, got wiring '{p.wiring}' (expected fully_connected)")
    return cfc_cost(**dims, mode=p.mode, backbone_units=p.backbone_units, backbone_layers=p.backbone_layers,
                    ncps=ncps)
