"""LTC and CfC: ncps's implementations (``impl: ncps``, the reference) or this package's fast ones
(``impl: fast``, :class:`.ltc_fast.LTC` and :class:`.cfc_fast.CfC`, also ``liquidbench.fast``): the
fast classes are ncps's with their own forward, so both have the same constructor, parameters,
state dict layout and initial weights.

Wiring is ``fully_connected`` (``units`` neurons, all read out) or ``autoncp`` (an NCP with
``units`` neurons of which ``motor_neurons`` are read out). Elapsed times, when given, go to the
cell as ``timespans``.

``checkpoint_every`` (steps, 0 = off): in training, a sequence longer than this runs in chunks of
that many steps whose activations are recomputed during the backward pass (activation
checkpointing), so that memory grows with the chunk rather than with the sequence. The gradients
are the same; the cost is one more forward pass. Back-propagation through a 12,043-step sequence
(traffic, protocol prefix_2020) would otherwise hold tens of GB for an LTC with 6 unfolds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from ncps import torch as ncps_torch
from ncps.wirings import AutoNCP
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import cfc_fast, ltc_fast
from .sequence import SequenceModel, spec_from

IMPLS = ("ncps", "fast")
WIRINGS = ("fully_connected", "autoncp")
CFC_MODES = ("default", "pure", "no_gate")


class NcpCore(nn.Module):
    """Runs an ncps LTC or CfC layer over a batch-first sequence and returns every step's output."""

    def __init__(self, rnn: nn.Module, checkpoint_every: int = 0):
        super().__init__()
        self.rnn = rnn
        self.checkpoint_every = checkpoint_every

    def forward(self, x: torch.Tensor, elapsed: torch.Tensor | None) -> torch.Tensor:
        k = self.checkpoint_every
        if elapsed is None and k and x.shape[1] > k and self.training and torch.is_grad_enabled():
            return self._chunked(x, k)
        return self.run(x, elapsed)[0]

    def run(self, x: torch.Tensor, elapsed: torch.Tensor | None, state=None):
        """(every step's output, the last state) from ``state`` (ncps's hx: h, or (h, c) with mixed
        memory; None: zeros)."""
        if elapsed is None:
            return self.rnn(x, state)
        # ncps squeezes each step's timespans to shape (B,), which broadcasts against the (B, H)
        # state along the wrong axis. Drive the same cell step by step with (B, 1) gaps instead,
        # as ncps's own loop does for regular sampling. This uses ncps's private attributes
        # (rnn_cell, use_mixed, lstm, fc, state_size) and so is tied to the pinned ncps version
        # (constraints.txt): tests/test_models.py checks it against ncps's own loop, which with
        # gaps of 1 must give the same outputs; re-check when ncps is upgraded.
        rnn = self.rnn
        if state is None:
            h = x.new_zeros(x.shape[0], rnn.state_size)
            c = x.new_zeros(x.shape[0], rnn.state_size) if rnn.use_mixed else None
        else:
            h, c = state if rnn.use_mixed else (state, None)
        fc = getattr(rnn, "fc", nn.Identity())
        outputs = []
        for t in range(x.shape[1]):
            inputs = x[:, t]
            if rnn.use_mixed:
                h, c = rnn.lstm(inputs, (h, c))
            out, h = rnn.rnn_cell(inputs, h, elapsed[:, t : t + 1])
            outputs.append(fc(out))
        return torch.stack(outputs, dim=1), ((h, c) if rnn.use_mixed else h)

    def _chunked(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The same sequence as one call, in chunks of k steps that keep only their boundary state."""
        h = x.new_zeros(x.shape[0], self.rnn.state_size)
        state = (h, torch.zeros_like(h)) if self.rnn.use_mixed else h
        outputs = []
        for start in range(0, x.shape[1], k):
            out, state = checkpoint(self.rnn, x[:, start : start + k], state, use_reentrant=False)
            outputs.append(out)
        return torch.cat(outputs, dim=1)


@dataclass(frozen=True)
class LiquidSpec:
    """The settings LTC and CfC share (module docstring), checked when built; ``MODEL`` names the
    model in messages and picks its classes. The field defaults are a config entry's defaults."""

    MODEL: ClassVar[str]
    units: int = 32
    wiring: str = "fully_connected"
    motor_neurons: int = 8
    mixed_memory: bool = False
    impl: str = "ncps"
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        name = self.MODEL
        if self.wiring not in WIRINGS:
            raise ValueError(f"model '{name}': wiring '{self.wiring}' is unknown, expected one of {WIRINGS}")
        if self.wiring == "autoncp" and not 0 < self.motor_neurons < self.units - 2:
            raise ValueError(f"model '{name}': autoncp needs 0 < motor_neurons < units - 2")
        if self.impl not in IMPLS:
            raise ValueError(f"model '{name}': impl '{self.impl}' is unknown, expected one of {IMPLS}")
        k = self.checkpoint_every
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ValueError(f"model '{name}': checkpoint_every must be a number of steps >= 0 (0: off), got {k!r}")
        if self.impl == "fast" and k:
            raise ValueError(f"model '{name}': checkpoint_every applies to impl ncps; impl fast keeps its own "
                             "per-step state for the backward pass (set checkpoint_every 0 or impl ncps)")

    @classmethod
    def from_spec(cls, spec: dict | LiquidSpec) -> LiquidSpec:
        """The checked settings of a config ``models:`` entry without its ``type`` (an instance is
        taken as it is)."""
        return spec if isinstance(spec, cls) else spec_from(cls, spec, cls.MODEL)


@dataclass(frozen=True)
class LtcSpec(LiquidSpec):
    """An LTC's settings: the shared ones and the ODE solver's unfolds per step."""

    MODEL: ClassVar[str] = "ltc"
    ode_unfolds: int = 6


@dataclass(frozen=True)
class CfcSpec(LiquidSpec):
    """A CfC's settings: the shared ones, its mode and its backbone (fully connected wiring only)."""

    MODEL: ClassVar[str] = "cfc"
    mode: str = "default"
    backbone_units: int = 64
    backbone_layers: int = 1
    backbone_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in CFC_MODES:
            raise ValueError(f"model 'cfc': mode '{self.mode}' is unknown, expected one of {CFC_MODES}")
        super().__post_init__()


def units_and_width(spec: LiquidSpec, seed: int = 22222):
    """(what the LTC or CfC class takes as units: their number or an NCP wiring, the read-out width)."""
    if spec.wiring == "fully_connected":
        return spec.units, spec.units
    return AutoNCP(spec.units, spec.motor_neurons, seed=seed), spec.motor_neurons


# impl -> (module, core) per model: ncps's LTC and CfC, or this package's fast ones (the same
# constructor, parameters and initial weights: liquidbench.fast)
CLASSES = {
    "ltc": {"ncps": (ncps_torch.LTC, NcpCore), "fast": (ltc_fast.LTC, ltc_fast.FastLtcCore)},
    "cfc": {"ncps": (ncps_torch.CfC, NcpCore), "fast": (cfc_fast.CfC, cfc_fast.FastCfcCore)},
}


def rnn_classes(spec: LiquidSpec):
    """(the LTC or CfC class, a function rnn -> core) for ``spec.impl``."""
    rnn_class, core = CLASSES[spec.MODEL][spec.impl]
    if spec.impl == "ncps":
        return rnn_class, lambda rnn: core(rnn, spec.checkpoint_every)
    return rnn_class, core


def build_ltc(spec: dict | LtcSpec, *, n_features, n_outputs, task, irregular=False):
    p = LtcSpec.from_spec(spec)
    units, out_dim = units_and_width(p)
    rnn_class, core = rnn_classes(p)
    rnn = rnn_class(n_features, units, return_sequences=True, batch_first=True,
                    mixed_memory=p.mixed_memory, ode_unfolds=p.ode_unfolds)
    return SequenceModel(core(rnn), out_dim, n_outputs, task)


def build_cfc(spec: dict | CfcSpec, *, n_features, n_outputs, task, irregular=False):
    p = CfcSpec.from_spec(spec)
    units, out_dim = units_and_width(p)
    rnn_class, core = rnn_classes(p)
    kwargs = dict(return_sequences=True, batch_first=True, mixed_memory=p.mixed_memory, mode=p.mode)
    if p.wiring == "fully_connected":
        kwargs.update(backbone_units=p.backbone_units, backbone_layers=p.backbone_layers,
                      backbone_dropout=p.backbone_dropout)
    rnn = rnn_class(n_features, units, **kwargs)
    return SequenceModel(core(rnn), out_dim, n_outputs, task)
