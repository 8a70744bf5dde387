"""Baselines from torch.nn. With irregular sampling the elapsed time is an extra input channel."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .sequence import SequenceModel, spec_from


@dataclass(frozen=True)
class RnnSpec:
    """The settings of an LSTM or GRU baseline; the field defaults are a config entry's defaults."""

    hidden_size: int = 32
    num_layers: int = 1

    @classmethod
    def from_spec(cls, spec: dict | RnnSpec, model: str) -> RnnSpec:
        """The checked settings of a config ``models:`` entry without its ``type``; ``model`` ('lstm'
        or 'gru') names it in messages (an instance is taken as it is)."""
        return spec if isinstance(spec, cls) else spec_from(cls, spec, model)


class TorchRNN(nn.Module):
    def __init__(self, cls: type[nn.RNNBase], n_in: int, hidden_size: int, num_layers: int, irregular: bool):
        super().__init__()
        self.irregular = irregular
        self.rnn = cls(n_in + int(irregular), hidden_size, num_layers=num_layers, batch_first=True)

    def forward(self, x: torch.Tensor, elapsed: torch.Tensor | None) -> torch.Tensor:
        return self.run(x, elapsed)[0]

    def run(self, x: torch.Tensor, elapsed: torch.Tensor | None, state=None):
        """(every step's output, the last state) from ``state`` (torch's h0, or (h0, c0) for LSTM)."""
        if self.irregular:
            if elapsed is None:
                raise ValueError("this model was built for irregular sampling and needs elapsed times")
            x = torch.cat([x, elapsed.unsqueeze(-1)], dim=-1)
        return self.rnn(x, state)


def _build(cls, name, spec, n_features, n_outputs, task, irregular):
    p = RnnSpec.from_spec(spec, name)
    core = TorchRNN(cls, n_features, p.hidden_size, p.num_layers, irregular)
    return SequenceModel(core, p.hidden_size, n_outputs, task)


def build_lstm(spec, *, n_features, n_outputs, task, irregular=False):
    return _build(nn.LSTM, "lstm", spec, n_features, n_outputs, task, irregular)


def build_gru(spec, *, n_features, n_outputs, task, irregular=False):
    return _build(nn.GRU, "gru", spec, n_features, n_outputs, task, irregular)
