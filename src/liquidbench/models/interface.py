"""ncps's calling convention for the fast LTC and CfC (``forward(input, hx=None, timespans=None)``
-> ``(output, hx)``): the shapes ncps accepts are brought to batch-first sequences with per-sample
elapsed times, and the result back to what ncps returns.

Elapsed times are taken per sample and step: ``timespans`` of shape (batch, steps) or
(batch, steps, 1) (time first when ``batch_first`` is False; (steps,) or (steps, 1) unbatched).
ncps 1.0.1 squeezes each step's (batch,) times and broadcasts them against the units axis, which
fails, or with batch == units mixes samples and units; with one sample, or times equal across the
batch, both agree (tests/test_fast_interface.py).
"""

from __future__ import annotations

import torch
from torch import nn


def prepare(rnn: nn.Module, input: torch.Tensor, hx, timespans):
    """(x (B, T, F), h0 (B, H) or None, c0 or None, elapsed (B, T) or None, batched) from ncps's
    arguments; the same errors as ncps for a state that does not match the input."""
    if input.dim() not in (2, 3):
        raise ValueError(f"input: expected (steps, features) or a batch of 3 dimensions, got shape {tuple(input.shape)}")
    batched = input.dim() == 3
    batch_dim = 0 if rnn.batch_first else 1
    if not batched:
        input = input.unsqueeze(batch_dim)
        if timespans is not None:
            timespans = timespans.unsqueeze(batch_dim)
    x = input if rnn.batch_first else input.transpose(0, 1)
    elapsed = None
    if timespans is not None:
        elapsed = timespans if rnn.batch_first else timespans.transpose(0, 1)
        if elapsed.dim() == 3 and elapsed.shape[-1] == 1:
            elapsed = elapsed.squeeze(-1)
        if elapsed.shape != x.shape[:2]:
            raise ValueError(f"timespans: expected one elapsed time per sample and step, shape {tuple(x.shape[:2])} "
                             f"(or with a trailing 1), got {tuple(timespans.shape)}")
        elapsed = elapsed.to(x.dtype)
    h0 = c0 = None
    if hx is not None:
        if rnn.use_mixed and isinstance(hx, torch.Tensor):
            raise RuntimeError("Running a CfC with mixed_memory=True, requires a tuple (h0,c0) to be passed as state "
                               "(got torch.Tensor instead)")
        h0, c0 = hx if rnn.use_mixed else (hx, None)
        if batched and h0.dim() != 2:
            raise RuntimeError(f"For batched 2-D input, hx and cx should also be 2-D but got ({h0.dim()}-D) tensor")
        if not batched:
            if h0.dim() != 1:
                raise RuntimeError(f"For unbatched 1-D input, hx and cx should also be 1-D but got ({h0.dim()}-D) tensor")
            h0 = h0.unsqueeze(0)
            c0 = c0.unsqueeze(0) if c0 is not None else None
        if h0.shape != (x.shape[0], rnn.state_size):
            raise ValueError(f"hx: expected the state of shape {(x.shape[0], rnn.state_size)}, got {tuple(h0.shape)}")
    return x, h0, c0, elapsed, batched


def finish(rnn: nn.Module, outputs: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, batched: bool):
    """ncps's ``(readout, hx)`` from every step's output (B, T, O) (projected already), the last state
    and the last memory cell (mixed memory)."""
    readout = outputs if rnn.return_sequences else outputs[:, -1]
    if rnn.return_sequences and not rnn.batch_first:
        readout = readout.transpose(0, 1)
    hx = (h, c) if rnn.use_mixed else h
    if not batched:
        readout = readout.squeeze(0 if rnn.batch_first else 1)
        hx = (h[0], c[0]) if rnn.use_mixed else h[0]
    return readout, hx


def step_by_step(rnn: nn.Module, x: torch.Tensor, elapsed: torch.Tensor | None, h0, c0):
    """ncps's own cell, one step at a time (the path for options the fused recurrences do not cover):
    (every step's cell output (B, T, O), last state, last cell or None). Elapsed times go to the cell
    as (B, 1), one per sample."""
    bsz = x.shape[0]
    h = x.new_zeros(bsz, rnn.state_size) if h0 is None else h0
    c = (x.new_zeros(bsz, rnn.state_size) if c0 is None else c0) if rnn.use_mixed else None
    outputs = []
    for t in range(x.shape[1]):
        if rnn.use_mixed:
            h, c = rnn.lstm(x[:, t], (h, c))
        out, h = rnn.rnn_cell(x[:, t], h, 1.0 if elapsed is None else elapsed[:, t: t + 1])
        outputs.append(out)
    return torch.stack(outputs, dim=1), h, c
