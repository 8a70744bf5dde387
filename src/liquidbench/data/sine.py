"""Synthetic sine-cosine data set, a generalisation of the ncps example.

Each sequence has its own frequency ω and phase φ. Input per step ``[sin(ωt+φ), cos(ωt+φ)]``
(plus Gaussian noise σ). The target per step (``target``, one of ``TARGETS``):

- ``double_angle`` (the default): ``sin(2(ωt+φ))``, the ncps example's task;
- ``next``: the next step's input without its noise, ``[sin(ω(t+dt)+φ), cos(ω(t+dt)+φ)]``, a
  forecasting task whose prediction can be fed back as the next input (the evaluation stage's
  closed-loop horizon, liquidbench.evaluate.horizon). The clean next input is the target: the noise
  of a step is not predictable from the steps before it. The inputs are those of ``double_angle``
  with the same parameters, bit for bit.

With ``irregular: true`` the gaps between steps are random (exponential, mean ``dt``) and are given
to the model as elapsed time; ``next`` refuses it (the next input depends on a gap the model has not
seen yet).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .store import save_dataset

DEFAULTS = {
    "n_sequences": 1024,
    "seq_len": 64,
    "dt": 0.1,
    "freq_min": 0.5,
    "freq_max": 2.0,
    "noise_std": 0.0,
    "irregular": False,
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "seed": 0,
    "target": "double_angle",
}
TARGETS = ("double_angle", "next")
NEXT = "next"  # the target that makes a sine data set a forecasting task


def target(params: dict) -> str:
    """The target of a sine data set of ``params`` (the default filled in), checked: an unknown one is
    an error naming it and the allowed ones."""
    value = {**DEFAULTS, **params}["target"]
    if value not in TARGETS:
        raise ValueError(f"sine data set: target {value!r} is unknown, expected one of {list(TARGETS)}")
    return value


def generate(params: dict) -> dict[str, np.ndarray]:
    """All sequences as arrays ``x`` (N, T, 2), ``y`` (N, T, 1) and, if irregular, ``t`` (N, T)."""
    p = {**DEFAULTS, **params}
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"sine data set: unknown parameter(s) {sorted(unknown)}, expected {sorted(DEFAULTS)}")
    if p["n_sequences"] < 3 or p["seq_len"] < 1:
        raise ValueError("sine data set: n_sequences must be >= 3 and seq_len >= 1")
    if not 0 < p["freq_min"] <= p["freq_max"]:
        raise ValueError("sine data set: expected 0 < freq_min <= freq_max")
    forecast = target(params) == NEXT
    if forecast and p["irregular"]:
        raise ValueError("sine data set: target 'next' needs regular sampling (irregular: false): with irregular "
                         "gaps the next input depends on a gap the model has not seen")
    rng = np.random.default_rng(p["seed"])
    n, steps = p["n_sequences"], p["seq_len"]
    omega = rng.uniform(p["freq_min"], p["freq_max"], size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    if p["irregular"]:
        gaps = rng.exponential(p["dt"], size=(n, steps)) + 1e-3 * p["dt"]
    else:
        gaps = np.full((n, steps + int(forecast)), p["dt"])  # forecasting: one step more, for the last target
    t = np.cumsum(gaps, axis=1) - gaps[:, :1]
    angle = omega * t + phase
    clean = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    x = clean[:, :steps]
    if p["noise_std"] > 0:
        x = x + rng.normal(0.0, p["noise_std"], size=x.shape)
    y = clean[:, 1:] if forecast else np.sin(2 * angle)[..., None]
    out = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
    if p["irregular"]:
        out["t"] = gaps.astype(np.float32)
    return out


def split(arrays: dict[str, np.ndarray], val_fraction: float, test_fraction: float) -> dict:
    n = len(arrays["x"])
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n - n_val - n_test < 1 or n_val < 1 or n_test < 1:
        raise ValueError(f"sine data set: {n} sequences cannot be split into train/val/test")
    bounds = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test), "test": (n - n_test, n)}
    return {name: {k: v[a:b] for k, v in arrays.items()} for name, (a, b) in bounds.items()}


def prepare(params: dict, out_dir: str | Path, **_sources) -> dict:
    p = {**DEFAULTS, **params}
    arrays = generate(params)
    splits = split(arrays, p["val_fraction"], p["test_fraction"])
    return save_dataset(out_dir, splits, "regression_per_step", {"dataset": "sine", "seed": p["seed"], "generator": p,
                                                                        "params": p})

def evaluation_sets(params: dict, shift_levels: list[float], shift_n: int, horizon_steps: int | None,
                    horizon_n: int, seed: int) -> dict[str, np.ndarray]:
    """The evaluation stage's extra test sets for a sine data set of ``params`` (liquidbench.evaluate):

    - shift level s (> 0): ``shift_n`` sequences with frequencies in [freq_max, freq_max (1 + s)]
      and amplitudes (inputs and target) in [1, 1 + s], the trained length;
    - horizon (a forecasting data set only, ``target: next``): ``horizon_n`` sequences of the
      training distribution, ``horizon_steps`` steps longer.

    Targets follow the data set's ``target``. Seeded by ``seed`` (and the level), independent of the
    training data's seed.
    """
    p = {**DEFAULTS, **params}
    if horizon_steps and target(params) != NEXT:
        raise ValueError(f"sine evaluation sets: the horizon is closed-loop and needs a forecasting data set "
                         f"(params target: {NEXT}), this one's target is {target(params)!r}")
    base = {k: v for k, v in params.items() if k not in ("val_fraction", "test_fraction")}
    out: dict[str, np.ndarray] = {"shift_levels": np.asarray(shift_levels, dtype=np.float64)}
    for i, level in enumerate(shift_levels):
        if not level > 0:
            raise ValueError(f"sine evaluation sets: shift level must be > 0, got {level}")
        arrays = generate({**base, "n_sequences": max(shift_n, 3), "freq_min": p["freq_max"],
                           "freq_max": p["freq_max"] * (1 + level), "seed": seed * 1000 + 1 + i})
        amp = np.random.default_rng([seed, i, 7]).uniform(1.0, 1.0 + level, size=(len(arrays["x"]), 1, 1))
        arrays["x"], arrays["y"] = (arrays["x"] * amp).astype(np.float32), (arrays["y"] * amp).astype(np.float32)
        out |= {f"shift{i}_{k}": v[:shift_n] for k, v in arrays.items()}
    if horizon_steps:
        arrays = generate({**base, "n_sequences": max(horizon_n, 3), "seq_len": p["seq_len"] + horizon_steps,
                           "seed": seed * 1000})
        out |= {f"horizon_{k}": v[:horizon_n] for k, v in arrays.items()}
    return out
