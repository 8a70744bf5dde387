"""A study in which no run ended ok still writes every table, figure, claim and the report, each
saying so; and where some runs diverged, only the ok ones enter a number or are named."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

from conftest import REPO, snakemake

from liquidbench.results import claims, figures, headline, robustness, summary
from liquidbench.results.registry import EVALUATION_FIGURES, TABLES, figure_stems, resolve
from liquidbench.results.tables import write_table

TYPES = {"ltc": "ltc", "cfc": "cfc", "lstm": "lstm", "gru": "gru"}
CLAIM_SETTINGS = {"min_seeds": 2, "metric_tolerance_std": 1.0, "speedup_min": 1.0}
EVERY_RUN_DIVERGED = "no model: every run diverged"


def run_rows(spec: dict, dataset: str = "sine") -> pd.DataFrame:
    """runs.csv-like rows: spec[model] = [(status, train time, test metric), ...] one per seed. A
    diverged run keeps the numbers of its epochs before it diverged, as training writes them."""
    rows = [dict(dataset=dataset, model=model, hardware="cpu", seed=seed, status=status, train_time_s=time,
                 test_metric=metric, metric_name="mse", n_params=10, model_type=TYPES[model])
            for model, seeds in spec.items() for seed, (status, time, metric) in enumerate(seeds)]
    return pd.DataFrame(rows)


# ---- some runs diverged: only the ok ones count ---------------------------------------------------

def test_the_headline_never_names_a_diverged_model():
    """cfc diverged in both seeds with the best-looking time and metric of all: it is neither the
    fastest nor the most accurate, not in the Pareto set, and named among the runs left out; ltc's
    diverged seed does not move its mean."""
    runs = run_rows({
        "cfc": [("diverged", 1.0, 0.001), ("diverged", 1.1, 0.002)],
        "ltc": [("ok", 20.0, 0.30), ("ok", 22.0, 0.32), ("diverged", 2.0, 0.0001)],
        "lstm": [("ok", 10.0, 0.50), ("ok", 11.0, 0.52)],
    })
    s = summary.summarize(runs)
    by_model = s.set_index("model")
    assert by_model.loc["cfc", "test_metric_n"] == 0 and math.isnan(by_model.loc["cfc", "test_metric_mean"])
    assert by_model.loc["ltc", "test_metric_mean"] == pytest.approx(0.31) and by_model.loc["ltc", "n_diverged"] == 1

    row = headline.headline(s, TYPES).iloc[0]
    assert (row.fastest, row.most_accurate) == ("lstm", "ltc")
    assert "cfc" not in row.pareto and "cfc" not in row.time_vs_lstm
    assert row.left_out == "cfc: 2 diverged; ltc: 2 ok, 1 diverged" and row.no_model == ""

    # a summary that carries numbers for a row without ok seeds (one written elsewhere) is no different
    forged = s.copy()
    at = forged["model"] == "cfc"
    forged.loc[at, ["train_time_s_gmean", "test_metric_mean"]] = [0.5, 0.0001]
    assert tuple(headline.headline(forged, TYPES).iloc[0][["fastest", "most_accurate"]]) == ("lstm", "ltc")

    _, shown, notes = headline.build(s, claims.check_claims(s, pd.DataFrame(), TYPES, settings()), TYPES)
    assert shown.iloc[0]["most accurate (test metric)"].startswith("ltc: ")
    assert shown.iloc[0][headline.LEFT_OUT] == "cfc: 2 diverged; ltc: 2 ok, 1 diverged"
    assert summary.NO_OK_RUNS not in notes


def test_an_lstm_without_ok_runs_is_not_reported_as_absent():
    runs = run_rows({"cfc": [("ok", 1.0, 0.1), ("ok", 1.2, 0.1)], "lstm": [("diverged", 0.5, 0.05)] * 2})
    row = headline.headline(summary.summarize(runs), TYPES).iloc[0]
    assert row.time_vs_lstm == "no ok lstm run (2 diverged)" and row.fastest == "cfc"


def test_an_evaluation_of_a_run_that_diverged_is_left_out(tmp_path):
    """A run that diverged after a good epoch keeps that epoch's weights, and the evaluation stage
    tests them: its metrics.json, beside the evaluation, keeps it out of the tables."""
    paths = []
    for seed, status in enumerate(("ok", "diverged")):
        folder = tmp_path / f"runs/sine/cfc/cpu/seed{seed}"
        folder.mkdir(parents=True)
        keys = {"dataset": "sine", "model": "cfc", "hardware": "cpu", "seed": seed}
        (folder / "metrics.json").write_text(json.dumps({**keys, "status": status}))
        (folder / "evaluation.json").write_text(json.dumps({
            **keys, "metric_name": "mse", "status": "ok", "skipped": {},
            "rows": [{"family": "clean", "level": 0.0, "metric": 0.1 * (seed + 1), "n": 8},
                     {"family": "noise", "level": 0.5, "metric": 0.2 * (seed + 1), "n": 8}],
            "memory": {"n_params": 10, "activation_bytes": 64, "activation_batch": 2, "activation_seq_len": 4,
                       "activation_bytes_per_step": 8.0}}))
        paths.append(folder / "evaluation.json")
    rows, runs = robustness.collect(paths)
    assert set(rows["seed"]) == {0} and list(runs["seed"]) == [0]

    # an evaluation table written before: the memory table keeps to the runs table's ok runs all the same
    both = pd.concat([runs, runs.assign(seed=1)], ignore_index=True)
    table = run_rows({"cfc": [("ok", 1.0, 0.1), ("diverged", 1.0, 0.1)]}).assign(peak_host_rss_mb=100.0)
    raw, _, _ = robustness.build_memory(table, both)
    assert list(raw["n"]) == [1]


def test_loss_curves_average_ok_runs_only():
    history = pd.DataFrame({"dataset": "sine", "model": "cfc", "hardware": "cpu", "seed": [0, 0, 1, 1],
                            "epoch": [1, 2, 1, 2], "train_loss": [1.0, 0.5, 1e30, float("nan")],
                            "val_loss": [1.0, 0.6, 1e31, float("nan")], "epoch_time_s": 0.1,
                            "status": ["ok", "ok", "diverged", "diverged"]})
    kept = figures.ok_history(history)
    assert list(kept["seed"]) == [0, 0]
    # history tables written before they carried a status: every finite epoch
    assert len(figures.ok_history(history.drop(columns="status"))) == 3


# ---- every run diverged: every table, figure and claim still, saying so ---------------------------

def settings():
    from liquidbench.results.verdicts import ClaimsSettings

    return ClaimsSettings.from_dict(CLAIM_SETTINGS)


def diverged_runs() -> pd.DataFrame:
    """Every run of two data sets diverged: no finite number anywhere, as training writes them."""
    nan = float("nan")
    spec = {m: [("diverged", nan, nan)] * 2 for m in TYPES}
    runs = pd.concat([run_rows(spec, "sine"), run_rows(spec, "sine_forecast")], ignore_index=True)
    return runs.assign(diverged_epoch=1, diverged_reason="loss not finite (train nan, validation nan)")


def test_tables_of_a_study_without_ok_runs_have_columns_and_say_why(tmp_path):
    """The table builders on an all-diverged study, written as the rules write them: every CSV has
    its columns, every claim is undecidable with the reason, the headline names no model."""
    runs = diverged_runs()
    evaluations = []
    for r in runs.to_dict("records"):  # the evaluation stage's output for a run without weights
        folder = tmp_path / f"runs/{r['dataset']}/{r['model']}/cpu/seed{r['seed']}"
        folder.mkdir(parents=True)
        keys = {k: r[k] for k in ("dataset", "model", "hardware", "seed")}
        (folder / "evaluation.json").write_text(json.dumps({**keys, "metric_name": "mse", "status": "diverged",
                                                            "rows": [], "skipped": {}, "memory": {}}))
        evaluations.append(folder / "evaluation.json")
    evaluation, evaluation_runs = robustness.collect(evaluations)
    for name, frame in (("evaluation", evaluation), ("evaluation_runs", evaluation_runs)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    read = {"runs": runs, "evaluation": pd.read_csv(tmp_path / "evaluation.csv"),
            "evaluation_runs": pd.read_csv(tmp_path / "evaluation_runs.csv")}
    read["summary"] = summary.summarize(runs)
    read["scaling"] = resolve(TABLES["scaling"].build)(read["summary"], {"cpu": {"device": "cpu"}}, 0.7, {})[0]
    given = {"model_types": TYPES, "settings": CLAIM_SETTINGS}
    for name in ("robustness", "memory", "robustness_claims", "claims", "headline"):
        table = TABLES[name]
        inputs = {i: read[i] for i in table.inputs} | {i: read[i] for i in table.optional if i in read}
        raw, shown, notes = resolve(table.build)(**inputs, **{k: given[k] for k in table.settings})
        write_table(raw, shown, tmp_path / f"{name}.csv", tmp_path / f"{name}.md", notes=notes)
        read[name] = pd.read_csv(tmp_path / f"{name}.csv")
        assert len(read[name].columns) > 1, name
        assert summary.NO_OK_RUNS in notes or robustness.NOTHING_EVALUATED in notes, name
    assert set(read["claims"]["verdict"]) == {"undecidable"}
    assert read["claims"]["evidence"].str.startswith(summary.NO_OK_RUNS).all()
    assert list(read["headline"]["no_model"]) == [EVERY_RUN_DIVERGED] * 2
    assert read["headline"]["most_accurate"].isna().all() and read["headline"]["fastest"].isna().all()


def test_figures_of_a_study_without_ok_runs_are_drawn(tmp_path):
    runs = diverged_runs()
    s = summary.summarize(runs)
    history = pd.DataFrame({"dataset": "sine", "model": "cfc", "hardware": "cpu", "seed": [0, 1], "epoch": 1,
                            "train_loss": float("nan"), "val_loss": float("nan"), "val_metric": float("nan"),
                            "epoch_time_s": 0.01, "status": "diverged"})
    written = figures.loss_curves(history, "sine", tmp_path / "loss_curves_sine")
    written += figures.train_time(s, tmp_path / "train_time", ["sine", "sine_forecast"])
    written += figures.gpu(s, tmp_path / "gpu")
    assert all(p.stat().st_size > 1000 for p in written) and len(written) == 6


# ---- the whole workflow ---------------------------------------------------------------------------

def diverging_study() -> dict:
    """The smoke study cut to its forecasting sine data set (no downloads; shift and the closed-loop
    horizon run on it), a liquid model, a baseline and a DDP configuration of one, at the learning
    rate that used to end every run `ok` with test MSE from 1e7 to 3.5e27 (lr 1e4): every run
    diverges in its first epoch, by a loss past the divergence bound or not finite."""
    cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    cfg["study"] = {"datasets": ["sine_forecast"], "models": ["cfc", "lstm"],
                    "hardware": ["cpu", "ddp-cpu-2"], "seeds": [0],
                    "exclude": [{"hardware": "ddp-cpu-2", "model": "lstm"}]}
    cfg["training"] = {**cfg["training"], "epochs": 1, "lr": 1.0e4}
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if k in cfg["study"]["datasets"]}
    cfg["results"]["targets"] = {k: v for k, v in cfg["results"]["targets"].items() if k in cfg["datasets"]}
    cfg.pop("data_mirror", None)
    return cfg


@pytest.mark.slow
def test_a_study_whose_runs_all_diverged_reports_every_table_figure_and_claim(workflow_copy):
    wd = workflow_copy
    cfg = diverging_study()
    (wd / "diverged.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(wd, "--cores", "2", "--configfile", "diverged.yaml")
    snakemake(wd, "--configfile", "diverged.yaml", "--report", "results/report.html")
    tables = wd / "results/tables"

    runs = pd.read_csv(tables / "runs.csv")
    assert set(runs["status"]) == {"diverged"}, "lr 1e4 no longer diverges every run: pick a setting that does"
    # every table the study writes, with its columns (never an empty file)
    study_tables = [n for n, t in TABLES.items() if not t.when or cfg["results"].get(t.when) or cfg.get(t.when)]
    for name in ["runs", "history", "evaluation", "evaluation_runs", *study_tables]:
        frame = pd.read_csv(tables / f"{name}.csv")
        assert len([c for c in frame.columns if c != "table_format"]) > 1, name
    for name in study_tables:
        for ext in ("md", "tex", "html"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    # the claims: undecidable, saying why
    claim_table = pd.read_csv(tables / "claims.csv")
    assert len(claim_table) and set(claim_table["verdict"]) == {"undecidable"}
    assert claim_table["evidence"].str.startswith(summary.NO_OK_RUNS).all()
    # the headline: no model on any data set
    top = pd.read_csv(tables / "headline.csv")
    assert set(top["dataset"]) == set(cfg["study"]["datasets"])
    assert set(top["no_model"]) == {EVERY_RUN_DIVERGED} and top["most_accurate"].isna().all()
    assert EVERY_RUN_DIVERGED in (tables / "headline.md").read_text()
    for name in ("memory", "robustness", "robustness_claims"):
        assert robustness.NOTHING_EVALUATED in (tables / f"{name}.md").read_text(), name
    # every figure
    stems = figure_stems(cfg["study"]["datasets"]) + list(EVALUATION_FIGURES)
    for stem in stems:
        for ext in ("png", "pdf"):
            assert (wd / f"results/figures/{stem}.{ext}").stat().st_size > 1000, f"{stem}.{ext}"
    assert EVERY_RUN_DIVERGED in (wd / "results/report.html").read_text()
