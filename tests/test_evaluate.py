"""The evaluation stage: kept weights, perturbation families, the closed-loop horizon, memory,
errors, claims, and the workflow property that a changed evaluation grid retrains nothing."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, planned_jobs, snakemake
from liquidbench.cli import main
from liquidbench.data.sine import DEFAULTS as SINE, evaluation_sets, prepare
from liquidbench.evaluate import horizon
from liquidbench.evaluate.common import Split
from liquidbench.evaluate.drop import drop_steps
from liquidbench.evaluate.memory import activation_bytes
from liquidbench.evaluate.settings import Evaluation, Grid, horizon_applies
from liquidbench.evaluate.stage import Context, evaluate_run
from liquidbench.models import build_model
from liquidbench.results.robustness import NOT_SIGNIFICANT, claim_rows, decide, difference, log_ratio
from liquidbench.train.loop import RunSpec, train

ANGLE_PARAMS = {"n_sequences": 40, "seq_len": 10, "seed": 0}  # target sin 2θ (the default)
SINE_PARAMS = {**ANGLE_PARAMS, "target": "next"}  # forecasting: the target is the next input
HORIZON = {"steps": 4, "n_sequences": 5}
SETTINGS = {"seed": 0, "batch_size": 64, "families": {
    "noise": {"levels": [0, 0.5]}, "drop": {"levels": [0, 0.5]},
    "shift": {"levels": [1.0], "n_sequences": 6}, "horizon": HORIZON}}


def prepared_run(root, name, params, settings, spec):
    """A prepared sine set ``name`` with its evaluation sets, and one run trained on it (2 epochs)."""
    data = root / name
    prepare(params, data)
    assert main(["prepare-eval", "--params", json.dumps(params), "--settings", json.dumps(settings),
                 "--out", str(root / f"{name}.evaluation.npz")]) == 0
    run = root / f"{name}-run"
    metrics = train(RunSpec(dataset=name, model=spec["type"], hardware="cpu", seed=0, data_dir=data, out_dir=run,
                            model_spec=spec, train_params={"epochs": 2, "batch_size": 8},
                            hardware_spec={"device": "cpu", "threads": 1}))
    return data, run, metrics


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A prepared forecasting sine set with its evaluation sets, and one trained CfC run."""
    data, run, metrics = prepared_run(tmp_path_factory.mktemp("eval"), "sine_forecast", SINE_PARAMS, SETTINGS,
                                      {"type": "cfc", "units": 6, "backbone_units": 8})
    return data, run, metrics


def extra(data):
    return data.parent / f"{data.name}.evaluation.npz"


def test_kept_weights_load_safely_and_rebuild_the_tested_model(trained):
    data, run, metrics = trained
    kept = torch.load(run / "weights.pt", weights_only=True)
    assert kept["build"]["model_spec"] == {"type": "cfc", "units": 6, "backbone_units": 8}
    assert kept["build"]["best_epoch"] == metrics["best_epoch"]
    # the rebuilt model gives the test metric the run reported (the best-validation weights)
    result = evaluate_run(run, data, SETTINGS, extra(data))
    clean = next(r for r in result["rows"] if r["family"] == "clean")
    assert clean["metric"] == pytest.approx(metrics["test_metric"], rel=1e-6)
    assert result["memory"]["n_params"] == metrics["n_params"]


