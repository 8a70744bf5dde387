"""Dropped time steps: level p removes round(p x T) of each test sequence's T steps (at least one
step is kept), at random positions drawn per sequence. What the models see of the gaps:

- on irregular data (a split with elapsed times ``t``) every model was built to take elapsed
  times (LTC and CfC as time spans, LSTM and GRU as an input channel): a kept step's elapsed time is
  the sum of the gaps since the previous kept step, so the models see how much time passed;
- on regularly sampled data no model takes elapsed times: the dropped steps are simply skipped,
  and the kept ones follow each other as if sampled regularly.

Per-step targets are scored on the kept steps; a per-sequence label is kept as it is.
"""

from __future__ import annotations

import torch

from .common import Split, generator, metric
from .settings import Grid


def drop_steps(split: Split, level: float, g: torch.Generator, per_step: bool) -> Split:
    """The split with round(level x T) steps of each sequence removed (positions sorted, per sequence)."""
    n, steps = split.x.shape[:2]
    keep = max(1, steps - round(level * steps))
    order = torch.rand((n, steps), generator=g).argsort(dim=1)[:, :keep].sort(dim=1).values
    x = split.x.gather(1, order.unsqueeze(-1).expand(-1, -1, split.x.shape[-1]))
    if per_step:
        y = split.y.gather(1, order.unsqueeze(-1).expand(-1, -1, split.y.shape[-1])) if split.y.dim() == 3 \
            else split.y.gather(1, order)
    else:
        y = split.y
    t = None
    if split.t is not None:
        # time elapsed up to each step (its own gap included), differenced over the kept steps
        clock = split.t.cumsum(dim=1).gather(1, order)
        t = torch.cat([clock[:, :1], clock[:, 1:] - clock[:, :-1]], dim=1)
    return Split(x, y, t)


def rows(model, ctx, grid: Grid) -> list[dict]:
    out = []
    per_step = ctx.task != "classification_per_sequence"
    for level in grid.levels:
        split = ctx.test if level == 0 else drop_steps(ctx.test, level, generator(ctx.seed, "drop", level), per_step)
        value = ctx.clean if level == 0 else metric(model, split, ctx.task, ctx.batch_size)
        out.append({"family": "drop", "level": level, "metric": value, "n": len(split.x),
                    "steps_kept": int(split.x.shape[1])})
    return out
