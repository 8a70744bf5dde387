"""The tuning stage's search space, its points and the selection of a trial (no training)."""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from dataclasses import fields

import pytest

from liquidbench.tune.select import select
from liquidbench.tune.space import (
    MODEL_KEYS,
    NOT_SEARCHED,
    TRAINING_KEYS,
    Param,
    Tuning,
    applied,
    split_point,
    trial_points,
    trial_settings,
)

MODELS = {"ltc": {"type": "ltc"}, "cfc": {"type": "cfc", "units": 32}, "lstm": {"type": "lstm"}}

TWO = {"lr": {"low": 1.0e-4, "high": 0.1, "log": True}, "hidden_size": {"low": 8, "high": 64}}

# every kind of entry: log and linear floats, log and linear integers, choices of numbers, strings, bools
EVERY = {
    "lr": {"low": 1.0e-4, "high": 0.1, "log": True},
    "lr_decay": {"low": 0.9, "high": 1.0},
    "backbone_units": {"low": 16, "high": 128, "log": True},
    "backbone_layers": {"low": 1, "high": 3},
    "units": {"values": [16, 32, 64]},
    "mode": {"values": ["default", "pure", "no_gate"]},
    "mixed_memory": {"values": [False, True]},
}


def params(model_type: str, space: dict) -> tuple[Param, ...]:
    return tuple(Param.from_entry(model_type, name, entry) for name, entry in space.items())


def section(**over) -> dict:
    base = {"trials": 8, "seed": 0, "epochs": 5,
            "space": {"cfc": copy.deepcopy(EVERY), "ltc": {"lr": {"low": 1.0e-3, "high": 0.1, "log": True}},
                      "lstm": copy.deepcopy(TWO)}}
    return {**base, **over}


# --- the points ---------------------------------------------------------------------------------


def test_the_same_space_and_seed_give_the_recorded_points_on_every_machine():
    # recorded once (scipy 1.17.1); a change here changes every study's trials
    assert trial_points(params("lstm", TWO), 4, 0) == [
        {"hidden_size": 56, "lr": 0.0622441},
        {"hidden_size": 33, "lr": 0.000316819},
        {"hidden_size": 22, "lr": 0.00595574},
        {"hidden_size": 41, "lr": 0.000955397},
    ]


def test_a_space_of_every_kind_gives_the_recorded_points():
    assert trial_points(params("cfc", EVERY), 4, 0) == [
        {"backbone_layers": 3, "backbone_units": 111, "lr": 0.00122505, "lr_decay": 0.936455,
         "mixed_memory": False, "mode": "pure", "units": 32},
        {"backbone_layers": 1, "backbone_units": 40, "lr": 0.0105258, "lr_decay": 0.982484,
         "mixed_memory": True, "mode": "default", "units": 64},
        {"backbone_layers": 2, "backbone_units": 50, "lr": 0.00010372, "lr_decay": 0.91878,
         "mixed_memory": True, "mode": "pure", "units": 16},
        {"backbone_layers": 2, "backbone_units": 19, "lr": 0.0668384, "lr_decay": 0.974378,
         "mixed_memory": False, "mode": "no_gate", "units": 64},
    ]


def test_the_order_a_space_is_written_in_does_not_change_its_points():
    reordered = dict(reversed(list(EVERY.items())))
    assert trial_points(params("cfc", reordered), 8, 3) == trial_points(params("cfc", EVERY), 8, 3)
    assert list(trial_points(params("cfc", reordered), 1, 3)[0]) == sorted(EVERY)


def test_another_seed_gives_other_points():
    assert trial_points(params("cfc", EVERY), 4, 1) != trial_points(params("cfc", EVERY), 4, 0)


@pytest.mark.parametrize("short,long", [(8, 16), (5, 8), (3, 100)])
def test_more_trials_keep_the_trials_already_run(short, long):
    space = params("cfc", EVERY)
    assert trial_points(space, long, 7)[:short] == trial_points(space, short, 7)


def test_drawing_a_count_that_is_not_a_power_of_two_warns_of_nothing(recwarn):
    trial_points(params("cfc", EVERY), 5, 0)
    assert not [w for w in recwarn if "Sobol" in str(w.message)]