def test_every_family_runs_seeded_and_level_zero_is_clean(trained):
    data, run, _ = trained
    a = evaluate_run(run, data, SETTINGS, extra(data))
    b = evaluate_run(run, data, SETTINGS, extra(data))
    assert a["rows"] == b["rows"]
    rows = {(r["family"], r["level"]): r["metric"] for r in a["rows"]}
    clean = rows[("clean", 0.0)]
    assert rows[("noise", 0.0)] == clean and rows[("drop", 0.0)] == clean
    assert rows[("noise", 0.5)] != clean and rows[("drop", 0.5)] != clean
    assert ("shift", 1.0) in rows
    horizon = [r for r in a["rows"] if r["family"] == "horizon"]
    assert [r["step"] for r in horizon] == [0, 1, 2, 3, 4]
    # another seed draws other noise
    other = evaluate_run(run, data, {**SETTINGS, "seed": 1}, extra(data))
    assert {(r["family"], r["level"]): r["metric"] for r in other["rows"]}[("noise", 0.5)] != rows[("noise", 0.5)]
    # without the sine evaluation sets, shift and horizon are skipped and say so
    plain = evaluate_run(run, data, SETTINGS)
    assert set(plain["skipped"]) == {"shift", "horizon"}


def test_the_horizon_runs_on_forecasting_data_only(trained, tmp_path):
    data, run, _ = trained
    hz = [r for r in evaluate_run(run, data, SETTINGS, extra(data))["rows"] if r["family"] == "horizon"]
    assert all(math.isfinite(r["metric"]) and r["n"] == HORIZON["n_sequences"] for r in hz)
    # a double-angle sine run: the horizon is skipped with its reason, its evaluation sets hold none
    no_horizon = {**SETTINGS, "families": {k: v for k, v in SETTINGS["families"].items() if k != "horizon"}}
    angle, angle_run, _ = prepared_run(tmp_path, "sine", ANGLE_PARAMS, no_horizon, {"type": "gru", "hidden_size": 4})
    result = evaluate_run(angle_run, angle, SETTINGS, extra(angle))
    assert "target double_angle" in result["skipped"]["horizon"] and "shift" not in result["skipped"]
    assert not [r for r in result["rows"] if r["family"] == "horizon"]
    # naming it for the horizon is an error naming it and what it needs; so are long sequences for it
    named = {**SETTINGS, "families": {**SETTINGS["families"], "horizon": {**HORIZON, "datasets": ["sine"]}}}
    with pytest.raises(ValueError, match=r"data set 'sine' cannot take the closed-loop horizon, which needs a sine "
                                         r"data set whose target is the next input \(params: \{target: next\}\)"):
        evaluate_run(angle_run, angle, named, extra(angle))
    assert main(["prepare-eval", "--params", json.dumps(ANGLE_PARAMS), "--settings", json.dumps(SETTINGS),
                 "--out", str(tmp_path / "bad.npz")]) == 1
    assert not (tmp_path / "bad.npz").exists()
    # a list that leaves a forecasting data set out skips it
    other = {**SETTINGS, "families": {**SETTINGS["families"], "horizon": {**HORIZON, "datasets": ["sine_other"]}}}
    assert "not among" in evaluate_run(run, data, other, extra(data))["skipped"]["horizon"]


def test_horizon_applies_by_target_or_by_list():
    grid = Grid(**HORIZON)
    assert horizon_applies(grid, "a", "next") and not horizon_applies(grid, "a", "double_angle")
    assert not horizon_applies(grid, "a", None)
    listed = Grid(**HORIZON, datasets=("a",))
    assert horizon_applies(listed, "a", "next") and not horizon_applies(listed, "b", "next")
    with pytest.raises(ValueError, match="data set 'a' cannot take the closed-loop horizon.*not a sine data set"):
        horizon_applies(listed, "a", None)


# one model of each type and implementation, small; the state each passes on differs (ncps's h or
# (h, c) with mixed memory, torch's h or (h, c) for LSTM)
LOOP_MODELS = {
    "ltc": {"type": "ltc", "units": 5, "ode_unfolds": 2},
    "ltc_fast": {"type": "ltc", "units": 5, "ode_unfolds": 2, "impl": "fast"},
    "ltc_autoncp_mixed": {"type": "ltc", "units": 8, "wiring": "autoncp", "motor_neurons": 2, "mixed_memory": True},
    "cfc": {"type": "cfc", "units": 5, "backbone_units": 6},
    "cfc_fast": {"type": "cfc", "units": 5, "backbone_units": 6, "impl": "fast"},
    "cfc_mixed": {"type": "cfc", "units": 5, "backbone_units": 6, "mixed_memory": True},
    "lstm": {"type": "lstm", "hidden_size": 5},
    "gru": {"type": "gru", "hidden_size": 5},
}


