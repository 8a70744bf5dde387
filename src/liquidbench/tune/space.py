"""A study's `tuning:` section: which settings are searched, over which ranges, and the points tried.

Each data set x tuned model x hardware gets ``tuning.trials`` trials, the same number for every
model, each trained for ``tuning.epochs`` epochs and scored on the validation split only
(liquidbench.tune.select). The search is quasi-random, as in AlgoPerf's external tuning ruleset,
which gives every submission the same number of quasi-random trials over its own search space: no
model gets a cleverer or longer search than another, and the result does not hang on a tuner's
own randomness or on how it adapts to earlier trials.

The points are those of a scrambled Sobol sequence (``scipy.stats.qmc.Sobol(d, scramble=True,
seed=tuning.seed)``) in d dimensions, one per searched parameter in sorted name order, so that
the same space and seed always give the same points. Each coordinate u in [0, 1) maps to its
parameter:

- a linear range: ``low + u (high - low)``;
- a log range: ``exp(log low + u (log high - log low))``;
- an integer range: the same over [low - 1/2, high + 1/2] (in log space for a log range), then
  rounded and clipped to [low, high], so that every integer of the range has its full share
  (a linear one: each integer equally often; rounding over [low, high] itself would give the two
  ends half a share each);
- a choice: ``values[min(int(u len), len - 1)]``.

Floats are rounded to 6 significant digits, so that a point written as JSON reads the same on
every machine (a last-bit difference of ``exp`` between libms does not reach the sixth digit).

A Sobol sequence extends: the first n points of a longer draw are the n points of a shorter one
with the same seed (scipy's ``random(n)`` draws them in sequence order, whether or not n is a power
of two), so raising ``trials`` keeps the trials already run and adds new ones. Adding or removing a
parameter changes every point (the dimensions are scrambled together).

What may be searched: the training settings that change the optimisation (TRAINING_KEYS) and a
model type's numeric and choice settings (MODEL_KEYS). Never ``epochs`` (every trial trains
``tuning.epochs``, every tuned run its own), nor settings that change how a run computes rather
than what it learns (``eval_batch_size``, ``optimizer_impl``, ``impl``, ``checkpoint_every``), nor
``divergence_factor`` (the judge of a run, not part of it), nor ``drop_last``.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

from ..train.settings import Hardware, check_fields, setting

_INT, _NUM = (int,), (int, float)

MODEL_TYPES = ("ltc", "cfc", "lstm", "gru")
ENTRY_KEYS = ("low", "high", "log", "integer", "values")
DIGITS = 6  # significant digits of a float point


@dataclass(frozen=True)
class Key:
    """A setting that may be searched: where it goes (``section``), whether it is an integer, what
    its values must be (``ok``, ``what``: the same as its settings class or config schema says),
    and for a choice-only setting its possible values."""

    section: str
    integer: bool
    ok: object
    what: str
    choices: tuple | None = None

    def accepts(self, value) -> bool:
        """Is ``value`` a value of this setting (a bool is not a number, a float not an integer)?"""
        if self.choices is not None:
            return any(type(value) is type(c) and value == c for c in self.choices)
        types = _INT if self.integer else _NUM
        return isinstance(value, types) and not isinstance(value, bool) and _finite(value) and self.ok(value)


def _finite(value) -> bool:
    return math.isfinite(value) if isinstance(value, float) else True


def _int_at_least(n: int) -> Key:
    return Key("model", True, lambda v: v >= n, f"an integer >= {n}")


# the training settings that change the optimisation (liquidbench.train.settings.Training)
TRAINING_KEYS = {
    "batch_size": Key("training", True, lambda v: v >= 1, "an integer >= 1"),
    "grad_clip": Key("training", False, lambda v: v >= 0, "a number >= 0 (0 disables clipping)"),
    "lr": Key("training", False, lambda v: v > 0, "a number > 0"),
    "lr_decay": Key("training", False, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "weight_decay": Key("training", False, lambda v: v >= 0, "a number >= 0"),
}

# settings (training or model) that are never searched, and why
NOT_SEARCHED = {
    "epochs": "every trial trains tuning.epochs epochs and every tuned run its own",
    "eval_batch_size": "it changes how validation is computed, not what the model learns",
    "optimizer_impl": "it changes how Adam runs, not what it computes",
    "divergence_factor": "it judges a run, it is not part of it",
    "drop_last": "it is not an optimisation setting",
    "impl": "both implementations compute the same model",
    "checkpoint_every": "it trades memory for time and gives the same gradients",
    "wiring": "it changes what units means and which settings apply; tune each wiring as its own model",
    "motor_neurons": "it belongs to the autoncp wiring; tune each wiring as its own model",
}

_BOOLS = Key("model", False, None, "true or false", choices=(False, True))

# per model type, its numeric and choice settings (liquidbench.models.liquid LtcSpec and CfcSpec,
# liquidbench.models.rnn RnnSpec; tests/test_tune_space.py checks that they agree)
MODEL_KEYS = {
    "ltc": {"units": _int_at_least(1), "ode_unfolds": _int_at_least(1), "mixed_memory": _BOOLS},
    "cfc": {
        "units": _int_at_least(1),
        "backbone_units": _int_at_least(1),
        "backbone_layers": _int_at_least(1),
        "backbone_dropout": Key("model", False, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
        "mode": Key("model", False, None, "one of default, pure, no_gate", choices=("default", "pure", "no_gate")),
        "mixed_memory": _BOOLS,
    },
    "lstm": {"hidden_size": _int_at_least(1), "num_layers": _int_at_least(1)},
    "gru": {"hidden_size": _int_at_least(1), "num_layers": _int_at_least(1)},
}


def allowed(model_type: str) -> dict[str, Key]:
    """The settings a model type's space may search, by name."""
    return {**TRAINING_KEYS, **MODEL_KEYS[model_type]}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)