def test_every_value_lies_in_its_range_with_its_type():
    points = trial_points(params("cfc", EVERY), 256, 0)
    for p in points:
        assert 1.0e-4 <= p["lr"] <= 0.1 and isinstance(p["lr"], float)
        assert 0.9 <= p["lr_decay"] <= 1.0
        assert 16 <= p["backbone_units"] <= 128 and type(p["backbone_units"]) is int
        assert 1 <= p["backbone_layers"] <= 3 and type(p["backbone_layers"]) is int
        assert p["units"] in (16, 32, 64) and p["mode"] in ("default", "pure", "no_gate")
        assert p["mixed_memory"] in (False, True) and type(p["mixed_memory"]) is bool
    # every choice and every integer of a small range is tried, the ends included
    for name, expected in (("units", {16, 32, 64}), ("mode", {"default", "pure", "no_gate"}),
                           ("mixed_memory", {False, True}), ("backbone_layers", {1, 2, 3})):
        assert {p[name] for p in points} == expected
    assert min(p["backbone_units"] for p in points) == 16 and max(p["backbone_units"] for p in points) == 128


def test_the_log_range_spreads_over_decades():
    lrs = [p["lr"] for p in trial_points(params("cfc", EVERY), 256, 0)]
    decades = Counter(math.floor(math.log10(v)) for v in lrs)
    assert sorted(decades) == [-4, -3, -2]
    assert all(n == pytest.approx(256 / 3, abs=3) for n in decades.values())


def test_a_linear_integer_range_gives_each_integer_the_same_share():
    space = params("lstm", {"hidden_size": {"low": 1, "high": 4}})
    counts = Counter(p["hidden_size"] for p in trial_points(space, 256, 0))
    assert counts == {1: 64, 2: 64, 3: 64, 4: 64}


def test_the_mapping_of_a_coordinate():
    lin = Param.from_entry("cfc", "lr_decay", {"low": 0.5, "high": 1.0})
    log = Param.from_entry("cfc", "lr", {"low": 1.0e-4, "high": 1.0e-2, "log": True})
    ints = Param.from_entry("lstm", "hidden_size", {"low": 16, "high": 128, "log": True, "integer": True})
    choice = Param.from_entry("cfc", "mode", {"values": ["default", "pure", "no_gate"]})
    assert lin.value_at(0.5) == 0.75 and lin.value_at(0.0) == 0.5
    assert log.value_at(0.5) == pytest.approx(1.0e-3) and log.value_at(0.0) == pytest.approx(1.0e-4)
    assert ints.value_at(0.0) == 16 and ints.value_at(0.999999) == 128
    assert [choice.value_at(u) for u in (0.0, 0.34, 0.67, 0.999999)] == ["default", "pure", "no_gate", "no_gate"]


def test_floats_are_written_to_six_significant_digits():
    for p in trial_points(params("cfc", EVERY), 64, 5):
        for name in ("lr", "lr_decay"):
            assert float(f"{p[name]:.6g}") == p[name]


# --- the section --------------------------------------------------------------------------------


def test_a_section_is_read_with_its_defaults():
    t = Tuning.from_settings({k: v for k, v in section().items() if k != "seed"}, MODELS)
    assert (t.trials, t.seed, t.epochs, t.models) == (8, 0, 5, ("ltc", "cfc", "lstm"))
    assert [p.name for p in t.space["cfc"]] == sorted(EVERY)
    lr = t.space["cfc"][[p.name for p in t.space["cfc"]].index("lr")]
    assert lr == Param("lr", 1.0e-4, 0.1, True, False, None, "training")
    assert Tuning.from_settings(section(models=["lstm"]), MODELS).models == ("lstm",)


def test_without_tuning_models_every_model_the_study_selects_is_tuned():
    defined = {**MODELS, "gru": {"type": "gru"}}  # defined, not selected, and without a space
    t = Tuning.from_settings(section(), defined, study_models=["cfc", "lstm"])
    assert t.models == ("cfc", "lstm")
    with pytest.raises(ValueError, match=r"model 'gru' \(type gru\) is tuned but tuning.space has no gru"):
        Tuning.from_settings(section(), defined)  # no selection given: every defined model
    # a model defined but not selected may stay in tuning.models (a study narrowed on the command line)
    assert Tuning.from_settings(section(models=["ltc", "cfc"]), defined, ["cfc"]).models == ("ltc", "cfc")


def test_an_integer_setting_is_an_integer_range_without_saying_so():
    (p,) = params("lstm", {"hidden_size": {"low": 8, "high": 64}})
    assert p.integer and p.section == "model"