@pytest.mark.parametrize("name", LOOP_MODELS)
def test_closed_loop_equals_a_step_by_step_loop(name):
    torch.manual_seed(0)
    model = build_model(LOOP_MODELS[name], n_features=2, n_outputs=2, task="regression_per_step").eval()
    x, steps = torch.randn(3, 7, 2), 5
    got = horizon.closed_loop(model, x, steps)
    # by hand: the growing sequence from its start each time through the plain forward, its last
    # output appended as the next input
    seq = x
    with torch.no_grad():
        for _ in range(steps):
            seq = torch.cat([seq, model(seq)[:, -1:]], dim=1)
        expected = model(seq)
    assert got.shape == (3, 7 + steps, 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the fed-back inputs matter: the model on the true inputs only ends elsewhere
    with torch.no_grad():
        assert not torch.allclose(model(x)[:, -1], got[:, -1])


class Rotate(torch.nn.Module):
    """Predicts a sine signal's next input, turning (sin a, cos a) by ``angle`` a step; no state."""

    def __init__(self, angle: float):
        super().__init__()
        c, s = math.cos(angle), math.sin(angle)
        self.m = torch.tensor([[c, s], [-s, c]])

    def forward(self, x, elapsed=None):
        return x @ self.m.T

    def run(self, x, elapsed=None, state=None):
        return self(x), state


def test_a_perfect_forecaster_has_no_horizon_error_and_a_biased_one_the_expected_drift():
    # one frequency (1 rad per time unit, dt 0.1): the signal turns by 0.1 a step
    params = {"n_sequences": 6, "seq_len": 8, "freq_min": 1.0, "freq_max": 1.0, "target": "next"}
    sets = evaluation_sets(params, [1.0], 3, 12, 6, seed=0)
    split = Split.of({"x": sets["horizon_x"], "y": sets["horizon_y"]})
    ctx = Context(test=split, train_x=split.x, train_y=split.y, train_t=None, task="regression_per_step", seq_len=8,
                  seed=0, batch_size=4, train_batch=4, extra={"horizon": {0.0: split}})
    grid = Grid(steps=12, n_sequences=6)
    perfect = horizon.rows(Rotate(0.1), ctx, grid)
    assert [r["step"] for r in perfect] == list(range(13))
    assert max(r["metric"] for r in perfect) < 1e-10
    # turning by 0.1 + d: each output is off by d more than its input; the inputs fed back carry the
    # error on, so step h (its h-th fed-back input) is off by (h + 1) d: squared error 1 - cos((h + 1) d)
    d = 0.05
    biased = {r["step"]: r["metric"] for r in horizon.rows(Rotate(0.1 + d), ctx, grid)}
    assert biased[0] == pytest.approx(1 - math.cos(d), rel=1e-3)
    for h in range(1, 13):
        assert biased[h] == pytest.approx(1 - math.cos((h + 1) * d), rel=1e-3)


def test_dropped_steps_sum_the_elapsed_time_of_the_gaps():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(24, dtype=torch.float32).reshape(2, 6, 2)
    t = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]])
    y = torch.arange(12, dtype=torch.float32).reshape(2, 6, 1)
    out = drop_steps(Split(x, y, t), 0.5, g, per_step=True)
    assert out.x.shape == (2, 3, 2) and out.y.shape == (2, 3, 1)
    kept = out.y[..., 0].long() % 6  # y counts the steps, so it names the kept positions
    for i in range(2):
        # each kept step's elapsed time is the time since the previous kept step; they add up to
        # the clock at the last kept step
        assert out.t[i].sum().item() == pytest.approx(t[i, : kept[i, -1] + 1].sum().item())
        assert torch.equal(out.x[i, :, 0], x[i, kept[i], 0])
    # regular data: no elapsed times, the gaps are skipped
    assert drop_steps(Split(x, y, None), 0.5, torch.Generator().manual_seed(0), per_step=True).t is None