@dataclass(frozen=True)
class Param:
    """One searched setting: a range [low, high] (``log``: uniform in log space; ``integer``:
    rounded), or a choice among ``values``; ``section`` says whether it is a training setting or a
    key of the model entry."""

    name: str
    low: float | int | None
    high: float | int | None
    log: bool
    integer: bool
    values: tuple | None
    section: str

    @classmethod
    def from_entry(cls, model_type: str, name: str, entry) -> Param:
        """``tuning.space.<model_type>.<name>`` checked; a ValueError naming that key otherwise."""
        where = f"tuning.space.{model_type}.{name}"
        if model_type not in MODEL_TYPES:
            raise ValueError(f"tuning.space.{model_type}: unknown model type, expected one of {', '.join(MODEL_TYPES)}")
        keys = allowed(model_type)
        if name not in keys:
            why = f" ({NOT_SEARCHED[name]})" if name in NOT_SEARCHED else ""
            raise ValueError(f"{where}: not a setting that can be searched{why}; expected one of "
                             f"{', '.join(sorted(keys))}")
        key = keys[name]
        if not isinstance(entry, dict) or not entry:
            raise ValueError(f"{where}: expected a range {{low, high, log, integer}} or a choice {{values}}, "
                             f"got {entry!r}")
        unknown = set(entry) - set(ENTRY_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}, expected low, high, log and integer, "
                             "or values")
        if "values" in entry:
            return cls._choice(where, name, key, entry)
        return cls._range(where, name, key, entry)

    @classmethod
    def _choice(cls, where: str, name: str, key: Key, entry: dict) -> Param:
        """A choice: a non-empty list of distinct values of the setting, and nothing else."""
        others = sorted(set(entry) - {"values"})
        if others:
            raise ValueError(f"{where}: values is a choice and takes no {', '.join(others)}; give either values "
                             "or a range (low, high)")
        values = entry["values"]
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.values: expected a non-empty list of values, got {values!r}")
        for v in values:
            if not key.accepts(v):
                raise ValueError(f"{where}.values: each value must be {key.what}, got {v!r}")
        if len(set(values)) < len(values):  # checked above: no bool among numbers (True == 1)
            raise ValueError(f"{where}.values: expected distinct values, got {values!r}")
        return cls(name, None, None, False, False, tuple(values), key.section)

    @classmethod
    def _range(cls, where: str, name: str, key: Key, entry: dict) -> Param:
        """A range: numbers low < high that are values of the setting (integers for an integer
        setting), positive for a log range."""
        if key.choices is not None:
            raise ValueError(f"{where}: a choice among {list(key.choices)}: give values, not a range")
        missing = [k for k in ("low", "high") if k not in entry]
        if missing:
            raise ValueError(f"{where}: missing {' and '.join(missing)}; a range needs low and high (or give values)")
        log, integer = entry.get("log", False), entry.get("integer", key.integer)
        for flag, value in (("log", log), ("integer", integer)):
            if not isinstance(value, bool):
                raise ValueError(f"{where}.{flag}: expected true or false, got {value!r}")
        if key.integer and not integer:
            raise ValueError(f"{where}.integer: {name} is an integer setting; leave integer out or set it true")
        low, high = entry["low"], entry["high"]
        for bound, value in (("low", low), ("high", high)):
            if not _is_number(value):
                raise ValueError(f"{where}.{bound}: expected a number, got {value!r}")
            if integer and not isinstance(value, int):
                raise ValueError(f"{where}.{bound}: an integer range needs integer bounds, got {value!r}")
            if not key.ok(value):
                raise ValueError(f"{where}.{bound}: {name} must be {key.what}, got {value!r}")
        if not low < high:
            raise ValueError(f"{where}: empty or inverted range (low {low!r} >= high {high!r}); expected low < high "
                             f"(a fixed value belongs in the model entry or training settings)")
        if log and low <= 0:
            raise ValueError(f"{where}: a log range needs low > 0, got low {low!r}")
        return cls(name, low, high, log, integer, None, key.section)

    def value_at(self, u: float):
        """The value at coordinate ``u`` in [0, 1) (module docstring: the mapping)."""
        if self.values is not None:
            n = len(self.values)
            return self.values[min(int(u * n), n - 1)]
        low, high = (self.low - 0.5, self.high + 0.5) if self.integer else (self.low, self.high)
        if self.log:
            x = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            x = low + u * (high - low)
        if self.integer:
            return min(max(math.floor(x + 0.5), self.low), self.high)
        return min(max(_stable(x), self.low), self.high)


