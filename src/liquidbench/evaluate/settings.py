"""The ``evaluation:`` section of a study: which perturbation families run, on which grid.

Its defaults live in the config schema (workflow/schemas/config.schema.yaml, filled in when the
workflow validates the study); the workflow passes the whole section to ``liquidbench evaluate``.
``check`` is the one place that rejects what a person could get wrong by hand: an unknown family or
key, a level outside its range — each error names it. ``horizon_applies`` is the one place that
decides which data sets the closed-loop horizon runs on (the workflow, before any job, and
``liquidbench evaluate`` ask it).
"""

from __future__ import annotations

import math

from ..data.sine import NEXT

# family -> {key: (kind, lowest, highest, highest included)}; levels are lists of numbers, names a
# list of data set names
KEYS = {
    "noise": {"levels": ("levels", 0.0, 10.0, True)},
    "drop": {"levels": ("levels", 0.0, 1.0, False)},
    "shift": {"levels": ("levels", 0.0, 10.0, True), "n_sequences": ("int", 1, 1_000_000, True)},
    "horizon": {"steps": ("int", 1, 100_000, True), "n_sequences": ("int", 1, 1_000_000, True),
                "datasets": ("names", 0, 0, True)},
}
# keys a grid may leave out (absent: horizon runs on every forecasting data set)
OPTIONAL = {"horizon": {"datasets"}}
TOP = {"seed", "batch_size", "families"}


def _check_value(where: str, value, kind: str, low: float, high: float, closed: bool):
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


def check(settings: dict) -> dict:
    """The evaluation settings, checked: ``seed``, ``batch_size`` and ``families`` {name: grid}."""
    if not isinstance(settings, dict):
        raise ValueError(f"evaluation: expected a mapping, got {settings!r}")
    unknown = set(settings) - TOP
    missing = TOP - set(settings)
    if unknown or missing:
        raise ValueError(f"evaluation: unknown key(s) {sorted(unknown)}, missing {sorted(missing)}; "
                         f"expected {sorted(TOP)}")
    seed = _check_value("evaluation.seed", settings["seed"], "int", 0, 2**31 - 1, True)
    batch = _check_value("evaluation.batch_size", settings["batch_size"], "int", 1, 1_000_000, True)
    families = {}
    for name, grid in (settings["families"] or {}).items():
        if name not in KEYS:
            raise ValueError(f"evaluation.families: unknown perturbation '{name}', expected one of {sorted(KEYS)}")
        grid = grid or {}
        optional = OPTIONAL.get(name, set())
        extra, absent = set(grid) - set(KEYS[name]), set(KEYS[name]) - set(grid) - optional
        if extra or absent:
            raise ValueError(f"evaluation.families.{name}: unknown key(s) {sorted(extra)}, missing {sorted(absent)}; "
                             f"expected {sorted(KEYS[name])}" + (f" ({', '.join(sorted(optional))} optional)"
                                                                  if optional else ""))
        families[name] = {key: _check_value(f"evaluation.families.{name}.{key}", grid[key], *KEYS[name][key])
                          for key in KEYS[name] if key in grid}
    if "shift" in families and 0.0 in families["shift"]["levels"]:
        raise ValueError("evaluation.families.shift.levels: level 0 is the training distribution; "
                         "shift levels must be > 0")
    return {"seed": seed, "batch_size": batch, "families": families}


def horizon_applies(grid: dict, dataset: str, target: str | None) -> bool:
    """Whether the horizon family (its checked grid) runs on data set ``dataset``, a sine data set of
    target ``target`` (None: a data set of another kind). The closed loop feeds each prediction back as
    the next input, so it needs a forecasting data set (sine, ``params: {target: next}``). It runs on
    the data sets ``grid['datasets']`` lists where the grid has that key, else on every forecasting
    data set. A listed data set that is not one is an error naming it and what it needs."""
    listed = grid.get("datasets")
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
