"""Reruns redo every missing run: a run directory deleted after a complete study (by hand, or lost to
a scratch purge) is trained again by the study's own command, and only that run and what depends on
it. With results.allow_missing the same command aggregates what exists instead."""

import json
import shutil

import pandas as pd
import pytest

from conftest import NARROW, planned_jobs, snakemake
from liquidbench.results.registry import TABLES

pytestmark = pytest.mark.slow

# every rule after the runs: aggregation, one per table of the registry (summary's is summarize), the
# figures, the evaluation stage's and the scaling model's figure
RESULT_RULES = {"aggregate", "summarize", "plot", "all", "evaluate", "collect_evaluation",
                "plot_evaluation", "plot_scaling_model"} | set(TABLES) - {"summary"}


def run_dir(wd, seed):
    return wd / f"results/runs/sine/cfc/cpu/seed{seed}"


def runs_table(wd):
    return pd.read_csv(wd / "results/tables/runs.csv").set_index("seed")


def test_a_deleted_run_is_trained_again_and_nothing_else(narrow_copy):
    wd = narrow_copy  # the narrowed smoke study, complete
    # the narrowing holds: only the selected runs exist
    assert sorted(p.relative_to(wd / "results/runs").as_posix() for p in wd.glob("results/runs/*/*/*/seed*")) == [
        "sine/cfc/cpu/seed0", "sine/cfc/cpu/seed1"]
    kept = run_dir(wd, 1) / "metrics.json"
    kept_stat = kept.stat()
    old = json.loads((run_dir(wd, 0) / "metrics.json").read_text())
    shutil.rmtree(run_dir(wd, 0))

    # results.allow_missing: aggregate what exists, train nothing; the run shows as missing
    allow = NARROW[:-1] + [NARROW[-1], "results={allow_missing: true}"]
    plan = planned_jobs(snakemake(wd, "-n", *allow).stdout)
    assert not [wc for rule, wc in plan if rule == "train"] and "aggregate" in {rule for rule, _ in plan}
    snakemake(wd, "--cores", "2", *allow)
    runs = runs_table(wd)
    assert runs.loc[0, "status"] == "missing" and runs.loc[1, "status"] == "ok"
    assert not run_dir(wd, 0).exists()

    # the study's own command trains exactly the missing run, then redoes the results
    plan = planned_jobs(snakemake(wd, "-n", *NARROW).stdout)
    assert [wc for rule, wc in plan if rule == "train"] == [
        {"dataset": "sine", "model": "cfc", "hardware": "cpu", "seed": "0"}]
    assert {rule for rule, _ in plan} - {"train"} <= RESULT_RULES and "aggregate" in {rule for rule, _ in plan}
    assert not any(rule.startswith(("prepare", "download")) for rule, _ in plan)
    snakemake(wd, "--cores", "2", *NARROW)
    new = json.loads((run_dir(wd, 0) / "metrics.json").read_text())
    # same seed, same code: the retrained run reaches the same parameters; the tables show its new file
    assert new["final_params_sha256"] == old["final_params_sha256"]
    assert (run_dir(wd, 0) / "metrics.json").stat().st_mtime_ns > kept_stat.st_mtime_ns
    runs = runs_table(wd)
    assert (runs.status == "ok").all()
    assert runs.loc[0, "train_time_s"] == pytest.approx(new["train_time_s"], rel=0, abs=1e-12)
    # the other run was not touched, and nothing is left to do
    assert kept.stat().st_mtime_ns == kept_stat.st_mtime_ns
    assert planned_jobs(snakemake(wd, "-n", *NARROW).stdout) == []