def _stable(x: float) -> float:
    """``x`` to DIGITS significant digits: the same value on every machine."""
    return float(f"{x:.{DIGITS}g}")


def _sobol(d: int, n: int, seed: int):
    """The first n points of a scrambled Sobol sequence in d dimensions (n need not be a power of
    two: the points are a prefix of the sequence, which is what keeps trials when n grows)."""
    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*balance properties of Sobol", category=UserWarning)
        return qmc.Sobol(d, scramble=True, seed=seed).random(n)


def trial_points(params: tuple[Param, ...], trials: int, seed: int) -> list[dict]:
    """The ``trials`` points of the search over ``params``, each {name: value} in sorted name order;
    the same space and seed give the same points, and more trials extend them."""
    return [dict(point) for point in _points(tuple(sorted(params, key=lambda p: p.name)), trials, seed)]


@functools.lru_cache(maxsize=64)
def _points(params: tuple[Param, ...], trials: int, seed: int) -> tuple[dict, ...]:
    """trial_points, drawn once per space (a plan asks for them for every trial job of every data
    set and hardware entry)."""
    if not params:
        return tuple({} for _ in range(trials))
    u = _sobol(len(params), trials, seed)
    return tuple({p.name: p.value_at(float(row[i])) for i, p in enumerate(params)} for row in u)


