"""The whole DAG end to end on the smoke study, incremental reruns, and the linter."""

import json
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO, planned_jobs, snakemake
from liquidbench.results.registry import TABLES
from liquidbench.study import study_runs

pytestmark = pytest.mark.slow
SMOKE = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
STUDY = SMOKE["study"]


# every rule after the runs: aggregation, one per table of the registry (summary's is summarize), the
# figures, the evaluation stage's, the tuning stage's and the scaling model's tables and figures; and
# the step probes, which time the models themselves (a changed model's probes run again)
RESULT_RULES = {"aggregate", "summarize", "plot", "all", "evaluate", "collect_evaluation", "plot_evaluation",
                "collect_trials", "plot_tuning", "probe_step", "collect_probes", "plot_scaling_model"} \
    | set(TABLES) - {"summary"}


def expected_runs():
    return set(study_runs(STUDY))


def test_smoke_study_produces_runs_tables_and_figures(smoke_run):
    runs = pd.read_csv(smoke_run / "results/tables/runs.csv")
    assert set(zip(runs.dataset, runs.model, runs.hardware, runs.seed)) == expected_runs()
    assert len(runs) == len(expected_runs())
    assert (runs.status == "ok").all()
    assert (runs["epochs"] == SMOKE["training"]["epochs"]).all()
    for _, run in runs.iterrows():
        metrics = json.loads((smoke_run / run.run_dir / "metrics.json").read_text())
        assert metrics["test_metric"] == pytest.approx(run.test_metric)
        assert (smoke_run / run.run_dir / "train.log").stat().st_size > 0

    summary = pd.read_csv(smoke_run / "results/tables/summary.csv")
    groups = {(d, m, h) for d, m, h, _ in expected_runs()}
    assert set(zip(summary.dataset, summary.model, summary.hardware)) == groups
    assert (summary.n_runs == len(STUDY["seeds"])).all()
    one = summary.iloc[0]
    sel = runs[(runs.dataset == one.dataset) & (runs.model == one.model) & (runs.hardware == one.hardware)]
    assert one.test_metric_mean == pytest.approx(sel.test_metric.mean())
    md = (smoke_run / "results/tables/summary.md").read_text()
    assert len([line for line in md.splitlines() if line.startswith("| ")]) == 1 + len(groups)

    history = pd.read_csv(smoke_run / "results/tables/history.csv")
    assert len(history) == len(expected_runs()) * SMOKE["training"]["epochs"]
    for stem in ["train_time", "test_metric"] + [f"loss_curves_{d}" for d in STUDY["datasets"]]:
        for ext in ("png", "pdf"):
            assert (smoke_run / f"results/figures/{stem}.{ext}").stat().st_size > 1000


def test_committed_reference_against_the_smoke_run(smoke_run, tmp_path):
    """A fresh smoke run compared with the project's reference (the paper study, docs/reference.md):
    every row of either side listed once; the sides' differences named."""
    from test_reference import PAPER_REFERENCE, check_comparison

    from liquidbench.results import reference as rf

    table = check_comparison(PAPER_REFERENCE, smoke_run / "results", tmp_path)
    both = table.loc[("traffic", "ltc", "cpu")]  # 32 units at 200 epochs there, 8 units at 2 epochs here
    assert (both["reference_metric_n"], both["current_metric_n"]) == (5, len(STUDY["seeds"]))
    assert "parameters" in both["differs"]
    assert table.loc[("traffic_prefix2020", "lstm", "cpu"), "metric_verdict"] == rf.REFERENCE_ONLY
    assert table.loc[("sine", "ltc", "cpu"), "metric_verdict"] == rf.CURRENT_ONLY
    md = (tmp_path / "compare.md").read_text()
    assert "reference/paper" in md


