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

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .params import from_mapping
from .store import save_dataset

TARGETS = ("double_angle", "next")
NEXT = "next"  # the target that makes a sine data set a forecasting task


def check_target(value: str) -> str:
    """``value`` if it is one of ``TARGETS``, else an error naming it and the allowed ones."""
    if value not in TARGETS:
        raise ValueError(f"sine data set: target {value!r} is unknown, expected one of {list(TARGETS)}")
    return value


@dataclass(frozen=True)
class SineParams:
    """The parameters of a sine data set (module docstring), checked when built: every instance,
    also one derived by ``dataclasses.replace`` (the evaluation sets), is one ``generate`` accepts.
    The field defaults are the data set's defaults; the field order is the order meta.json records."""

    n_sequences: int = 1024
    seq_len: int = 64
    dt: float = 0.1
    freq_min: float = 0.5
    freq_max: float = 2.0
    noise_std: float = 0.0
    irregular: bool = False
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    target: str = "double_angle"

    def __post_init__(self) -> None:
        if self.n_sequences < 3 or self.seq_len < 1:
            raise ValueError("sine data set: n_sequences must be >= 3 and seq_len >= 1")
        if not 0 < self.freq_min <= self.freq_max:
            raise ValueError("sine data set: expected 0 < freq_min <= freq_max")
        if check_target(self.target) == NEXT and self.irregular:
            raise ValueError("sine data set: target 'next' needs regular sampling (irregular: false): with irregular "
                             "gaps the next input depends on a gap the model has not seen")

    @classmethod
    def from_params(cls, params: dict | SineParams) -> SineParams:
        """The checked parameters of a study file's ``params`` (an instance is taken as it is)."""
        return params if isinstance(params, cls) else from_mapping(cls, params, "sine data set")


# the defaults as a mapping, for the config schema's test and liquidbench.data.expected_params
DEFAULTS = asdict(SineParams())


def target(params: dict | SineParams) -> str:
    """The target of a sine data set of ``params`` (the default filled in), checked: an unknown one is
    an error naming it and the allowed ones. Only the target is read and checked: the workflow asks
    for it while it plans the jobs, and the other parameters are checked when the data set is made."""
    if isinstance(params, SineParams):
        return params.target
    return check_target(params.get("target", SineParams.target))


def generate(params: dict | SineParams) -> dict[str, np.ndarray]:
    """All sequences as arrays ``x`` (N, T, 2), ``y`` (N, T, 1) and, if irregular, ``t`` (N, T)."""
    p = SineParams.from_params(params)
    forecast = p.target == NEXT
    rng = np.random.default_rng(p.seed)
    n, steps = p.n_sequences, p.seq_len
    omega = rng.uniform(p.freq_min, p.freq_max, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    if p.irregular:
        gaps = rng.exponential(p.dt, size=(n, steps)) + 1e-3 * p.dt
    else:
        gaps = np.full((n, steps + int(forecast)), p.dt)  # forecasting: one step more, for the last target
    t = np.cumsum(gaps, axis=1) - gaps[:, :1]
    angle = omega * t + phase
    clean = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    x = clean[:, :steps]
    if p.noise_std > 0:
        x = x + rng.normal(0.0, p.noise_std, size=x.shape)
    y = clean[:, 1:] if forecast else np.sin(2 * angle)[..., None]
    out = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
    if p.irregular:
        out["t"] = gaps.astype(np.float32)
    return out


def split(arrays: dict[str, np.ndarray], val_fraction: float, test_fraction: float) -> dict:
    n = len(arrays["x"])
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n - n_val - n_test < 1 or n_val < 1 or n_test < 1:
        raise ValueError(f"sine data set: {n} sequences cannot be split into train/val/test")
    bounds = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test), "test": (n - n_test, n)}
    return {name: {k: v[a:b] for k, v in arrays.items()} for name, (a, b) in bounds.items()}


def prepare(params: dict | SineParams, out_dir: str | Path, **_sources) -> dict:
    p = SineParams.from_params(params)
    splits = split(generate(p), p.val_fraction, p.test_fraction)
    recorded = asdict(p)
    return save_dataset(out_dir, splits, "regression_per_step", {"dataset": "sine", "seed": p.seed,
                                                                        "generator": recorded, "params": recorded})


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
    p = SineParams.from_params(params)
    if horizon_steps and p.target != NEXT:
        raise ValueError(f"sine evaluation sets: the horizon is closed-loop and needs a forecasting data set "
                         f"(params target: {NEXT}), this one's target is {p.target!r}")
    out: dict[str, np.ndarray] = {"shift_levels": np.asarray(shift_levels, dtype=np.float64)}
    for i, level in enumerate(shift_levels):
        if not level > 0:
            raise ValueError(f"sine evaluation sets: shift level must be > 0, got {level}")
        arrays = generate(replace(p, n_sequences=max(shift_n, 3), freq_min=p.freq_max,
                                  freq_max=p.freq_max * (1 + level), seed=seed * 1000 + 1 + i))
        amp = np.random.default_rng([seed, i, 7]).uniform(1.0, 1.0 + level, size=(len(arrays["x"]), 1, 1))
        arrays["x"], arrays["y"] = (arrays["x"] * amp).astype(np.float32), (arrays["y"] * amp).astype(np.float32)
        out |= {f"shift{i}_{k}": v[:shift_n] for k, v in arrays.items()}
    if horizon_steps:
        arrays = generate(replace(p, n_sequences=max(horizon_n, 3), seq_len=p.seq_len + horizon_steps,
                                  seed=seed * 1000))
        out |= {f"horizon_{k}": v[:horizon_n] for k, v in arrays.items()}
    return out
