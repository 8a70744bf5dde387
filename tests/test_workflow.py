"""The whole DAG end to end on the smoke study, incremental reruns, and the linter."""

import json

import pandas as pd
import pytest
import yaml

from conftest import REPO, planned_jobs, snakemake

pytestmark = pytest.mark.slow
SMOKE = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
STUDY = SMOKE["study"]


def expected_runs():
    return {(d, m, h, s) for d in STUDY["datasets"] for m in STUDY["models"]
            for h in STUDY["hardware"] for s in STUDY["seeds"]}


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


def test_complete_run_plans_nothing(smoke_run):
    proc = snakemake(smoke_run, "-n", "--configfile", "config/smoke.yaml")
    assert planned_jobs(proc.stdout) == []
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_model_reruns_only_its_jobs_and_the_results(smoke_run):
    model = "cfc"
    units = SMOKE["models"][model]["units"] + 1
    proc = snakemake(smoke_run, "-n", "--configfile", "config/smoke.yaml", "--config", f"models={{{model}: {{units: {units}}}}}")
    jobs = planned_jobs(proc.stdout)
    train = [wc for rule, wc in jobs if rule == "train"]
    assert len(train) == len([r for r in expected_runs() if r[1] == model])
    assert {wc["model"] for wc in train} == {model}
    other = {rule for rule, _ in jobs} - {"train"}
    results = {"aggregate", "summarize", "scaling", "ratios", "time_to_target", "claims", "provenance", "plot", "all"}
    assert other <= results and "aggregate" in other
    assert not any(rule.startswith("prepare") for rule, _ in jobs)


def test_full_study_dry_run_plans_every_job(workflow_copy):
    proc = snakemake(workflow_copy, "-n")
    full = yaml.safe_load((REPO / "config/config.yaml").read_text())["study"]
    train = [wc for rule, wc in planned_jobs(proc.stdout) if rule == "train"]
    n = len(full["datasets"]) * len(full["models"]) * len(full["hardware"]) * len(full["seeds"])
    assert len(train) == n
    assert {wc["hardware"] for wc in train} == set(full["hardware"])


def test_lint_reports_nothing(workflow_copy):
    proc = snakemake(workflow_copy, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_smoke_figures_are_images_of_the_expected_size(smoke_run):
    from PIL import Image

    from liquidbench.results.figures import figure_stems, size_px

    rows = {"train_time": len(STUDY["datasets"]), "test_metric": len(STUDY["datasets"]), "pareto": len(STUDY["datasets"])}
    for stem in figure_stems(STUDY["datasets"]):
        png = smoke_run / f"results/figures/{stem}.png"
        with Image.open(png) as img:
            assert img.size == size_px(rows.get(stem, 1)), stem
            colours = img.convert("L").getextrema()
            assert colours[0] < colours[1], f"{stem}.png is blank"
        assert (smoke_run / f"results/figures/{stem}.pdf").read_bytes().startswith(b"%PDF")


def test_smoke_tables_and_claims(smoke_run):
    for name in ["summary", "scaling", "ratios", "time_to_target", "claims", "provenance"]:
        assert (smoke_run / f"results/tables/{name}.md").read_text().startswith("### ")
        assert "\\begin{tabular}" in (smoke_run / f"results/tables/{name}.tex").read_text()
    claims = pd.read_csv(smoke_run / "results/tables/claims.csv").set_index("claim_id")
    # a CPU-only study cannot decide the DDP claims, and says so
    assert claims.loc["ddp_faster", "verdict"] == claims.loc["best_at_2", "verdict"] == "undecidable"
    assert claims.loc["cfc_faster", "verdict"] in {"true", "false"}
    ttt = pd.read_csv(smoke_run / "results/tables/time_to_target.csv")
    assert set(ttt.target) == {SMOKE["results"]["targets"]["sine"]}


def test_report_contains_every_table_and_figure(smoke_run):
    import base64
    import re

    from liquidbench.results.figures import figure_stems

    snakemake(smoke_run, "--configfile", "config/smoke.yaml", "--report", "results/report.html")
    html = (smoke_run / "results/report.html").read_text()
    embedded = dict(re.findall(r"data:[a-z/]+;charset=utf8;filename=([^;]+);base64,([A-Za-z0-9+/=]+)", html))
    files = [f"results/tables/{t}.csv" for t in ["runs", "summary", "scaling", "ratios", "time_to_target", "claims",
                                                "provenance"]]
    files += [f"results/figures/{stem}.png" for stem in figure_stems(STUDY["datasets"])]
    for path in files:
        name = path.rsplit("/", 1)[1]
        assert name in embedded, f"{name} missing from the report"
        assert base64.b64decode(embedded[name]) == (smoke_run / path).read_bytes(), name
    # captions are rendered with the study's values
    assert f"seeds {', '.join(map(str, STUDY['seeds']))}" in html
