"""A shifted test distribution for the sine task: per level s, sequences whose frequencies lie
above the training range, in [freq_max, freq_max (1 + s)], and whose amplitude (inputs and target)
lies in [1, 1 + s] instead of 1. The sets are prepared by the data stage (``liquidbench
prepare-eval``, liquidbench.data.sine.shifted), seeded; this module only scores them."""

from __future__ import annotations

from .common import Split, metric
from .settings import Grid


def rows(model, ctx, grid: Grid) -> list[dict]:
    sets = ctx.extra_sets("shift")
    out = []
    for level in grid.levels:
        if level not in sets:
            raise ValueError(f"shift level {level:g}: not in the prepared evaluation sets ({sorted(sets)}); "
                             "prepare them again with this grid")
        split: Split = sets[level]
        out.append({"family": "shift", "level": level, "metric": metric(model, split, ctx.task, ctx.batch_size),
                    "n": len(split.x)})
    return out
