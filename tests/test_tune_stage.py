"""The tuning stage's steps between the trials and the tables: select-trials checks each trial
against its point and selects on validation only; a run whose selection chose nothing is recorded
as failed, saying why; the tuning tables of a workload whose trials all diverged."""

import json

import pandas as pd
import pytest

from liquidbench.cli import main
from liquidbench.data.sine import prepare
from liquidbench.results.tuning import build_trials, build_tuned, collect
from liquidbench.train.loop import RunSpec, train

POINTS = [{"model": {"hidden_size": 4}, "training": {"lr": 0.02}},
          {"model": {"hidden_size": 6}, "training": {"lr": 0.005}}]


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    """Two one-epoch GRU trials on a tiny sine set, at POINTS."""
    root = tmp_path_factory.mktemp("tune")
    prepare({"n_sequences": 32, "seq_len": 8, "seed": 0}, root / "sine")
    paths = []
    for k, point in enumerate(POINTS):
        out = root / f"trial{k}"
        train(RunSpec(dataset="sine", model="gru", hardware="cpu", seed=0, data_dir=root / "sine", out_dir=out,
                      model_spec={"type": "gru", **point["model"]},
                      train_params={"epochs": 1, "batch_size": 8, **point["training"]},
                      hardware_spec={"device": "cpu", "threads": 1}))
        paths.append(out / "metrics.json")
    return root, paths


def select(paths, points, out):
    return main(["select-trials", *map(str, paths), "--points", json.dumps(points), "--out", str(out)])


def test_select_trials_picks_the_best_validation_metric(trials, tmp_path):
    _, paths = trials
    assert select(paths, POINTS, tmp_path / "selected.json") == 0
    chosen = json.loads((tmp_path / "selected.json").read_text())
    vals = [json.loads(p.read_text())["best_val_metric"] for p in paths]
    assert chosen["status"] == "selected" and chosen["trial"] == vals.index(min(vals))
    assert chosen["apply"] == POINTS[chosen["trial"]] and len(chosen["trials"]) == 2
    table = collect([tmp_path / "selected.json"])
    assert table["selected"].sum() == 1 and list(table["point.hidden_size"]) == [4, 6]


def test_select_trials_refuses_a_trial_that_is_not_its_point(trials, tmp_path, caplog):
    _, paths = trials
    swapped = [POINTS[1], POINTS[0]]  # each trial's metrics record the other's values
    assert select(paths, swapped, tmp_path / "selected.json") == 1
    assert "trained other values than its trial point" in caplog.text
    assert not (tmp_path / "selected.json").exists()
    assert select(paths[:1], POINTS, tmp_path / "selected.json") == 1  # a point without its trial
    assert "one point per trial" in caplog.text


