"""Additive Gaussian noise on the inputs: level a adds a x std_f x N(0, 1) to feature f, with std_f
the feature's standard deviation over the training split (so a level is a fraction of each
feature's spread). Level 0 is the clean test split."""

from __future__ import annotations

import torch

from .common import Split, generator, metric
from .settings import Grid


def rows(model, ctx, grid: Grid) -> list[dict]:
    std = ctx.train_x.reshape(-1, ctx.train_x.shape[-1]).std(dim=0)
    out = []
    for level in grid.levels:
        x = ctx.test.x
        if level == 0:
            value = ctx.clean
        else:
            x = x + level * std * torch.randn(x.shape, generator=generator(ctx.seed, "noise", level))
            value = metric(model, Split(x, ctx.test.y, ctx.test.t), ctx.task, ctx.batch_size)
        out.append({"family": "noise", "level": level, "metric": value, "n": len(x)})
    return out