def test_a_trial_sets_its_point_over_the_model_and_training_and_trains_the_trials_budget():
    t = Tuning.from_settings(section(), MODELS)
    training = {"epochs": 50, "lr": 0.005, "batch_size": 64}
    for k in range(t.trials):
        point = trial_points(t.space["cfc"], t.trials, t.seed)[k]
        model, train = trial_settings(t, MODELS["cfc"], training, k)
        assert model == {"type": "cfc", **{n: point[n] for n in ("backbone_layers", "backbone_units", "mixed_memory",
                                                                   "mode", "units")}}
        assert train == {"epochs": 5, "batch_size": 64, "lr": point["lr"], "lr_decay": point["lr_decay"]}
    assert training["epochs"] == 50  # the run's settings are not changed in place
    with pytest.raises(ValueError, match="trial 8"):
        trial_settings(t, MODELS["cfc"], training, 8)


def test_a_selected_point_applies_over_the_full_run_keeping_its_epochs():
    t = Tuning.from_settings(section(), MODELS)
    chosen = trial_points(t.space["lstm"], 8, 0)[3]
    model, train = applied(t, {"type": "lstm", "num_layers": 2}, {"epochs": 50, "lr": 0.005}, chosen)
    assert model == {"type": "lstm", "num_layers": 2, "hidden_size": chosen["hidden_size"]}
    assert train == {"epochs": 50, "lr": chosen["lr"]}
    assert split_point(t.space["lstm"], chosen) == {"model": {"hidden_size": chosen["hidden_size"]},
                                                    "training": {"lr": chosen["lr"]}}
    with pytest.raises(ValueError, match="another space"):
        applied(t, {"type": "lstm"}, {"epochs": 50}, {"lr": 0.01})


def test_the_trials_budget_may_not_exceed_a_tuned_run():
    t = Tuning.from_settings(section(models=["cfc", "lstm"]), MODELS)
    t.check_budget({("sine", "cfc"): 5, ("har", "lstm"): 20, ("sine", "ltc"): 2})  # ltc is not tuned
    with pytest.raises(ValueError, match=r"tuning.epochs: 5 .*data set 'har', model 'lstm': 3"):
        t.check_budget({("sine", "cfc"): 5, ("har", "lstm"): 3})