def test_complete_run_plans_nothing(smoke_run):
    proc = snakemake(smoke_run, "-n", "--configfile", ".test/config/config.yaml")
    assert planned_jobs(proc.stdout) == []
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_model_reruns_only_its_jobs_and_the_results(smoke_run):
    model = "cfc"
    units = SMOKE["models"][model]["units"] + 1
    proc = snakemake(smoke_run, "-n", "--configfile", ".test/config/config.yaml", "--config", f"models={{{model}: {{units: {units}}}}}")
    jobs = planned_jobs(proc.stdout)
    train = [wc for rule, wc in jobs if rule == "train"]
    assert len(train) == len([r for r in expected_runs() if r[1] == model])
    assert {wc["model"] for wc in train} == {model}
    other = {rule for rule, _ in jobs} - {"train"}
    assert other <= RESULT_RULES and "aggregate" in other
    assert not any(rule.startswith("prepare") for rule, _ in jobs)
    assert {wc["model"] for rule, wc in jobs if rule == "probe_step"} == {model}  # cfc has DDP runs: probed


def test_one_models_training_reruns_only_its_jobs(smoke_run):
    """A model's own `training` reaches its jobs as a param: changing it reruns that model only."""
    proc = snakemake(smoke_run, "-n", "--configfile", ".test/config/config.yaml", "--config", "models={ltc: {training: {lr: 0.02}}}")
    jobs = planned_jobs(proc.stdout)
    train = [wc for rule, wc in jobs if rule == "train"]
    assert train and {wc["model"] for wc in train} == {"ltc"}
    assert len(train) == len([r for r in expected_runs() if r[1] == "ltc"])


def test_smoke_study_leaves_out_what_it_excludes(smoke_run):
    assert STUDY["exclude"]
    planned = {tuple(p.relative_to(smoke_run / "results/runs").parts[:4])
               for p in smoke_run.glob("results/runs/*/*/*/seed*/metrics.json")}
    assert planned == {(d, m, h, f"seed{s}") for d, m, h, s in expected_runs()}
    assert not any(d == "traffic" and h == "ddp-cpu-2" for d, _, h, _ in planned)
    # excluded combinations are neither missing runs nor comparisons of their own
    runs = pd.read_csv(smoke_run / "results/tables/runs.csv")
    assert set(runs.status) == {"ok"}
    scaling = pd.read_csv(smoke_run / "results/tables/scaling.csv")
    assert set(zip(scaling.dataset, scaling.model)) == {(d, m) for d, m, h, _ in expected_runs() if h == "ddp-cpu-2"}
    ratios = pd.read_csv(smoke_run / "results/tables/ratios.csv")
    assert not ((ratios.dataset == "har") & (ratios.reference == "lstm")).any()


def test_full_study_dry_run_plans_every_job(full_plan):
    proc = full_plan
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    full, tuning = config["study"], config["tuning"]
    jobs = planned_jobs(proc.stdout)
    train = [wc for rule, wc in jobs if rule == "train"]
    # the product of the study's names, less its exclude (the forecasting sine signal's DDP runs)
    product = len(full["datasets"]) * len(full["models"]) * len(full["hardware"]) * len(full["seeds"])
    assert len(train) == len(study_runs(full)) < product
    assert {wc["hardware"] for wc in train} == set(full["hardware"])
    # every model tuned: trials only where tuning.share names no other model or hardware entry
    shared_models, shared_hardware = tuning["share"]["models"], tuning["share"]["hardware"]
    source = {(d, shared_models.get(m, m), shared_hardware.get(h, h)) for d, m, h, _ in study_runs(full)}
    trials = [(wc["dataset"], wc["model"], wc["hardware"]) for rule, wc in jobs if rule == "tune_trial"]
    assert set(trials) == source and len(trials) == len(source) * tuning["trials"]
    assert len([1 for rule, _ in jobs if rule == "select_trials"]) == len(source)
    # a run of a shared model or hardware entry trains at its source's selection (an input of its job)
    (block,) = [b for b in re.split(r"\n(?=rule \S+:)", proc.stdout) if b.startswith("rule train:")
                and "wildcards: dataset=sine, model=ltc_fast, hardware=ddp-2gpu-strong, seed=0" in b]
    assert "results/tuning/sine/ltc/gpu/selected.json" in block


