"""A long horizon for the sine task: sequences of the training distribution (prepared by the data
stage, seeded) that run ``steps`` steps beyond the trained sequence length T; the model runs over
the whole sequence and the squared error is kept per horizon step h = 1..steps (step T + h).

Not closed-loop: the sine task maps inputs (sin θ, cos θ) to the target sin 2θ, so a prediction
cannot be fed back as the next input; what is measured is how the error of the recurrent state
grows when it runs past the length it was trained on, on true inputs.
"""

from __future__ import annotations

from .common import outputs


def rows(model, ctx, grid: dict) -> list[dict]:
    split = ctx.extra_sets("horizon")[0.0]
    trained = ctx.seq_len
    steps = split.x.shape[1] - trained
    if steps < grid["steps"]:
        raise ValueError(f"horizon: the prepared set runs {steps} steps past the trained length, the grid asks for "
                         f"{grid['steps']}; prepare it again with this grid")
    err = (outputs(model, split, ctx.batch_size) - split.y).pow(2).mean(dim=(0, 2))  # per step
    within = float(err[:trained].mean())
    out = [{"family": "horizon", "level": 0.0, "step": 0, "metric": within, "n": len(split.x)}]
    out += [{"family": "horizon", "level": float(h), "step": h, "metric": float(err[trained + h - 1]), "n": len(split.x)}
            for h in range(1, grid["steps"] + 1)]
    return out