def split_point(params: tuple[Param, ...], point: dict) -> dict:
    """A point's values by where they go: {"model": {...}, "training": {...}}."""
    section = {p.name: p.section for p in params}
    return {s: {k: v for k, v in point.items() if section[k] == s} for s in ("model", "training")}


def _required(types: tuple, ok, what: str):
    """A dataclass field without a default and with its check (as train.settings.setting)."""
    return field(metadata={"check": (types, ok, what)})


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """A study's `tuning:` section, checked: ``space`` maps a model type to its searched settings
    (Params in sorted name order); ``models`` names the models tuned."""

    trials: int = _required(_INT, lambda v: v >= 1, "an integer >= 1")
    seed: int = setting(0, _INT, lambda v: v >= 0, "an integer >= 0")
    epochs: int = _required(_INT, lambda v: v >= 1, "an integer >= 1")
    models: tuple[str, ...] = ()
    space: dict = field(default_factory=dict, hash=False)
    # tuning.share: a model (hardware entry) that trains at the selection of another instead of
    # running trials of its own
    share_models: dict = field(default_factory=dict, hash=False)
    share_hardware: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        check_fields("tuning", self)

    @classmethod
    def from_settings(cls, section: dict, models: dict, study_models: list | None = None,
                      hardware: dict | None = None) -> Tuning:
        """The `tuning:` section checked against ``models`` (the config's `models:`, name -> entry
        with its ``type``), ``study_models`` (the names `study.models` selects; None: every
        model of ``models``), which are tuned when `tuning.models` is absent, and ``hardware`` (the
        config's `hardware:` entries, which `tuning.share.hardware` names); a ValueError naming
        the key otherwise. A name of `tuning.models` must be defined under `models:`; one defined
        but not selected tunes nothing (so narrowing `study.models` keeps the section valid)."""
        if not isinstance(section, dict):
            raise ValueError(f"tuning: expected a mapping with trials, epochs and space, got {section!r}")
        known = ("trials", "seed", "epochs", "models", "space", "share")
        unknown = set(section) - set(known)
        if unknown:
            raise ValueError(f"tuning: unknown key(s) {sorted(unknown)}, expected {', '.join(known)}")
        for key in ("trials", "epochs", "space"):
            if key not in section:
                raise ValueError(f"tuning: missing key '{key}'")
        tuned = _tuned_models(section.get("models"), models, study_models)
        share_models, share_hardware = _share(section.get("share"), models, hardware or {})
        if section.get("models") is None:  # every model of the study, less those that share a selection
            tuned = tuple(m for m in tuned if m not in share_models)
        for name, target in share_models.items():
            if name in tuned:
                raise ValueError(f"tuning.share.models.{name}: '{name}' is also in tuning.models; a model either "
                                 f"runs trials of its own (tuning.models) or trains at '{target}'s selection")
            if section.get("models") is not None and target not in tuned:
                raise ValueError(f"tuning.share.models.{name}: '{target}' runs no trials (it is not in "
                                 f"tuning.models); add it there or name a model that does")
        space = _space(section["space"])
        for name in dict.fromkeys([*tuned, *share_models.values()]):
            entry = models.get(name)
            model_type = entry.get("type") if isinstance(entry, dict) else None
            if model_type not in MODEL_TYPES:
                raise ValueError(f"model '{name}': type {model_type!r} is not one tuning knows "
                                 f"({', '.join(MODEL_TYPES)})")
            if model_type not in space:
                raise ValueError(f"tuning: model '{name}' (type {model_type}) is tuned but tuning.space has no "
                                 f"{model_type}; add tuning.space.{model_type} or leave '{name}' out of tuning.models")
            _check_wiring(name, entry, space[model_type])
        return cls(trials=section["trials"], seed=section.get("seed", 0), epochs=section["epochs"],
                   models=tuned, space=space, share_models=share_models, share_hardware=share_hardware)

    def tunes(self, model: str) -> bool:
        """Whether a model's runs train at a selection: its own trials', or those of the model it
        shares one with."""
        return model in self.models or model in self.share_models

    def source(self, dataset: str, model: str, hardware: str) -> tuple[str, str, str]:
        """The data set x model x hardware whose trials select a tuned run's setting: its own, or
        the model's and hardware entry's that tuning.share names."""
        return dataset, self.share_models.get(model, model), self.share_hardware.get(hardware, hardware)

    def check_budget(self, run_epochs: dict) -> None:
        """A trial trains at most as long as the runs it tunes: ``run_epochs`` maps (data set, model)
        to that run's epochs (training_of); a tuned one below tuning.epochs is a ValueError naming it."""
        short = [(d, m, e) for (d, m), e in sorted(run_epochs.items()) if self.tunes(m) and e < self.epochs]
        if short:
            runs = "; ".join(f"data set '{d}', model '{m}': {e}" for d, m, e in short)
            raise ValueError(f"tuning.epochs: {self.epochs} is above the epochs of a tuned run ({runs}); "
                             "a trial may not train longer than the run it tunes: lower tuning.epochs")

    def params(self, model_type: str) -> tuple[Param, ...]:
        """The searched settings of a model type; a ValueError where it has none."""
        if model_type not in self.space:
            raise ValueError(f"tuning.space has no {model_type}: models of type {model_type} are not tuned")
        return self.space[model_type]

    def point(self, model_type: str, k: int) -> dict:
        """Trial k's point for a model type."""
        if not (isinstance(k, int) and 0 <= k < self.trials):
            raise ValueError(f"trial {k!r}: expected 0 <= trial < tuning.trials ({self.trials})")
        return trial_points(self.params(model_type), self.trials, self.seed)[k]