def test_lint_reports_nothing(workflow_copy):
    proc = snakemake(workflow_copy, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_is_formatted_with_snakefmt():
    """snakefmt (pinned; settings in pyproject.toml) would change nothing in workflow/."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "workflow"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_smoke_figures_are_images_of_the_expected_size(smoke_run):
    from PIL import Image

    from liquidbench.results import figure_stems
    from liquidbench.results.figures import size_px

    rows = {"train_time": len(STUDY["datasets"]), "test_metric": len(STUDY["datasets"]), "pareto": len(STUDY["datasets"])}
    rows |= {f"loss_curves_{d}": 2 for d in STUDY["datasets"]}  # against epochs and against training time
    for stem in figure_stems(STUDY["datasets"]):
        png = smoke_run / f"results/figures/{stem}.png"
        with Image.open(png) as img:
            assert img.size == size_px(rows.get(stem, 1)), stem
            colours = img.convert("L").getextrema()
            assert colours[0] < colours[1], f"{stem}.png is blank"
        assert (smoke_run / f"results/figures/{stem}.pdf").read_bytes().startswith(b"%PDF")


def test_smoke_tables_and_claims(smoke_run):
    for name in ["headline", "summary", "scaling", "ratios", "time_to_target", "claims", "provenance"]:
        assert (smoke_run / f"results/tables/{name}.md").read_text().startswith("### ")
        assert "<table>" in (smoke_run / f"results/tables/{name}.html").read_text()
        assert "\\begin{tabular}" in (smoke_run / f"results/tables/{name}.tex").read_text()
    claims = pd.read_csv(smoke_run / "results/tables/claims.csv").set_index("claim_id")
    # ddp-cpu-2 against cpu compares DDP; two seeds each (t with 1 degree of freedom) rarely decide at 95 %:
    # the verdict is whatever the intervals allow, and the evidence shows each interval
    decided = {"true", "false", "not significant at 95 %"}
    assert claims.loc["ddp_faster", "verdict"] in decided and "speedup T(1)/T(n)" in claims.loc["ddp_faster", "evidence"]
    assert claims.loc["best_at_2", "verdict"] == "undecidable"
    assert claims.loc["cfc_faster", "verdict"] in decided and "time ratio cfc/ltc" in claims.loc["cfc_faster", "evidence"]
    assert claims.loc["cfc_faster_than_lstm", "verdict"] in decided
    ttt = pd.read_csv(smoke_run / "results/tables/time_to_target.csv")
    assert set(zip(ttt.dataset, ttt.target)) == set(SMOKE["results"]["targets"].items())


def test_smoke_evaluation_stage(smoke_run):
    """Every run evaluated from its kept weights; the tables, figures and claims of the stage."""
    from liquidbench.results.registry import EVALUATION_FIGURES

    evaluation = pd.read_csv(smoke_run / "results/tables/evaluation.csv")
    assert set(zip(evaluation.dataset, evaluation.model, evaluation.hardware, evaluation.seed)) == expected_runs()
    grid = SMOKE["evaluation"]["families"]
    for family in ("noise", "drop"):
        assert set(evaluation[evaluation.family == family].level) == set(grid[family]["levels"])
    # shift on the sine data sets only, the closed-loop horizon on the forecasting one only, every
    # model trained on it with its steps 0..H
    assert set(evaluation[evaluation.family == "shift"].dataset) == {"sine", "sine_forecast"}
    horizon = evaluation[evaluation.family == "horizon"]
    assert set(horizon.dataset) == {"sine_forecast"}
    forecast_runs = {r for r in expected_runs() if r[0] == "sine_forecast"}
    assert set(zip(horizon.dataset, horizon.model, horizon.hardware, horizon.seed)) == forecast_runs
    assert sorted(set(horizon.step)) == list(range(grid["horizon"]["steps"] + 1))
    clean = evaluation[evaluation.family == "clean"].set_index(["dataset", "model", "hardware", "seed"])["metric"]
    runs = pd.read_csv(smoke_run / "results/tables/runs.csv").set_index(["dataset", "model", "hardware", "seed"])
    assert clean.sort_index().to_numpy() == pytest.approx(runs.loc[clean.sort_index().index, "test_metric"].to_numpy(),
                                                          rel=1e-5)
    memory = pd.read_csv(smoke_run / "results/tables/memory.csv")
    assert (memory.activation_bytes_per_step > 0).all() and (memory.n_params > 0).all()
    claims = pd.read_csv(smoke_run / "results/tables/claims.csv").set_index("claim_id")
    for claim in ("noise_robust", "shift_robust", "horizon_cfc_gru", "fewer_params"):
        assert claims.loc[claim, "verdict"] in {"true", "false", "undecidable", "not significant at 95 %"}
    for stem in EVALUATION_FIGURES:
        assert (smoke_run / f"results/figures/{stem}.png").stat().st_size > 1000


def test_report_contains_every_table_and_figure(smoke_run):
    import base64
    import re

    from liquidbench.results import figure_stems
    from liquidbench.results.registry import EVALUATION_FIGURES

    snakemake(smoke_run, "--configfile", ".test/config/config.yaml", "--report", "results/report.html")
    html = (smoke_run / "results/report.html").read_text()
    embedded = dict(re.findall(r"data:[a-z/]+;charset=utf8;filename=([^;]+);base64,([A-Za-z0-9+/=]+)", html))
    tables = ["headline", "summary", "scaling", "ratios", "time_to_target", "claims", "provenance", "robustness",
              "memory", "robustness_claims"]
    files = [f"results/tables/{t}.csv" for t in ["runs"] + tables] + [f"results/tables/{t}.html" for t in tables]
    files += [f"results/figures/{stem}.png" for stem in EVALUATION_FIGURES]
    files += [f"results/figures/{stem}.png" for stem in figure_stems(STUDY["datasets"])]
    for path in files:
        name = path.rsplit("/", 1)[1]
        assert name in embedded, f"{name} missing from the report"
        assert base64.b64decode(embedded[name]) == (smoke_run / path).read_bytes(), name
    # captions are rendered with the study's values
    assert f"seeds {', '.join(map(str, STUDY['seeds']))}" in html


def test_smoke_ddp_cpu_2_runs_are_two_gloo_processes(smoke_run):
    runs = [json.loads(p.read_text()) for p in smoke_run.glob("results/runs/*/*/ddp-cpu-2/seed*/metrics.json")]
    assert len(runs) == len([r for r in expected_runs() if r[2] == "ddp-cpu-2"]) > 0
    for m in runs:
        assert (m["world_size"], m["backend"], m["scaling"], m["global_batch_size"]) == (2, "gloo", "strong", 16)
        assert m["comm_fraction"] is not None and m["telemetry"]["host"]["ranks"] == 2
    assert not list(smoke_run.glob("results/runs/**/checkpoint.pt"))
    assert len(list(smoke_run.glob("results/runs/*/*/*/seed*/telemetry.csv"))) == len(expected_runs())


def test_smoke_real_data_sets_come_through_the_mirror(smoke_run):
    """Traffic and inertial HAR are the real files (from ../shared/data), features561 HAR the
    test-built archive; all verified (HAR inertial member by member against its manifest)."""
    logs = {p.name: p.read_text() for p in (smoke_run / "logs/download").iterdir()}
    traffic_sha = SMOKE["datasets"]["traffic"]["source"]["sha256"]
    har_sha = SMOKE["datasets"]["har"]["source"]["sha256"]
    assert f"from mirror {REPO.parent / 'shared'}" in logs["Metro_Interstate_Traffic_Volume.csv.gz.log"]
    assert f"sha256 of decompressed {traffic_sha}" in logs["Metro_Interstate_Traffic_Volume.csv.gz.log"]
    assert f"from mirror data/smoke-mirror/UCI_HAR_synthetic.zip (sha256 of file {har_sha})" in logs["UCI_HAR_synthetic.zip.log"]
    shared_har = REPO.parent / "shared" / "data" / "uci_har" / "UCI_HAR_Dataset_inertial.zip"
    assert (f"archive {shared_har} (mirror): 26 members verified against manifest config/sources/uci_har.sha256 "
            "into data/raw/UCI HAR Dataset") in logs["UCI HAR Dataset.log"]
    assert "WARNING" not in logs["UCI HAR Dataset.log"]
    traffic = json.loads((smoke_run / "data/processed/traffic/meta.json").read_text())
    params = SMOKE["datasets"]["traffic"]["params"]
    assert traffic["n_sequences"] == len(range(0, 48204 - params["seq_len"], params["stride"]))
    har = json.loads((smoke_run / "data/processed/har/meta.json").read_text())
    assert har["task"] == "classification_per_step" and har["n_outputs"] == 6 and har["n_features"] == 561
    inertial = json.loads((smoke_run / "data/processed/har_inertial/meta.json").read_text())
    assert inertial["task"] == "classification_per_sequence" and inertial["n_features"] == 9 and inertial["seq_len"] == 16
    # the real windows of subjects 1, 3 (training), 5 (validation) and 2 (test)
    assert inertial["subjects"] == {"train": [1, 3], "val": [5], "test": [2]}
    assert [inertial["shapes"][s]["y"] for s in ("train", "val", "test")] == [[347 + 341], [302], [302]]
    runs = pd.read_csv(smoke_run / "results/tables/runs.csv")
    assert set(runs[runs.dataset == "traffic"].metric_name) == {"mse"}
    for dataset in ("har", "har_inertial"):
        accuracy = runs[runs.dataset == dataset]
        assert set(accuracy.metric_name) == {"accuracy"} and accuracy.test_metric.between(0, 1).all()
        assert set(accuracy.model) == {"ltc", "cfc"}


def test_changing_the_data_mirror_reruns_nothing(smoke_run):
    proc = snakemake(smoke_run, "-n", "--configfile", ".test/config/config.yaml", "--config", "data_mirror=[/elsewhere]")
    assert planned_jobs(proc.stdout) == []


def test_no_shell_runs_what_a_path_holds(smoke_run):
    """The smoke study ran in a folder whose name holds a space, quotes and two command substitutions
    (conftest.HOSTILE_NAME), given as its `root`: every job ran and none ran the name."""
    from conftest import HOSTILE_NAME

    assert smoke_run.name == HOSTILE_NAME
    assert yaml.safe_load((smoke_run / ".test/config/config.yaml").read_text())["root"] == str(smoke_run)
    assert len(list(smoke_run.glob("results/runs/*/*/*/seed*/metrics.json"))) == len(expected_runs())
    assert not list(smoke_run.parent.rglob("PWNED")) and not (REPO / "PWNED").exists()


def test_a_changed_setting_is_noticed_without_snakemakes_records(smoke_run, tmp_path):
    """Finished results without .snakemake/ (a fresh checkout pointed at them): a changed model
    setting trains that model's runs again, saying why, where Snakemake alone planned nothing; the
    unchanged study plans nothing; a setting tried and given up leaves nothing to retrain."""
    import os
    import shutil

    copy = tmp_path / "copy"  # hard links: the dry runs below write no file of the smoke run's
    shutil.copytree(smoke_run, copy, ignore=shutil.ignore_patterns(".snakemake"), symlinks=True, copy_function=os.link)
    study = copy / ".test/config/config.yaml"
    text = study.read_text().replace(json.dumps(str(smoke_run)), json.dumps(str(copy)))
    study.unlink()  # a file of its own, not the smoke run's study file
    study.write_text(text)
    plan = ["-n", "--configfile", ".test/config/config.yaml"]
    assert planned_jobs(snakemake(copy, *plan).stdout) == []
    units = SMOKE["models"]["cfc"]["units"] + 1
    proc = snakemake(copy, *plan, "--config", f"models={{cfc: {{units: {units}}}}}")
    train = [wc for rule, wc in planned_jobs(proc.stdout) if rule == "train"]
    assert {wc["model"] for wc in train} == {"cfc"}
    assert len(train) == len([r for r in expected_runs() if r[1] == "cfc"])
    assert f"model.units: {units - 1} recorded, {units} in the study" in proc.stdout + proc.stderr
    marker = copy / "results/runs/sine/cfc/cpu/seed0/.stale"
    assert "model.units" in marker.read_text()
    assert planned_jobs(snakemake(copy, *plan).stdout) == []  # given up: the marker goes
    assert not marker.exists()
    # a changed search space: the tuning trials record other settings, and are trained again
    space = json.dumps({"gru": {**SMOKE["tuning"]["space"]["gru"], "lr": {"low": 0.001, "high": 0.03, "log": True}}})
    jobs = planned_jobs(snakemake(copy, *plan, "--config", f"tuning={{space: {space}}}").stdout)
    trials = [wc for rule, wc in jobs if rule == "tune_trial"]
    workloads = {(d, h) for d, m, h, _ in expected_runs() if m == "gru"}
    assert len(trials) == len(workloads) * SMOKE["tuning"]["trials"] and {wc["model"] for wc in trials} == {"gru"}
    assert {wc["model"] for rule, wc in jobs if rule == "train"} == {"gru"}


def test_smoke_tuning_stage(smoke_run):
    """The smoke study tunes GRU at a tiny budget: every trial a training job scored on validation,
    one selection per data set x hardware, and the study's GRU runs trained at the selected setting."""
    tuning = SMOKE["tuning"]
    workloads = sorted({(d, h) for d, m, h, _ in expected_runs() if m == "gru"})
    trials = pd.read_csv(smoke_run / "results/tables/trials.csv")
    assert len(trials) == len(workloads) * tuning["trials"] and set(trials["model"]) == {"gru"}
    tuned = pd.read_csv(smoke_run / "results/tables/tuned.csv").set_index(["dataset", "hardware"])
    assert sorted(tuned.index) == workloads
    for dataset, hardware in workloads:
        selection = json.loads((smoke_run / f"results/tuning/{dataset}/gru/{hardware}/selected.json").read_text())
        assert selection["status"] == "selected"
        chosen = trials[(trials.dataset == dataset) & trials.selected]
        assert chosen["best_val_metric"].iloc[0] == trials[trials.dataset == dataset]["best_val_metric"].min()
        for seed in STUDY["seeds"]:
            run = json.loads((smoke_run / f"results/runs/{dataset}/gru/{hardware}/seed{seed}/metrics.json").read_text())
            assert run["tuned"]["trial"] == selection["trial"] and run["status"] == "ok"
            assert run["model_params"]["hidden_size"] == selection["point"]["hidden_size"]
            assert run["train_params"]["lr"] == selection["point"]["lr"]
            assert run["train_params"]["epochs"] == SMOKE["training"]["epochs"]  # the full budget, not the trials'
        trial = json.loads((smoke_run / f"results/tuning/{dataset}/gru/{hardware}/trial0/metrics.json").read_text())
        assert trial["train_params"]["epochs"] == tuning["epochs"]
    assert "hidden_size=" in (smoke_run / "results/tables/tuned.md").read_text()
    assert (smoke_run / "results/figures/tuning_search.png").stat().st_size > 1000


def test_changing_the_search_space_reruns_the_tuning_and_the_tuned_runs_only(smoke_run):
    """A changed search space plans its model's trials, selections and runs, and results; nothing
    of another model."""
    space = json.dumps({"gru": {**SMOKE["tuning"]["space"]["gru"], "lr": {"low": 0.001, "high": 0.03, "log": True}}})
    proc = snakemake(smoke_run, "-n", "--configfile", ".test/config/config.yaml", "--config", f"tuning={{space: {space}}}")
    jobs = planned_jobs(proc.stdout)
    trained = {(rule, wc["model"]) for rule, wc in jobs if rule in ("train", "tune_trial", "select_trials")}
    assert {model for _, model in trained} == {"gru"}
    assert {rule for rule, _ in trained} == {"train", "tune_trial", "select_trials"}
    n_gru = len([r for r in expected_runs() if r[1] == "gru"])
    assert len([1 for rule, _ in jobs if rule == "train"]) == n_gru
    assert {rule for rule, _ in jobs} - {"train", "tune_trial", "select_trials"} <= RESULT_RULES


def test_smoke_scaling_model(smoke_run):
    """The smoke study probes the sine models with DDP runs (cfc, lstm) and ddp-cpu-2's all-reduce,
    fits them and predicts to 64 processes beside the measured two-process speedup."""
    probes = pd.read_csv(smoke_run / "results/tables/probes.csv")
    step = probes[probes["kind"] == "step"]
    assert set(zip(step["dataset"], step["model"], step["device"])) == {("sine", "cfc", "cpu"), ("sine", "lstm", "cpu")}
    assert sorted(set(step["x"])) == SMOKE["scaling_model"]["batches"]
    allreduce = probes[probes["kind"] == "allreduce"]
    assert set(allreduce["hardware"]) == {"ddp-cpu-2"} and set(allreduce["world"]) == {2}
    assert sorted(set(allreduce["x"])) == SMOKE["scaling_model"]["sizes"]
    assert (probes["median_s"] > 0).all()
    table = pd.read_csv(smoke_run / "results/tables/scaling_model.csv")
    for model in ("cfc", "lstm"):
        rows = table[(table["dataset"] == "sine") & (table["model"] == model)]
        assert rows["fit_ok"].all() and sorted(rows["width"]) == list(range(1, 65))
        two = rows[rows["width"] == 2].iloc[0]
        assert two["speedup_low"] <= two["speedup"] <= two["speedup_high"] and two["measured_speedup"] > 0
        assert two["rel_error"] == pytest.approx((two["speedup"] - two["measured_speedup"]) / two["measured_speedup"])
        assert rows["knee_width"].notna().all() and isinstance(rows["knee_dominant"].iloc[0], str)
    assert (smoke_run / "results/figures/scaling_model.png").stat().st_size > 1000


def test_changing_the_probe_grid_reruns_only_the_probes_and_the_model(smoke_run):
    """A changed step-probe grid plans the step probes and what follows them; a grid above a probed
    model's batch is refused before any job, naming the data set and model."""
    grid = "scaling_model={batches: [1, 2, 4, 8]}"
    jobs = planned_jobs(snakemake(smoke_run, "-n", "--configfile", ".test/config/config.yaml", "--config", grid).stdout)
    rules = {rule for rule, _ in jobs}
    assert {"probe_step", "collect_probes", "scaling_model", "plot_scaling_model"} <= rules
    # the claims name each group's knee beside "The best gain is at 2 GPUs", and the headline shows the claims
    assert rules <= {"probe_step", "collect_probes", "scaling_model", "plot_scaling_model", "claims", "headline", "all"}
    proc = snakemake(smoke_run, "-n", "--configfile", ".test/config/config.yaml", "--config",
                     "scaling_model={batches: [1, 2, 64]}", check=False)
    assert proc.returncode != 0
    assert ("scaling_model.batches: 64 is above the batch size 16 of data set 'sine', model 'cfc'"
            in proc.stdout + proc.stderr)

