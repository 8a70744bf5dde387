"""The ``evaluation:`` section of a study: which perturbation families run, on which grid.

Its defaults live in the config schema (workflow/schemas/config.schema.yaml, filled in when the
workflow validates the study); the workflow passes the whole section to ``liquidbench evaluate``.
``Evaluation.from_settings`` is the one place that rejects what a person could get wrong by hand:
an unknown family or key, a level outside its range — each error names it. ``horizon_applies`` is
the one place that decides which data sets the closed-loop horizon runs on (the workflow, before
any job, and ``liquidbench evaluate`` ask it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..data.sine import NEXT, target


@dataclass(frozen=True, kw_only=True)
class Check:
    """What a value of the section must be: ``kind`` levels (a list of numbers), int or names (a list
    of data set names), and for numbers the range [low, high], or [low, high) where not ``closed``."""

    kind: str
    low: float = 0
    high: float = 0
    closed: bool = True


# family -> {key: its check}
KEYS = {
    "noise": {"levels": Check(kind="levels", low=0.0, high=10.0)},
    "drop": {"levels": Check(kind="levels", low=0.0, high=1.0, closed=False)},
    "shift": {"levels": Check(kind="levels", low=0.0, high=10.0),
              "n_sequences": Check(kind="int", low=1, high=1_000_000)},
    "horizon": {"steps": Check(kind="int", low=1, high=100_000),
                "n_sequences": Check(kind="int", low=1, high=1_000_000),
                "datasets": Check(kind="names")},
}
# keys a grid may leave out (absent: horizon runs on every forecasting data set)
OPTIONAL = {"horizon": {"datasets"}}
TOP = {"seed", "batch_size", "families"}


def _check_value(where: str, value, check: Check):
    kind, low, high, closed = check.kind, check.low, check.high, check.closed

    def bad(x) -> bool:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return True
        return x < low or (x > high if closed else x >= high)

    if kind == "names":
        if (not isinstance(value, list) or not value or len(set(map(str, value))) != len(value)
                or not all(isinstance(x, str) and x for x in value)):
            raise ValueError(f"{where}: expected a non-empty list of distinct data set names, got {value!r}")
        return list(value)
    rng = f"[{low:g}, {high:g}{']' if closed else ')'}"
    if kind == "int":
        if not isinstance(value, int) or bad(value):
            raise ValueError(f"{where}: expected an integer in {rng}, got {value!r}")
        return value
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list of levels in {rng}, got {value!r}")
    for x in value:
        if bad(x):
            raise ValueError(f"{where}: level {x!r} is out of range, expected a number in {rng}")
    if len(set(value)) != len(value):
        raise ValueError(f"{where}: levels repeat: {value}")
    return [float(x) for x in value]


@dataclass(frozen=True, kw_only=True)
class Grid:
    """One perturbation family's grid; each family uses the keys KEYS gives it (None: not used).
    ``levels``: noise std, drop fraction or shift size; ``n_sequences``: sequences of the extra sets
    (shift, horizon); ``steps``: horizon length past the trained one; ``datasets``: where the
    horizon runs (None: every forecasting sine data set)."""

    levels: tuple[float, ...] | None = None
    n_sequences: int | None = None
    steps: int | None = None
    datasets: tuple[str, ...] | None = None

    def as_dict(self) -> dict:
        """The grid as the config gives it, the keys it has in KEYS order (lists for sequences)."""
        return {f.name: list(v) if isinstance(v, tuple) else v
                for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """The checked ``evaluation:`` section: the seed, the batch size, and the families in config order."""

    seed: int
    batch_size: int
    families: dict[str, Grid]

    @classmethod
    def from_settings(cls, settings: dict) -> Evaluation:
        """The evaluation settings, checked (``seed``, ``batch_size`` and ``families`` {name: grid});
        an unknown family or key, or a value out of range, is an error naming it."""
        if not isinstance(settings, dict):
            raise ValueError(f"evaluation: expected a mapping, got {settings!r}")
        unknown = set(settings) - TOP
        missing = TOP - set(settings)
        if unknown or missing:
            raise ValueError(f"evaluation: unknown key(s) {sorted(unknown)}, missing {sorted(missing)}; "
                             f"expected {sorted(TOP)}")
        seed = _check_value("evaluation.seed", settings["seed"], Check(kind="int", low=0, high=2**31 - 1))
        batch = _check_value("evaluation.batch_size", settings["batch_size"], Check(kind="int", low=1, high=1_000_000))
        families = {name: _grid(name, grid or {}) for name, grid in (settings["families"] or {}).items()}
        if "shift" in families and 0.0 in families["shift"].levels:
            raise ValueError("evaluation.families.shift.levels: level 0 is the training distribution; "
                             "shift levels must be > 0")
        return cls(seed=seed, batch_size=batch, families=families)

    def as_dict(self) -> dict:
        """What evaluation.json records: the checked settings as a mapping."""
        return {"seed": self.seed, "batch_size": self.batch_size,
                "families": {name: grid.as_dict() for name, grid in self.families.items()}}


def _grid(name: str, grid: dict) -> Grid:
    if name not in KEYS:
        raise ValueError(f"evaluation.families: unknown perturbation '{name}', expected one of {sorted(KEYS)}")
    optional = OPTIONAL.get(name, set())
    extra, absent = set(grid) - set(KEYS[name]), set(KEYS[name]) - set(grid) - optional
    if extra or absent:
        raise ValueError(f"evaluation.families.{name}: unknown key(s) {sorted(extra)}, missing {sorted(absent)}; "
                         f"expected {sorted(KEYS[name])}" + (f" ({', '.join(sorted(optional))} optional)"
                                                              if optional else ""))
    values = {key: _check_value(f"evaluation.families.{name}.{key}", grid[key], KEYS[name][key])
              for key in KEYS[name] if key in grid}
    return Grid(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})


def horizon_applies(grid: Grid, dataset: str, target: str | None) -> bool:
    """Whether the horizon family (its checked grid) runs on data set ``dataset``, a sine data set of
    target ``target`` (None: a data set of another kind). The closed loop feeds each prediction back as
    the next input, so it needs a forecasting data set (sine, ``params: {target: next}``). It runs on
    the data sets ``grid.datasets`` lists where the grid has that key, else on every forecasting
    data set. A listed data set that is not one is an error naming it and what it needs."""
    listed = grid.datasets
    if listed is not None and dataset not in listed:
        return False
    if target != NEXT:
        if listed is not None:
            what = f"its target is {target!r}" if target else "it is not a sine data set"
            raise ValueError(f"evaluation.families.horizon.datasets: data set '{dataset}' cannot take the closed-loop "
                             f"horizon, which needs a sine data set whose target is the next input (params: "
                             f"{{target: {NEXT}}}); {what}")
        return False
    return True


def horizon_datasets(evaluation: dict | None, datasets: dict) -> set[str]:
    """The names of the data set entries ``datasets`` the closed-loop horizon runs on, for a study's
    ``evaluation`` section (None: no evaluation stage); a listed data set that cannot take it is an
    error naming it (horizon_applies)."""
    grid = Evaluation.from_settings(evaluation).families.get("horizon") if evaluation else None
    if grid is None:
        return set()
    return {name for name, entry in datasets.items()
            if horizon_applies(grid, name, target(entry.get("params") or {}) if entry["kind"] == "sine" else None)}
