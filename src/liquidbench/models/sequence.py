"""A recurrent core plus a linear read-out, shaped for the three task types."""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping, TypeVar

import torch
from torch import nn

T = TypeVar("T")


class SequenceModel(nn.Module):
    """Wraps a recurrent core ``core(x, elapsed) -> (B, T, H)`` with a linear read-out. The core's
    ``run(x, elapsed, state) -> ((B, T, H), state)`` does the same from a given state.

    Per-step tasks read out every step; ``classification_per_sequence`` reads out the last step.
    """

    def __init__(self, core: nn.Module, hidden: int, n_outputs: int, task: str):
        super().__init__()
        self.core = core
        self.readout = nn.Linear(hidden, n_outputs)
        self.task = task

    def forward(self, x: torch.Tensor, elapsed: torch.Tensor | None = None) -> torch.Tensor:
        h = self.core(x, elapsed)
        if self.task == "classification_per_sequence":
            h = h[:, -1]
        return self.readout(h)

    def run(self, x: torch.Tensor, elapsed: torch.Tensor | None = None, state=None):
        """``forward`` from a recurrent state (None: the zero state forward starts from), returning the
        outputs and the state after the last step: a sequence run in pieces, each from the state the
        one before left, gives the outputs of one run over the whole sequence. The evaluation
        stage's closed loop (liquidbench.evaluate.horizon) feeds predictions back this way. The state
        is the core's own: a tensor, or a tuple for LSTM and mixed memory."""
        h, state = self.core.run(x, elapsed, state)
        if self.task == "classification_per_sequence":
            h = h[:, -1]
        return self.readout(h), state


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def spec_from(cls: type[T], spec: Mapping, model: str) -> T:
    """``cls`` (a model's frozen settings dataclass, its field defaults the model's defaults) built
    from a config ``models:`` entry without its ``type``; unknown keys are an error naming the model
    and key."""
    names = [f.name for f in fields(cls)]
    unknown = set(spec) - set(names)
    if unknown:
        raise ValueError(f"model '{model}': unknown parameter(s) {sorted(unknown)}, expected {sorted(names)}")
    return cls(**spec)
