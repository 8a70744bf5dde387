"""Performance profiles (results/profiles.py) on hand-computed cases: rho and its area for time to
target and test metric (mse, accuracy as error rate), the workloads a profile leaves out and says
so, a study without ok runs, the CSV and the figure, and the registry entries behind them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import REPO

from liquidbench.cli import main
from liquidbench.results import compare, figures, profiles, summary
from liquidbench.results.registry import FIGURES, TABLES, figure_inputs, figure_stems, resolve
from liquidbench.results.tables import write_table

TARGET = 0.5  # every data set's target validation metric (mse: reached at or below it)


def study(times: dict, metrics: dict | None = None, metric_name: str = "mse", status: dict | None = None):
    """(summary, time_to_target) of one-seed runs on hardware cpu: ``times[(dataset, model)]`` is the
    run's time to target (None: it never reaches it), ``metrics`` its test metric, ``status`` a run
    status other than ok; built by the table functions the workflow runs."""
    runs, history = [], []
    for (dataset, model), t in times.items():
        state = (status or {}).get((dataset, model), "ok")
        metric = (metrics or {}).get((dataset, model), 0.1)
        runs.append(dict(dataset=dataset, model=model, hardware="cpu", seed=0, status=state, train_time_s=t or 7.0,
                         test_metric=metric, metric_name=metric_name, n_params=10, model_type=model))
        reached = TARGET if metric_name == "mse" else 1 - TARGET
        history.append(dict(dataset=dataset, model=model, hardware="cpu", seed=0, epoch=1, epoch_time_s=t or 7.0,
                            val_metric=reached if t else (1.0 if metric_name == "mse" else 0.0)))
    runs, history = pd.DataFrame(runs), pd.DataFrame(history)
    datasets = {d for d, _ in times}
    return summary.summarize(runs), compare.time_to_target(runs, history, {d: TARGET for d in datasets})


def profile(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    return table[(table["kind"] == "profile") & (table["profile"] == kind)].set_index("model")


def ratios_of(table: pd.DataFrame, kind: str) -> dict:
    rows = table[(table["kind"] == "workload") & (table["profile"] == kind)]
    return {(r.dataset, r.model): r.ratio for r in rows.itertuples()}


# 3 models x 2 workloads. sine/cpu: cfc 10 s, ltc 15 s, lstm 20 s (ratios 1, 1.5, 2);
# traffic/cpu: cfc 30 s, ltc 10 s, lstm never reaches the target (ratios 3, 1, inf).
TIMES = {("sine", "cfc"): 10.0, ("sine", "ltc"): 15.0, ("sine", "lstm"): 20.0,
         ("traffic", "cfc"): 30.0, ("traffic", "ltc"): 10.0, ("traffic", "lstm"): None}


def test_time_profile_by_hand():
    s, ttt = study(TIMES)
    table, _, notes = profiles.build(s, ttt)
    # (a time is the geometric mean over seeds, exp(mean log): 20 s comes back as 19.999999999999996)
    assert ratios_of(table, "time") == pytest.approx({
        ("sine", "cfc"): 1.0, ("sine", "ltc"): 1.5, ("sine", "lstm"): 2.0,
        ("traffic", "cfc"): 3.0, ("traffic", "ltc"): 1.0, ("traffic", "lstm"): math.inf})
    r = {m: [ratios_of(table, "time")[(d, m)] for d in ("sine", "traffic")] for m in ("cfc", "ltc", "lstm")}
    expected = {1: {"cfc": 0.5, "ltc": 0.5, "lstm": 0.0}, 1.5: {"cfc": 0.5, "ltc": 1.0, "lstm": 0.0},
                2: {"cfc": 0.5, "ltc": 1.0, "lstm": 0.5}, 4: {"cfc": 1.0, "ltc": 1.0, "lstm": 0.5},
                16: {"cfc": 1.0, "ltc": 1.0, "lstm": 0.5}}
    for tau, shares in expected.items():
        assert {m: profiles.rho(r[m], tau) for m in r} == shares, tau
    # the area: mean over workloads of 1 - log_16 r (0 for r = inf)
    log16 = math.log(16)
    area = {"cfc": (1 + 1 - math.log(3) / log16) / 2, "ltc": (1 - math.log(1.5) / log16 + 1) / 2, "lstm": 0.375}
    p = profile(table, "time")
    assert p["area"].to_dict() == pytest.approx(area)
    assert p["n_workloads"].to_dict() == {"cfc": 2, "ltc": 2, "lstm": 2}
    for tau in profiles.TAUS:
        assert p[f"rho_{tau}"].to_dict() == {m: profiles.rho(r[m], tau) for m in r}, tau
    # the exact area is the integral of the step function over log tau, normalised
    grid = np.exp(np.linspace(0, log16, 200_001))
    for m in r:
        numeric = np.trapezoid(profiles.rho(r[m], grid), np.log(grid)) / log16
        assert numeric == pytest.approx(area[m], abs=1e-4), m
    best = table[(table["kind"] == "workload") & (table["profile"] == "time")].set_index(["dataset", "model"])
    assert best.loc[("traffic", "lstm"), "outcome"] == "not reached"
    assert best.loc[("sine", "lstm"), "best_model"] == "cfc"
    assert "no model reached" not in notes


def test_rho_counts_a_ratio_that_is_a_round_factor_up_to_rounding():
    three = math.exp(math.log(15.0)) / math.exp(math.log(5.0))  # geometric means of 15 s and 5 s
    assert three > 3  # 3.0000000000000004
    assert profiles.rho([three], 3) == 1.0 and profiles.rho([3.01], 3) == 0.0
    assert math.isnan(profiles.rho([], 2)) and math.isnan(profiles.area([]))
    assert profiles.area([1.0, 16.0, 32.0, math.inf]) == 0.25
    assert profiles.TAU_GRID[0] == 1 and profiles.TAU_GRID[-1] == 16 and len(profiles.TAU_GRID) == 65
    assert {1, 2, 4, 8, 16} <= set(profiles.TAU_GRID)


def test_metric_profile_mse_and_a_model_without_an_ok_run():
    """mse ratios are the metric over the best: sine 0.1, 0.2, 0.4 (1, 2, 4); traffic 0.3, 0.1 and a
    diverged lstm (3, 1, inf)."""
    metrics = {("sine", "cfc"): 0.1, ("sine", "ltc"): 0.2, ("sine", "lstm"): 0.4,
               ("traffic", "cfc"): 0.3, ("traffic", "ltc"): 0.1, ("traffic", "lstm"): 0.01}
    s, ttt = study({k: 5.0 for k in metrics}, metrics, status={("traffic", "lstm"): "diverged"})
    table, shown, _ = profiles.build(s, ttt)
    r = ratios_of(table, "metric")
    assert r == pytest.approx({("sine", "cfc"): 1.0, ("sine", "ltc"): 2.0, ("sine", "lstm"): 4.0,
                               ("traffic", "cfc"): 3.0, ("traffic", "ltc"): 1.0, ("traffic", "lstm"): math.inf})
    p = profile(table, "metric")
    assert p[["rho_1", "rho_2", "rho_4", "rho_16"]].loc["lstm"].tolist() == [0.0, 0.0, 0.5, 0.5]
    assert p[["rho_1", "rho_2", "rho_4"]].loc["cfc"].tolist() == [0.5, 0.5, 1.0]
    assert p[["rho_1", "rho_2"]].loc["ltc"].tolist() == [0.5, 1.0]
    assert p.loc["lstm", "area"] == pytest.approx((1 - 0.5) / 2)  # log_16 4 = 1/2; inf counts 0
    lstm = shown[(shown["profile"] == "metric") & (shown["model"] == "lstm")].iloc[0]
    assert lstm["ratio to the best per workload"] == "sine/cpu 4; traffic/cpu no ok runs"
    # the diverged run has no time either: not reached on traffic
    assert ratios_of(table, "time")[("traffic", "lstm")] == math.inf


def test_metric_profile_accuracy_is_on_the_error_rate():
    """Accuracies 0.9, 0.8, 0.95 are errors 0.1, 0.2, 0.05: ratios 2, 4, 1 (tau >= 1: worse by that
    factor); at a perfect accuracy the models also at 1.0 are best and the others infinitely worse."""
    metrics = {("har", "cfc"): 0.9, ("har", "ltc"): 0.8, ("har", "lstm"): 0.95,
               ("har2", "cfc"): 1.0, ("har2", "ltc"): 1.0, ("har2", "lstm"): 0.99}
    s, ttt = study({k: 5.0 for k in metrics}, metrics, metric_name="accuracy")
    table, _, _ = profiles.build(s, ttt)
    assert ratios_of(table, "metric") == pytest.approx({
        ("har", "cfc"): 2.0, ("har", "ltc"): 4.0, ("har", "lstm"): 1.0,
        ("har2", "cfc"): 1.0, ("har2", "ltc"): 1.0, ("har2", "lstm"): math.inf})
    rows = table[(table["kind"] == "workload") & (table["profile"] == "metric")].set_index(["dataset", "model"])
    assert rows.loc[("har", "cfc"), "cost"] == pytest.approx(0.1) and rows.loc[("har", "cfc"), "value"] == 0.9
    assert rows.loc[("har2", "cfc"), "best_model"] == "cfc, ltc"
    p = profile(table, "metric")
    assert p[["rho_1", "rho_2", "rho_4"]].to_dict("index") == {
        "cfc": {"rho_1": 0.5, "rho_2": 1.0, "rho_4": 1.0}, "ltc": {"rho_1": 0.5, "rho_2": 0.5, "rho_4": 1.0},
        "lstm": {"rho_1": 0.5, "rho_2": 0.5, "rho_4": 0.5}}
    assert profiles.metric_cost("accuracy", 0.75) == 0.25 and profiles.metric_cost("mse", 0.75) == 0.75


def test_a_study_with_one_workload():
    s, ttt = study({("sine", "cfc"): 4.0, ("sine", "lstm"): 8.0})
    table, shown, _ = profiles.build(s, ttt)
    p = profile(table, "time")
    assert p.loc["cfc", ["rho_1", "rho_2", "area"]].tolist() == [1.0, 1.0, 1.0]
    assert p.loc["lstm", ["rho_1", "rho_2", "area"]].tolist() == pytest.approx([0.0, 1.0, 0.75])  # 1 - log_16 2
    assert (p["n_workloads"] == 1).all() and list(shown["workloads"]) == ["1"] * 4


def test_a_workload_where_no_model_reached_the_target_is_left_out_and_named():
    times = {("sine", "cfc"): 4.0, ("sine", "lstm"): 8.0, ("traffic", "cfc"): None, ("traffic", "lstm"): None}
    s, ttt = study(times)
    table, shown, notes = profiles.build(s, ttt)
    assert "- time profile: no model reached the target on traffic/cpu, left out." in notes
    assert (profile(table, "time")["n_workloads"] == 1).all() and (profile(table, "metric")["n_workloads"] == 2).all()
    left = table[(table["kind"] == "workload") & (table["profile"] == "time") & (table["dataset"] == "traffic")]
    assert len(left) == 2 and not left["in_profile"].any() and left["ratio"].isna().all()
    assert set(left["outcome"]) == {"not reached"}
    assert "traffic" not in shown.loc[shown["profile"] == "time", "ratio to the best per workload"].str.cat()
    # a data set without a target: its workloads are left out of the time profile, saying so
    none = compare.time_to_target(pd.DataFrame([dict(dataset="sine", model="cfc", hardware="cpu", seed=0,
                                                      status="ok", metric_name="mse")]), pd.DataFrame(), {})
    table, _, notes = profiles.build(s, none)
    assert "no target for data set sine (config results.targets)" in notes
    assert (profile(table, "time")["n_workloads"] == 0).all() and profile(table, "time")["rho_1"].isna().all()


def test_a_model_the_study_did_not_run_on_a_workload_is_not_counted_there():
    """An excluded combination is no workload of that model; a failed run is one it has no cost on."""
    times = {("sine", "cfc"): 4.0, ("sine", "ltc"): 4.0, ("traffic", "cfc"): 4.0, ("forecast", "cfc"): 2.0,
             ("forecast", "ltc"): 4.0}
    s, ttt = study(times, status={("forecast", "ltc"): "failed"})
    table, _, _ = profiles.build(s, ttt)
    p = profile(table, "time")
    assert p["n_workloads"].to_dict() == {"cfc": 3, "ltc": 2}
    assert p["rho_16"].to_dict() == {"cfc": 1.0, "ltc": 0.5}


def test_partly_reached_counts_at_the_geometric_mean_of_the_seeds_that_reached(tmp_path):
    runs = pd.DataFrame([dict(dataset="sine", model=m, hardware="cpu", seed=seed, status="ok", train_time_s=1.0,
                              test_metric=0.1, metric_name="mse") for m in ("cfc", "lstm") for seed in (0, 1)])
    history = pd.DataFrame([dict(dataset="sine", model=m, hardware="cpu", seed=seed, epoch=1, epoch_time_s=t,
                                 val_metric=v) for m, seed, t, v in
                            [("cfc", 0, 2.0, 0.1), ("cfc", 1, 8.0, 0.1), ("lstm", 0, 2.0, 0.1), ("lstm", 1, 3.0, 0.9)]])
    s, ttt = summary.summarize(runs), compare.time_to_target(runs, history, {"sine": 0.5})
    table, _, notes = profiles.build(s, ttt)
    assert ratios_of(table, "time") == pytest.approx({("sine", "cfc"): 4.0 / 2.0, ("sine", "lstm"): 1.0})
    assert "reached by some seeds only, timed over those: lstm on sine/cpu (1 of 2 ok seeds)" in notes


def test_no_ok_runs_gives_columns_a_note_and_empty_panels(tmp_path, monkeypatch):
    s, ttt = study({("sine", "cfc"): 4.0, ("sine", "lstm"): None},
                   status={("sine", "cfc"): "diverged", ("sine", "lstm"): "diverged"})
    raw, shown, notes = profiles.build(s, ttt)
    assert notes.startswith(summary.NO_OK_RUNS)
    assert "no model reached the target on sine/cpu" in notes and "no model has an ok run on sine/cpu" in notes
    write_table(raw, shown, tmp_path / "profiles.csv", tmp_path / "profiles.md", notes=notes)
    read = pd.read_csv(tmp_path / "profiles.csv")
    assert list(read.columns) == profiles.COLUMNS + ["table_format"]
    assert read.loc[read["kind"] == "profile", "rho_1"].isna().all()
    said = []
    monkeypatch.setattr(figures, "no_data", lambda ax, why: said.append(why))
    written = profiles.performance_profile(read, s, tmp_path / "performance_profile")
    assert said == ["no ok runs in this study (see the summary table's runs column)"] * 2
    assert [p.suffix for p in written] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in written)
    # nothing at all: no summary rows, no time-to-target rows
    empty, shown, _ = profiles.build(pd.DataFrame(), pd.DataFrame())
    assert list(empty.columns) == profiles.COLUMNS and not len(empty) and not len(shown)
    assert profiles.performance_profile(empty, pd.DataFrame(), tmp_path / "empty")


def test_the_csv_keeps_every_ratio_and_the_figure_draws_each_model(tmp_path, monkeypatch):
    s, ttt = study(TIMES)
    raw, shown, notes = profiles.build(s, ttt)
    write_table(raw, shown, tmp_path / "profiles.csv", tmp_path / "profiles.md", notes=notes)
    read = pd.read_csv(tmp_path / "profiles.csv")
    assert ratios_of(read, "time") == ratios_of(raw, "time")  # inf survives the CSV
    assert len(read[read["kind"] == "workload"]) == 2 * 2 * 3 and len(read[read["kind"] == "profile"]) == 2 * 3
    assert read.loc[read["kind"] == "workload", "n_ok"].tolist() == [1] * 12  # integers, not 1.0
    legends = []
    save = figures.save

    def keep(fig, stem):
        legends.append([t.get_text() for legend in fig.legends for t in legend.get_texts()])
        lines = [len(ax.get_lines()) for ax in fig.axes]
        assert lines == [3, 3]
        return save(fig, stem)

    monkeypatch.setattr(figures, "save", keep)
    profiles.performance_profile(read, s, tmp_path / "performance_profile")
    assert legends == [["cfc", "lstm", "ltc"]]
    tau, share = profiles.curve([1.5, math.inf])
    assert share[tau < 1.5].tolist() == [0.0] * int((tau < 1.5).sum()) and share[tau >= 1.5].max() == 0.5


def test_registry_entries_the_command_and_captions(tmp_path):
    table, figure = TABLES["profiles"], FIGURES["performance_profile"]
    assert table.inputs == ("summary", "time_to_target") and resolve(table.build) is profiles.build
    assert figure.inputs == ("profiles", "summary") and resolve(figure.draw) is profiles.performance_profile
    assert "profiles" in figure_inputs() and "performance_profile" in figure_stems(["sine"])
    for caption in ("profiles.rst", "fig_performance_profile.rst"):
        assert (REPO / "workflow/report" / caption).exists(), caption
    s, ttt = study(TIMES)
    s.to_csv(tmp_path / "summary.csv", index=False)
    ttt.to_csv(tmp_path / "time_to_target.csv", index=False)
    out = [f"--out-{ext}={tmp_path / f'profiles.{ext}'}" for ext in ("csv", "md", "tex", "html")]
    assert main(["profiles", "--summary", str(tmp_path / "summary.csv"),
                 "--time_to_target", str(tmp_path / "time_to_target.csv"), *out]) == 0
    read = pd.read_csv(tmp_path / "profiles.csv")
    assert ratios_of(read, "time")[("traffic", "lstm")] == math.inf
    assert "rho(1)" in (tmp_path / "profiles.md").read_text()