def test_shifted_sets_lie_outside_the_training_range():
    forecast = {"n_sequences": 20, "seq_len": 16, "target": "next"}
    sets = evaluation_sets(forecast, [1.0], 50, 6, 5, seed=3)
    amp = np.abs(sets["shift0_x"]).max(axis=(1, 2))
    assert amp.max() > 1.2 and (amp <= 2.0 + 1e-5).all()
    assert sets["horizon_x"].shape == (5, 16 + 6, 2)
    again = evaluation_sets(forecast, [1.0], 50, 6, 5, seed=3)
    assert all(np.array_equal(sets[k], again[k]) for k in sets)
    # the targets follow the data set's rule: the next input (no noise here), amplitude included
    for prefix in ("shift0", "horizon"):
        np.testing.assert_allclose(sets[f"{prefix}_y"][:, :-1], sets[f"{prefix}_x"][:, 1:], atol=1e-6)
    angle = evaluation_sets({"n_sequences": 20, "seq_len": 16}, [1.0], 50, None, 0, seed=3)
    assert angle["shift0_y"].shape == (50, 16, 1) and "horizon_x" not in angle
    with pytest.raises(ValueError, match="the horizon is closed-loop and needs a forecasting data set"):
        evaluation_sets({"n_sequences": 20, "seq_len": 16}, [1.0], 50, 6, 5, seed=3)
    # frequencies: the shifted signal turns faster than the fastest training sequence
    turns = lambda x: np.abs(np.diff(np.unwrap(np.arctan2(x[..., 0], x[..., 1]), axis=1), axis=1)).mean(axis=1)
    assert turns(sets["shift0_x"]).min() >= SINE["freq_max"] * SINE["dt"] * (1 - 1e-4)


def test_activation_memory_counts_what_the_model_computed_once():
    lin = torch.nn.Linear(3, 5)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x, t=None):
            return torch.tanh(self.lin(x))

    x = torch.zeros(4, 7, 3)
    got = activation_bytes(Model(), x, torch.zeros(4, 7, 5), None, "regression_per_step")
    # linear saves its input (the batch) and weight (a parameter), tanh and the loss its output
    # (4x7x5 floats, counted once), the loss the target (the batch): only tanh's output counts
    assert got == 4 * 7 * 5 * 4


@pytest.mark.parametrize("settings, message", [
    ({**SETTINGS, "families": {"blur": {"levels": [1]}}}, "unknown perturbation 'blur'"),
    ({**SETTINGS, "families": {"drop": {"levels": [0, 1.0]}}}, "level 1.0 is out of range"),
    ({**SETTINGS, "families": {"noise": {"levels": [-0.1]}}}, "evaluation.families.noise.levels: level -0.1"),
    ({**SETTINGS, "families": {"shift": {"levels": [0], "n_sequences": 3}}}, "shift levels must be > 0"),
    ({**SETTINGS, "families": {"horizon": {**HORIZON, "datasets": []}}}, "a non-empty list of distinct data set"),
    ({**SETTINGS, "families": {"horizon": {"steps": 3}}}, r"missing \['n_sequences'\].*\(datasets optional\)"),
])
def test_bad_settings_are_errors_naming_them(settings, message):
    with pytest.raises(ValueError, match=message):
        Evaluation.from_settings(settings)


def test_bad_input_writes_nothing(trained, tmp_path, caplog):
    data, run, _ = trained
    out = tmp_path / "evaluation.json"
    bad = {**SETTINGS, "families": {"blur": {"levels": [1]}}}
    assert main(["evaluate", "--run-dir", str(run), "--data", str(data), "--settings", json.dumps(bad),
                 "--out", str(out)]) == 1
    assert "unknown perturbation 'blur'" in caplog.text and not out.exists()
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "metrics.json").write_text((run / "metrics.json").read_text())
    assert main(["evaluate", "--run-dir", str(old), "--data", str(data), "--settings", json.dumps(SETTINGS),
                 "--out", str(out)]) == 1
    assert f"run folder {old}: no weights.pt" in caplog.text and not out.exists()