def _tuned_models(names, models: dict, study_models: list | None) -> tuple[str, ...]:
    """tuning.models checked against the models the study defines (absent: every model it
    selects, or without a selection given every model it defines)."""
    if names is None:
        return tuple(models if study_models is None else study_models)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"tuning.models: expected a non-empty list of model names (leave it out to tune every "
                         f"model), got {names!r}")
    for name in names:
        if name not in models:
            raise ValueError(f"tuning.models names '{name}', which is not one of the study's models "
                             f"({', '.join(models) or 'none'})")
    if len(set(names)) < len(names):
        raise ValueError(f"tuning.models: a model is named twice in {names!r}")
    return tuple(names)


def _share(share, models: dict, hardware: dict) -> tuple[dict, dict]:
    """tuning.share checked: ``models`` maps a model to a model of the same type whose selection it
    trains at (a fast implementation and ncps's compute the same model: one search serves both,
    and their comparison stays one of the same setting); ``hardware`` maps a hardware entry to one
    of the same global batch (a strong-scaling entry to its one-process baseline: the same
    optimisation on more processes). A name shared is never itself a target."""
    if share is None:
        return {}, {}
    if not isinstance(share, dict) or not share or set(share) - {"models", "hardware"}:
        raise ValueError("tuning.share: expected a mapping with models and/or hardware, each mapping a name to "
                         f"the one whose selection it takes, got {share!r}")
    out = {}
    for part, known in (("models", models), ("hardware", hardware)):
        entries = share.get(part, {})
        if not isinstance(entries, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in entries.items()):
            raise ValueError(f"tuning.share.{part}: expected a mapping of names to names, got {entries!r}")
        for name, target in entries.items():
            for n in (name, target):
                if n not in known:
                    raise ValueError(f"tuning.share.{part}.{name}: '{n}' is not one of the study's {part} "
                                     f"({', '.join(known) or 'none'})")
            if name == target:
                raise ValueError(f"tuning.share.{part}.{name}: a name cannot share its own selection")
            if target in entries:
                raise ValueError(f"tuning.share.{part}.{name}: '{target}' shares a selection itself; name the "
                                 f"one whose trials run ('{entries[target]}')")
        out[part] = dict(entries)
    for name, target in out["models"].items():
        types = [models[n].get("type") if isinstance(models[n], dict) else None for n in (name, target)]
        if types[0] != types[1]:
            raise ValueError(f"tuning.share.models.{name}: '{name}' is a {types[0]} and '{target}' a {types[1]}; "
                             "a model can only take the selection of a model of its type")
    for name, target in out["hardware"].items():
        a, b = (Hardware.from_entry(n, hardware[n]) for n in (name, target))
        if a.batch_factor != b.batch_factor:
            raise ValueError(f"tuning.share.hardware.{name}: '{name}' steps on {a.batch_factor} x batch_size "
                             f"sequences and '{target}' on {b.batch_factor} x batch_size; a setting selected at "
                             "one global batch is not the one for another: share with an entry of the same "
                             "global batch (a strong-scaling entry with its one-process baseline)")
    return out["models"], out["hardware"]


