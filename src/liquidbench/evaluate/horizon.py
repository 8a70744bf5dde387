"""A closed-loop long horizon on a forecasting sine data set (``target: next``: the target of each
step is the next step's clean input).

The prepared horizon set (liquidbench.data.sine.evaluation_sets, seeded) holds sequences of the
training distribution, ``steps`` steps longer than the trained length T. The model runs over the
first T true inputs; then, for h = 1..H, its own last prediction of the next input is fed back as
the input of step T + h, from the state the step before left (``SequenceModel.run``). The squared
error of the prediction at step T + h against the true continuation (the target there) is kept per
horizon step h, mean over sequences and features; level 0 (step 0) is the mean error over the first
T steps, on true inputs. Irregular sampling has no forecasting data set (the next input would
depend on a gap not yet seen), so it has no horizon.
"""

from __future__ import annotations

import torch

from .common import Split
from .settings import Grid


@torch.no_grad()
def closed_loop(model, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The model's outputs (N, T + steps, F) over true inputs ``x`` (N, T, F) and then ``steps``
    steps of its own predictions fed back as inputs."""
    out, state = model.run(x)
    outputs = [out]
    last = out[:, -1:]
    for _ in range(steps):
        last, state = model.run(last, None, state)
        outputs.append(last)
    return torch.cat(outputs, dim=1)


def errors(model, split: Split, trained: int, steps: int, batch_size: int) -> torch.Tensor:
    """Squared error per step (T + steps values) of the closed loop that starts after ``trained``
    true inputs, mean over the split's sequences and the features."""
    if split.t is not None:
        raise ValueError("horizon: the closed loop needs regularly sampled data (the horizon set has elapsed times)")
    if split.x.shape[-1] != split.y.shape[-1]:
        raise ValueError(f"horizon: the closed loop feeds predictions back as inputs, so the target must be the next "
                         f"input; this set has {split.x.shape[-1]} input features and {split.y.shape[-1]} targets")
    total = torch.zeros(trained + steps, dtype=torch.float64)
    for start in range(0, len(split.x), batch_size):
        x = split.x[start:start + batch_size, :trained].contiguous()
        y = split.y[start:start + batch_size, :trained + steps]
        total += (closed_loop(model, x, steps) - y).pow(2).double().mean(dim=2).sum(dim=0)
    return total / len(split.x)


def rows(model, ctx, grid: Grid) -> list[dict]:
    split = ctx.extra_sets("horizon")[0.0]
    trained = ctx.seq_len
    available = split.x.shape[1] - trained
    if available < grid.steps:
        raise ValueError(f"horizon: the prepared set runs {available} steps past the trained length, the grid asks "
                         f"for {grid.steps}; prepare it again with this grid")
    err = errors(model, split, trained, grid.steps, ctx.batch_size)
    n = len(split.x)
    out = [{"family": "horizon", "level": 0.0, "step": 0, "metric": float(err[:trained].mean()), "n": n}]
    out += [{"family": "horizon", "level": float(h), "step": h, "metric": float(err[trained + h - 1]), "n": n}
            for h in range(1, grid.steps + 1)]
    return out