def test_a_run_whose_tuning_selected_nothing_is_recorded_as_failed(trials, tmp_path):
    root, _ = trials
    selection = {"status": "no trial ok", "reason": "every trial diverged (2 of 2)", "n_trials": 2, "n_ok": 0}
    (tmp_path / "selected.json").write_text(json.dumps(selection))
    args = ["train", "--data", str(root / "sine"), "--dataset", "sine", "--model", "gru", "--model-params",
            '{"type": "gru", "hidden_size": 4}', "--hardware", "cpu", "--hardware-params", '{"device": "cpu"}',
            "--seed", "0", "--tuned", str(tmp_path / "selected.json"), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["status"] == "failed" and "every trial diverged" in metrics["failed_reason"]
    assert metrics["tuned"]["status"] == "no trial ok"
    assert all((tmp_path / "run" / name).exists() for name in ("history.csv", "telemetry.csv", "weights.pt"))


def test_the_tables_of_a_workload_whose_trials_all_diverged():
    trials = pd.DataFrame({"dataset": "sine", "model": "gru", "hardware": "cpu", "model_type": "gru", "trial": [0, 1],
                           "status": "diverged", "metric_name": "mse", "best_val_metric": float("nan"),
                           "train_time_s": 0.1, "selected": False, "reason": "loss not finite",
                           "point.lr": [0.1, 1.0]})
    raw, display, notes = build_tuned(trials)
    assert raw["selected_trial"].isna().all() and "no trial ended ok (2 of 2 diverged)" in raw["note"].iloc[0]
    assert "no trial ended ok" in display["selected setting"].iloc[0]
    raw, display, _ = build_trials(trials)
    assert list(display["status"]) == ["diverged", "diverged"]


CLAIMS_SETTINGS = {"min_seeds": 2, "metric_tolerance_std": 1.0, "speedup_min": 1.0}


def tuned_study_runs():
    """Runs of a study that tunes CfC and LTC and keeps a fixed twin of each: tuned, CfC trains in
    half LTC's time; at fixed settings it takes twice as long."""
    rows = []
    times = {"cfc": 1.0, "ltc": 2.0, "cfc_fixed": 4.0, "ltc_fixed": 2.0}
    for model, base in times.items():
        tuned = not model.endswith("_fixed")
        for seed, jitter in enumerate((0.98, 1.0, 1.02)):
            row = {"dataset": "sine", "model": model, "hardware": "cpu", "seed": seed, "status": "ok",
                   "train_time_s": base * jitter, "test_metric": 0.1 * jitter, "metric_name": "mse",
                   "model_type": model.split("_")[0], "n_params": 100, "epochs": 10}
            if tuned:
                row.update({"tuned.status": "selected", "tuned.n_trials": 4, "tuned.trial_epochs": 2})
            rows.append(row)
    return pd.DataFrame(rows)


def test_claims_are_reached_on_tuned_runs_and_say_whether_tuning_changed_them():
    from liquidbench.results import claims
    from liquidbench.results.summary import summarize

    summary = summarize(tuned_study_runs())
    assert dict(zip(summary["model"], summary["settings"])) == {
        "cfc": "tuned", "cfc_fixed": "fixed", "ltc": "tuned", "ltc_fixed": "fixed"}
    types = {"cfc": "cfc", "ltc": "ltc", "cfc_fixed": "cfc", "ltc_fixed": "ltc"}
    scaling = pd.DataFrame(columns=["dataset", "model", "hardware"])
    table, shown, _ = claims.build(summary, scaling, types, CLAIMS_SETTINGS)
    table = table.set_index("claim_id")
    faster = table.loc["cfc_faster"]
    assert faster["verdict"] == claims.TRUE and "cfc_fixed" not in faster["evidence"]
    assert faster["settings"] == ("tuned: cfc (4 trials of 2 epochs; runs of 10 epochs), "
                                  "ltc (4 trials of 2 epochs; runs of 10 epochs)")
    same = table.loc["cfc_faster_same_with_tuning"]
    assert same["verdict"] == claims.FALSE  # at fixed settings CfC was the slower one
    assert "fixed: false" in same["evidence"] and "tuned: true" in same["evidence"]
    assert "settings" in shown.columns


def test_a_study_without_tuning_states_its_fixed_settings():
    from liquidbench.results import claims
    from liquidbench.results.summary import summarize

    runs = tuned_study_runs()
    runs = runs[runs["model"].str.endswith("_fixed")].drop(columns=["tuned.status", "tuned.n_trials",
                                                                    "tuned.trial_epochs"])
    summary = summarize(runs)
    types = {"cfc_fixed": "cfc", "ltc_fixed": "ltc"}
    table, _, _ = claims.build(summary, pd.DataFrame(columns=["dataset", "model", "hardware"]), types, CLAIMS_SETTINGS)
    row = table.set_index("claim_id").loc["cfc_faster"]
    assert row["verdict"] == claims.FALSE and row["settings"] == ("fixed: cfc_fixed (runs of 10 epochs), "
                                                                 "ltc_fixed (runs of 10 epochs)")
    assert not table["claim_id"].str.endswith("_same_with_tuning").any()


def test_the_summary_names_the_selection_a_shared_model_trained_at():
    """A model or hardware entry of tuning.share records whose selection it took (metrics.json
    tuned.model and tuned.hardware); the summary's tuned_on names it, and is empty for a run
    tuned on its own trials or one at fixed settings."""
    from liquidbench.results.summary import summarize

    runs = tuned_study_runs()
    own = runs["model"] == "ltc"
    runs.loc[own, "tuned.model"], runs.loc[own, "tuned.hardware"] = "ltc", runs.loc[own, "hardware"]
    fast = runs[own].assign(model="ltc_fast")
    summary = summarize(pd.concat([runs, fast], ignore_index=True)).set_index("model")
    hardware = runs.loc[own, "hardware"].iloc[0]
    assert summary.loc["ltc_fast", "tuned_on"] == f"ltc on {hardware}"
    assert summary.loc["ltc", "tuned_on"] == "" and summary.loc["ltc_fixed", "tuned_on"] == ""
    assert summary.loc["cfc", "tuned_on"] == ""  # recorded before runs named their selection's workload