BAD = [
    # (what is wrong, the section, a part of the message)
    ("unknown parameter", section(space={"cfc": {"foo": {"low": 1, "high": 2}}}),
     r"tuning.space.cfc.foo: not a setting that can be searched; expected one of backbone_dropout, "),
    ("another type's parameter", section(space={"cfc": {"hidden_size": {"low": 8, "high": 64}}}),
     "tuning.space.cfc.hidden_size: not a setting"),
    ("epochs searched", section(space={"cfc": {"epochs": {"low": 1, "high": 9}}}),
     "tuning.space.cfc.epochs: not a setting that can be searched .every trial trains tuning.epochs"),
    ("eval_batch_size", section(space={"lstm": {"eval_batch_size": {"low": 8, "high": 64}}}),
     "tuning.space.lstm.eval_batch_size: not a setting"),
    ("optimizer_impl", section(space={"lstm": {"optimizer_impl": {"values": ["fused"]}}}),
     "tuning.space.lstm.optimizer_impl: not a setting"),
    ("divergence_factor", section(space={"lstm": {"divergence_factor": {"low": 2, "high": 9}}}),
     "tuning.space.lstm.divergence_factor: not a setting"),
    ("unknown model type", section(space={"rnn": {"lr": {"low": 0.1, "high": 1}}}),
     "tuning.space.rnn: unknown model type"),
    ("no parameters for a type", section(space={"cfc": {}}), "tuning.space.cfc: expected a mapping"),
    ("empty range", section(space={"lstm": {"lr": {"low": 0.1, "high": 0.1}}}),
     "tuning.space.lstm.lr: empty or inverted range"),
    ("inverted range", section(space={"lstm": {"hidden_size": {"low": 64, "high": 8}}}),
     "tuning.space.lstm.hidden_size: empty or inverted range"),
    ("a log range from 0", section(space={"lstm": {"weight_decay": {"low": 0, "high": 0.01, "log": True}}}),
     "tuning.space.lstm.weight_decay: a log range needs low > 0"),
    ("a log range from a negative", section(space={"lstm": {"weight_decay": {"low": -1, "high": 0.01, "log": True}}}),
     r"tuning.space.lstm.weight_decay.low: weight_decay must be a number >= 0"),
    ("a bound outside the setting", section(space={"lstm": {"lr_decay": {"low": 0.9, "high": 1.1}}}),
     r"tuning.space.lstm.lr_decay.high: lr_decay must be a number in \(0, 1\]"),
    ("a float bound of an integer", section(space={"lstm": {"hidden_size": {"low": 8.5, "high": 64}}}),
     "tuning.space.lstm.hidden_size.low: an integer range needs integer bounds"),
    ("2.0 for an integer", section(space={"lstm": {"hidden_size": {"low": 8, "high": 64.0}}}),
     "tuning.space.lstm.hidden_size.high: an integer range needs integer bounds"),
    ("an integer range of floats", section(space={"lstm": {"grad_clip": {"low": 0.5, "high": 2, "integer": True}}}),
     "tuning.space.lstm.grad_clip.low: an integer range needs integer bounds"),
    ("integer false on an integer", section(space={"lstm": {"hidden_size": {"low": 8, "high": 64, "integer": False}}}),
     "tuning.space.lstm.hidden_size.integer: hidden_size is an integer setting"),
    ("log not a bool", section(space={"lstm": {"lr": {"low": 0.1, "high": 1, "log": "yes"}}}),
     "tuning.space.lstm.lr.log: expected true or false"),
    ("a bool bound", section(space={"lstm": {"lr": {"low": True, "high": 2}}}),
     "tuning.space.lstm.lr.low: expected a number"),
    ("a string bound", section(space={"lstm": {"lr": {"low": "1e-3", "high": 2}}}),
     "tuning.space.lstm.lr.low: expected a number"),
    ("missing high", section(space={"lstm": {"lr": {"low": 0.1}}}), "tuning.space.lstm.lr: missing high"),
    ("unknown entry key", section(space={"lstm": {"lr": {"low": 0.1, "high": 1, "step": 0.1}}}),
     r"tuning.space.lstm.lr: unknown key\(s\) \['step'\]"),
    ("empty values", section(space={"lstm": {"hidden_size": {"values": []}}}),
     "tuning.space.lstm.hidden_size.values: expected a non-empty list"),
    ("a value of another type", section(space={"lstm": {"hidden_size": {"values": [16, "32"]}}}),
     "tuning.space.lstm.hidden_size.values: each value must be an integer >= 1, got '32'"),
    ("an unknown mode", section(space={"cfc": {"mode": {"values": ["default", "fast"]}}}),
     "tuning.space.cfc.mode.values: each value must be one of default, pure, no_gate, got 'fast'"),
    ("0 and 1 for a bool", section(space={"ltc": {"mixed_memory": {"values": [0, 1]}}}),
     "tuning.space.ltc.mixed_memory.values: each value must be true or false"),
    ("a value twice", section(space={"lstm": {"hidden_size": {"values": [16, 16]}}}),
     "tuning.space.lstm.hidden_size.values: expected distinct values"),
    ("values and a range", section(space={"lstm": {"hidden_size": {"values": [16], "low": 8}}}),
     "tuning.space.lstm.hidden_size: values is a choice and takes no low"),
    ("a range of a choice", section(space={"cfc": {"mode": {"low": 0, "high": 2}}}),
     "tuning.space.cfc.mode: a choice among"),
    ("trials 0", section(trials=0), "tuning: trials must be an integer >= 1, got 0"),
    ("trials a float", section(trials=2.5), "tuning: trials must be an integer >= 1, got 2.5"),
    ("trials a bool", section(trials=True), "tuning: trials must be an integer >= 1, got True"),
    ("trials a string", section(trials="8"), "tuning: trials must be an integer >= 1, got '8'"),
    ("epochs 0", section(epochs=0), "tuning: epochs must be an integer >= 1, got 0"),
    ("seed negative", section(seed=-1), "tuning: seed must be an integer >= 0"),
    ("a model not in the study", section(models=["cfc", "gru"]),
     r"tuning.models names 'gru', which is not one of the study's models \(ltc, cfc, lstm\)"),
    ("no model", section(models=[]), "tuning.models: expected a non-empty list"),
    ("a model twice", section(models=["cfc", "cfc"]), "tuning.models: a model is named twice"),
    ("a tuned model without a space", section(space={"lstm": TWO}, models=["lstm", "cfc"]),
     r"model 'cfc' \(type cfc\) is tuned but tuning.space has no cfc"),
    ("unknown section key", section(budget=3), r"tuning: unknown key\(s\) \['budget'\]"),
    ("missing trials", {k: v for k, v in section().items() if k != "trials"}, "tuning: missing key 'trials'"),
]