def _space(space) -> dict:
    """tuning.space as model type -> Params in sorted name order."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"tuning.space: expected a mapping of model types ({', '.join(MODEL_TYPES)}) to "
                         f"their searched settings, got {space!r}")
    out = {}
    for model_type, entries in space.items():
        if model_type not in MODEL_TYPES:
            raise ValueError(f"tuning.space.{model_type}: unknown model type, expected one of {', '.join(MODEL_TYPES)}")
        if not isinstance(entries, dict) or not entries:
            raise ValueError(f"tuning.space.{model_type}: expected a mapping of settings to ranges, got {entries!r}")
        out[model_type] = tuple(Param.from_entry(model_type, name, entries[name]) for name in sorted(entries))
    return out


def _check_wiring(name: str, entry: dict, params: tuple[Param, ...]) -> None:
    """An autoncp model needs units > motor_neurons + 2 (liquidbench.models.liquid): a searched
    units range that reaches below would fail its trials, so it is refused here."""
    if entry.get("wiring") != "autoncp":
        return
    motor = entry.get("motor_neurons", 8)
    for p in params:
        if p.name == "units":
            smallest = min(p.values) if p.values is not None else p.low
            if not smallest > motor + 2:
                raise ValueError(f"tuning.space.{entry['type']}.units: model '{name}' (wiring autoncp, motor_neurons "
                                 f"{motor}) needs units > {motor + 2}, the space reaches {smallest}")


def trial_settings(tuning: Tuning, model_spec: dict, training: dict, k: int) -> tuple[dict, dict]:
    """(model entry, training settings) of trial k of a model: the point's model keys over
    ``model_spec`` (a config entry with its ``type``: study.model_of), its training keys over
    ``training`` (study.training_of), and ``epochs`` the trials' budget."""
    model_type = model_spec["type"]
    parts = split_point(tuning.params(model_type), tuning.point(model_type, k))
    return {**model_spec, **parts["model"]}, {**training, **parts["training"], "epochs": tuning.epochs}


def applied(tuning: Tuning, model_spec: dict, training: dict, chosen: dict) -> tuple[dict, dict]:
    """(model entry, training settings) of a tuned run: the selected point ``chosen`` over the run's
    own settings, its epochs kept. A point whose names are not the space's (the space changed
    since the selection) is a ValueError: the selection is stale."""
    model_type = model_spec["type"]
    params = tuning.params(model_type)
    names = sorted(p.name for p in params)
    if sorted(chosen) != names:
        raise ValueError(f"the selected point sets {sorted(chosen)} but tuning.space.{model_type} searches {names}: "
                         "the selection is from another space; run the tuning stage again")
    parts = split_point(params, chosen)
    return {**model_spec, **parts["model"]}, {**training, **parts["training"]}