def test_a_comparison_is_decided_only_when_its_interval_excludes_the_null():
    c = difference([0.1, 0.12, 0.11], [0.5, 0.52, 0.49])  # clearly lower
    assert c["ci_high"] < 0 and decide(c, 2) == "true"
    assert decide(difference([0.5, 0.52, 0.49], [0.1, 0.12, 0.11]), 2) == "false"
    assert decide(difference([0.1, 0.5, 0.3], [0.2, 0.4, 0.35]), 2) == NOT_SIGNIFICANT
    assert decide(difference([0.1, 0.12, 0.11], [0.5, 0.52, 0.49]), 4) == "undecidable"
    r = log_ratio([100, 100], [200, 200])  # parameters: no spread, the ratio is exact
    assert r["estimate"] == pytest.approx(0.5) and r["ci_high"] == pytest.approx(0.5) and decide(r, 2) == "true"
    rows = {r["claim_id"]: r for r in claim_rows(pd.DataFrame([
        {"claim_id": "fewer_params", "comparison": "a", **r, "verdict": "true"},
        {"claim_id": "noise_robust", "comparison": "b", **c, "verdict": NOT_SIGNIFICANT},
        {"claim_id": "noise_robust", "comparison": "c", **c, "verdict": "undecidable"}]))}
    assert rows["fewer_params"]["verdict"] == "true"
    assert rows["noise_robust"]["verdict"] == "undecidable"
    assert rows["shift_robust"]["verdict"] == "undecidable" and rows["shift_robust"]["comparisons"] == 0
    assert (rows["fewer_params"]["decided"], rows["noise_robust"]["decided"]) == (1, 0)


@pytest.mark.slow
def test_changing_the_grid_retrains_nothing(workflow_copy):
    wd = workflow_copy
    study = ["--configfile", str(REPO / "tests/evaluate/study.yaml")]
    # targets first: --configfile and --config take every word after them
    targets = [f"results/runs/sine_forecast/{m}/cpu/seed0/evaluation.json" for m in ("cfc", "gru")]
    snakemake(wd, *targets, "--cores", "2", *study)
    assert planned_jobs(snakemake(wd, *targets, "-n", *study).stdout) == []
    # a changed noise grid: the evaluation jobs again, nothing else
    noise = ["--config", "evaluation={families: {noise: {levels: [0, 0.2, 1.0]}, drop: {levels: [0, 0.5]}, "
                         "shift: {levels: [1.0], n_sequences: 4}, horizon: {steps: 3, n_sequences: 4}}}"]
    plan = planned_jobs(snakemake(wd, *targets, "-n", *study, *noise).stdout)
    assert sorted(rule for rule, _ in plan) == ["evaluate", "evaluate"]
    # a changed shift grid: the sine evaluation sets and the evaluation jobs, still no training
    shift = ["--config", "evaluation={families: {noise: {levels: [0, 0.5]}, drop: {levels: [0, 0.5]}, "
                         "shift: {levels: [0.5, 2.0], n_sequences: 4}, horizon: {steps: 3, n_sequences: 4}}}"]
    plan = planned_jobs(snakemake(wd, *targets, "-n", *study, *shift).stdout)
    assert sorted(rule for rule, _ in plan) == ["evaluate", "evaluate", "prepare_evaluation_sets"]
    # and the whole study (tables, figures, claims) plans no training either
    plan = planned_jobs(snakemake(wd, "-n", *study, *noise).stdout)
    assert "train" not in {rule for rule, _ in plan} and {"robustness", "memory", "claims"} <= {r for r, _ in plan}