@pytest.mark.parametrize("what,settings,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_section_is_refused_naming_its_key(what, settings, message):
    with pytest.raises(ValueError, match=message):
        Tuning.from_settings(settings, MODELS)


def test_an_autoncp_model_is_refused_a_units_range_below_its_wiring():
    models = {"ncp": {"type": "ltc", "wiring": "autoncp", "motor_neurons": 4}}
    Tuning.from_settings(section(space={"ltc": {"units": {"low": 7, "high": 64}}}), models)
    message = r"tuning.space.ltc.units: model 'ncp' .* needs units > 6, the space reaches 6"
    with pytest.raises(ValueError, match=message):
        Tuning.from_settings(section(space={"ltc": {"units": {"low": 6, "high": 64}}}), models)


def test_the_searchable_settings_are_the_settings_classes_own():
    from liquidbench.models.liquid import CFC_MODES, CfcSpec, LtcSpec
    from liquidbench.models.rnn import RnnSpec
    from liquidbench.train.settings import TRAINING_DEFAULTS

    defaults = {"ltc": LtcSpec(), "cfc": CfcSpec(), "lstm": RnnSpec(), "gru": RnnSpec()}
    for model_type, keys in MODEL_KEYS.items():
        spec = {f.name: getattr(defaults[model_type], f.name) for f in fields(defaults[model_type])}
        for name, key in keys.items():
            assert name in spec, (model_type, name)
            default = spec[name]
            if key.choices is not None:
                assert key.accepts(default)
            else:
                assert key.integer == isinstance(default, int) and key.accepts(default), (model_type, name)
    assert MODEL_KEYS["cfc"]["mode"].choices == CFC_MODES
    for name, key in TRAINING_KEYS.items():
        assert key.accepts(TRAINING_DEFAULTS[name]) and key.integer == isinstance(TRAINING_DEFAULTS[name], int)
    assert {"epochs", "eval_batch_size", "optimizer_impl", "divergence_factor"} <= set(NOT_SEARCHED)
    assert not set(NOT_SEARCHED) & set(TRAINING_KEYS)


def test_every_trial_is_a_run_the_settings_classes_accept():
    from liquidbench.models.liquid import CfcSpec, LtcSpec
    from liquidbench.models.rnn import RnnSpec
    from liquidbench.train.settings import Training

    wide = {
        "ltc": {"units": {"low": 1, "high": 256, "log": True}, "ode_unfolds": {"low": 1, "high": 12},
                "mixed_memory": {"values": [False, True]}},
        "cfc": {"units": {"low": 1, "high": 256, "log": True}, "backbone_units": {"low": 1, "high": 512, "log": True},
                "backbone_layers": {"low": 1, "high": 4}, "backbone_dropout": {"low": 0.0, "high": 1.0},
                "mode": {"values": ["default", "pure", "no_gate"]}, "mixed_memory": {"values": [False, True]}},
        "lstm": {"hidden_size": {"low": 1, "high": 512, "log": True}, "num_layers": {"low": 1, "high": 4}},
        "gru": {"hidden_size": {"values": [16, 32]}},
    }
    training = {"lr": {"low": 1.0e-5, "high": 1.0, "log": True}, "lr_decay": {"low": 0.5, "high": 1.0},
                "weight_decay": {"low": 0.0, "high": 0.1}, "grad_clip": {"low": 0.0, "high": 10.0},
                "batch_size": {"low": 1, "high": 1024, "log": True}}
    models = {t: {"type": t} for t in wide}
    t = Tuning.from_settings(section(trials=64, space={k: {**v, **training} for k, v in wide.items()}), models)
    build = {"ltc": LtcSpec.from_spec, "cfc": CfcSpec.from_spec, "lstm": lambda s: RnnSpec.from_spec(s, "lstm"),
             "gru": lambda s: RnnSpec.from_spec(s, "gru")}
    for name, entry in models.items():
        for k in range(t.trials):
            model, train = trial_settings(t, entry, {"epochs": 10}, k)
            build[name]({key: v for key, v in model.items() if key != "type"})
            Training.from_params(train)


# --- the selection ------------------------------------------------------------------------------


def trial(k, val, *, status="ok", time=10.0, test=None, metric="mse"):
    return {"trial": k, "point": {"lr": 0.001 * (k + 1)}, "status": status, "best_val_metric": val,
            "metric_name": metric, "train_time_s": time, "test_metric": val if test is None else test,
            "dataset": "sine", "model": "cfc"}


class NoTestMetric(dict):
    """A trial whose test score may not be looked at."""

    def __getitem__(self, key):
        assert key != "test_metric", "the selection read test_metric"
        return super().__getitem__(key)

    def get(self, key, default=None):
        assert key != "test_metric", "the selection read test_metric"
        return super().get(key, default)


def test_the_best_validation_score_is_selected_lower_for_mse_higher_for_accuracy():
    mse = select([trial(0, 0.5), trial(1, 0.2), trial(2, 0.9)])
    assert (mse["status"], mse["trial"], mse["point"], mse["best_val_metric"]) == ("selected", 1, {"lr": 0.002}, 0.2)
    acc = select([trial(0, 0.5, metric="accuracy"), trial(1, 0.2, metric="accuracy"), trial(2, 0.9, metric="accuracy")])
    assert acc["trial"] == 2 and acc["metric_name"] == "accuracy"


def test_the_selection_reads_validation_only():
    trials = [trial(k, val) for k, val in enumerate([0.4, 0.1, 0.3, 0.9])]
    chosen = select(trials)
    assert chosen["trial"] == 1
    # the worst on validation made the best on test, the best made the worst: nothing moves
    shuffled = [{**t, "test_metric": 1.0 - t["best_val_metric"]} for t in trials]
    shuffled[3]["test_metric"] = -100.0
    assert select(shuffled) == chosen
    assert select([{**t, "test_metric": float("nan")} for t in trials]) == chosen
    assert select([NoTestMetric(t) for t in trials]) == chosen  # and never looks at it


def test_ties_go_to_the_faster_trial_then_the_lower_index():
    assert select([trial(0, 0.2, time=30.0), trial(1, 0.2, time=10.0), trial(2, 0.2, time=20.0)])["trial"] == 1
    assert select([trial(3, 0.2, time=10.0), trial(1, 0.2, time=10.0), trial(2, 0.5, time=1.0)])["trial"] == 1


def test_a_diverged_failed_or_unscored_trial_is_never_selected():
    trials = [trial(0, 0.001, status="diverged"), trial(1, 0.002, status="failed"), trial(2, float("nan")),
              trial(3, float("inf")), trial(4, None), trial(5, 0.5), trial(6, 0.7)]
    out = select(trials)
    assert out["trial"] == 5
    assert (out["n_trials"], out["n_ok"], out["n_diverged"], out["n_failed"], out["rank_of"]) == (7, 2, 1, 4, 2)
    assert (out["val_metric_min"], out["val_metric_max"], out["val_metric_median"]) == (0.5, 0.7, 0.6)


def test_where_every_trial_diverged_no_trial_is_ok():
    out = select([trial(k, 1.0e9, status="diverged") for k in range(3)])
    assert out == {"status": "no trial ok", "reason": "every trial diverged (3 of 3)", "n_trials": 3, "n_ok": 0,
                   "n_diverged": 3, "n_failed": 0}
    mixed = select([trial(0, 1.0, status="diverged"), trial(1, float("nan"))])
    assert mixed["status"] == "no trial ok" and "1 diverged, 1 failed" in mixed["reason"]
    assert select([])["reason"] == "no trials"


def test_trials_of_different_metrics_or_indices_are_refused():
    with pytest.raises(ValueError, match="different metrics"):
        select([trial(0, 0.1), trial(1, 0.9, metric="accuracy")])
    with pytest.raises(ValueError, match="its own integer index"):
        select([trial(0, 0.1), trial(0, 0.2)])


# --- tuning.share --------------------------------------------------------------------------------

SHARE_MODELS = {**MODELS, "ltc_fast": {"type": "ltc", "impl": "fast"}, "gru": {"type": "gru"}}
HARDWARE = {
    "cpu": {"device": "cpu"},
    "gpu": {"device": "cuda"},
    "ddp-2gpu": {"device": "cuda", "nproc_per_node": 2, "backend": "nccl", "scaling": "weak"},
    "ddp-2gpu-strong": {"device": "cuda", "nproc_per_node": 2, "backend": "nccl", "scaling": "strong"},
    "ddp-cpu-2": {"device": "cpu", "nproc_per_node": 2, "backend": "gloo", "scaling": "strong"},
}


def shared(share, models=None, study=("ltc", "cfc", "lstm", "ltc_fast")) -> Tuning:
    extra = {} if models is None else {"models": models}
    return Tuning.from_settings(section(share=share, **extra), SHARE_MODELS, list(study), HARDWARE)


def test_a_shared_model_or_hardware_entry_trains_at_the_selection_it_names():
    t = shared({"models": {"ltc_fast": "ltc"}, "hardware": {"ddp-2gpu-strong": "gpu", "ddp-cpu-2": "cpu"}})
    assert t.models == ("ltc", "cfc", "lstm")  # without tuning.models: the study's, less those shared
    assert t.tunes("ltc_fast") and t.tunes("ltc") and not t.tunes("gru")
    assert t.source("sine", "ltc_fast", "ddp-2gpu-strong") == ("sine", "ltc", "gpu")
    assert t.source("har", "cfc", "ddp-cpu-2") == ("har", "cfc", "cpu")
    assert t.source("har", "cfc", "ddp-2gpu") == ("har", "cfc", "ddp-2gpu")  # a weak entry: its own trials
    # the shared model's runs count for the budget: a trial may not train longer than they do
    with pytest.raises(ValueError, match="model 'ltc_fast': 3"):
        t.check_budget({("sine", "ltc"): 5, ("sine", "ltc_fast"): 3})
    # its model need not be in the study (narrowed on the command line) for the trials to run on it
    assert shared({"models": {"ltc_fast": "ltc"}}, study=["ltc_fast"]).source("s", "ltc_fast", "cpu")[1] == "ltc"


SHARE_BAD = [
    ({"models": {"ltc_fast": "lstm"}}, None, "tuning.share.models.ltc_fast: 'ltc_fast' is a ltc and 'lstm' a lstm"),
    ({"models": {"ltc_fast": "ltc_ncps"}}, None, "tuning.share.models.ltc_fast: 'ltc_ncps' is not one of the study's "
                                                  "models"),
    ({"models": {"ltc": "ltc"}}, None, "tuning.share.models.ltc: a name cannot share its own selection"),
    ({"models": {"ltc_fast": "ltc", "ltc": "ltc_fast"}}, None, "tuning.share.models.ltc_fast: 'ltc' shares a selection itself"),
    ({"models": {"ltc_fast": "ltc"}}, ["ltc", "ltc_fast"], "'ltc_fast' is also in tuning.models"),
    ({"models": {"ltc_fast": "ltc"}}, ["cfc"], "tuning.share.models.ltc_fast: 'ltc' runs no trials"),
    ({"hardware": {"ddp-2gpu": "gpu"}}, None, "tuning.share.hardware.ddp-2gpu: 'ddp-2gpu' steps on 2 x batch_size "
                                              "sequences and 'gpu' on 1 x batch_size"),
    ({"hardware": {"ddp-4gpu": "gpu"}}, None, "tuning.share.hardware.ddp-4gpu: 'ddp-4gpu' is not one of the study's "
                                              "hardware"),
    ({"hardware": {"ddp-cpu-2": "gpu", "gpu": "cpu"}}, None, "'gpu' shares a selection itself"),
    ({"hardware": ["gpu"]}, None, "tuning.share.hardware: expected a mapping of names to names"),
    ({"seeds": {}}, None, "tuning.share: expected a mapping with models and/or hardware"),
]


@pytest.mark.parametrize("share,models,message", SHARE_BAD, ids=[m.split(":")[0] + str(i) for i, (_, _, m)
                                                                  in enumerate(SHARE_BAD)])
def test_a_bad_share_is_refused_naming_its_key(share, models, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        shared(share, models)


def test_points_handed_out_are_the_callers_own():
    """trial_points draws a space once; a caller changing a point changes nobody else's."""
    space = params("lstm", TWO)
    first = trial_points(space, 4, 0)
    first[0]["lr"] = -1.0
    assert trial_points(space, 4, 0)[0]["lr"] > 0
