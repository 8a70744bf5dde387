"""The runs of a study: the product of its selections less study.exclude."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import snakemake, tool_env
from liquidbench.study import study_runs

STUDY = {"datasets": ["sine", "har"], "models": ["ltc", "cfc", "lstm"], "hardware": ["cpu", "ddp-cpu-2"],
         "seeds": [0, 1]}


def test_without_exclude_every_combination_in_study_order():
    runs = study_runs(STUDY)
    assert len(runs) == 2 * 3 * 2 * 2
    assert runs[:3] == [("sine", "ltc", "cpu", 0), ("sine", "ltc", "cpu", 1), ("sine", "ltc", "ddp-cpu-2", 0)]
    assert runs[-1] == ("har", "lstm", "ddp-cpu-2", 1)


def test_an_entry_removes_the_runs_that_match_every_key_it_names():
    runs = study_runs({**STUDY, "exclude": [{"dataset": "har", "hardware": "ddp-cpu-2"}]})
    assert len(runs) == 24 - 3 * 2
    assert ("har", "ltc", "ddp-cpu-2", 0) not in runs
    assert ("har", "ltc", "cpu", 0) in runs and ("sine", "ltc", "ddp-cpu-2", 0) in runs


def test_lists_seeds_and_several_entries():
    exclude = [{"model": ["ltc", "lstm"], "hardware": "ddp-cpu-2"}, {"dataset": "har", "seed": 1}]
    runs = study_runs({**STUDY, "exclude": exclude})
    assert not [r for r in runs if r[1] in ("ltc", "lstm") and r[2] == "ddp-cpu-2"]
    assert not [r for r in runs if r[0] == "har" and r[3] == 1]
    # 24 runs; entry 1 removes 2 x 2 x 2 = 8; entry 2 removes har seed 1 (6), 2 of them already gone
    assert len(runs) == 24 - 8 - 4


def test_an_entry_may_remove_everything_of_one_kind():
    runs = study_runs({**STUDY, "exclude": [{"seed": 1}]})
    assert {r[3] for r in runs} == {0} and len(runs) == 12


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"seed": [1, -1]}, "config key 'study.exclude[0].seed': expected a seed or a list of seeds (integers >= 0)"),
        ({"models": "ltc"}, "config key 'study.exclude[0].models': unknown key, expected one of dataset, model, hardware, seed"),
        ({}, "config key 'study.exclude[0]': expected a mapping with one or more of dataset, model, hardware, seed"),
    ],
)
def test_bad_entries_are_named(entry, message):
    with pytest.raises(ValueError) as err:
        study_runs({**STUDY, "exclude": [entry]})
    assert str(err.value) == message


def test_defined_names_that_the_study_does_not_select_are_accepted():
    """Narrowing a study (--config 'study={datasets: [sine]}') keeps its exclusions valid."""
    defined = {"datasets": ["sine", "har", "traffic"], "models": ["ltc", "cfc", "lstm", "gru"], "hardware": ["cpu"]}
    narrow = {**STUDY, "hardware": ["cpu"], "exclude": [{"dataset": "traffic"}, {"model": "ltc", "dataset": "har"}]}
    runs = study_runs(narrow, defined)
    assert len(runs) == 2 * 3 * 1 * 2 - 2
    with pytest.raises(ValueError) as err:
        study_runs({**narrow, "exclude": [{"hardware": "gpu"}]}, defined)
    assert str(err.value) == "config key 'study.exclude[0].hardware' names 'gpu', which is not defined under 'hardware' (cpu)"
    # without the config's names (liquidbench aggregate --expected) only the structure is checked
    assert study_runs(narrow) == runs


@pytest.mark.slow
def test_workflow_plans_without_the_excluded_runs_and_names_a_typo(workflow_copy):
    from conftest import planned_jobs

    exclude = "study={exclude: [{hardware: [gpu, ddp-1gpu, ddp-2gpu, ddp-4gpu, ddp-8gpu]}, {model: ltc, seed: [1, 2, 3, 4]}]}"
    proc = snakemake(workflow_copy, "-n", "--config", exclude)
    train = [wc for rule, wc in planned_jobs(proc.stdout) if rule == "train"]
    assert {wc["hardware"] for wc in train} == {"cpu", "ddp-2gpu-strong", "ddp-4gpu-strong", "ddp-8gpu-strong", "ddp-cpu-2"}
    assert {wc["seed"] for wc in train if wc["model"] == "ltc"} == {"0"}
    # the exclude given here replaces the study's own (sine_forecast's DDP runs come back):
    # 6 data sets x 5 hardware entries x (5 models x 5 seeds + ltc x 1 seed)
    assert len(train) == 6 * 5 * (5 * 5 + 1)

    bad = snakemake(workflow_copy, "-n", "--config", "study={exclude: [{model: lct}]}", check=False)
    assert bad.returncode != 0
    assert ("config key 'study.exclude[0].model' names 'lct', which is not defined under 'models' (ltc, cfc, ltc_fast, cfc_fast, lstm, gru)"
            in bad.stdout + bad.stderr)
    # narrowing a study keeps its exclusions valid
    narrow = snakemake(workflow_copy, "-n", "--configfile", ".test/config/config.yaml", "--config", "study={datasets: [sine]}")
    assert {wc["dataset"] for rule, wc in planned_jobs(narrow.stdout) if rule == "train"} == {"sine"}


def test_aggregate_counts_only_the_runs_a_narrowed_study_expects(tmp_path):
    """The workflow hands aggregate the study with its exclude; names of data sets the narrowed
    study no longer selects must not fail it, and excluded runs are not missing."""
    study = {"datasets": ["sine"], "models": ["ltc", "cfc"], "hardware": ["cpu", "ddp-cpu-2"], "seeds": [0],
             "exclude": [{"dataset": "traffic", "hardware": "ddp-cpu-2"}, {"model": "ltc", "hardware": "ddp-cpu-2"}]}
    out = tmp_path / "runs.csv"
    proc = subprocess.run([sys.executable, "-m", "liquidbench.cli", "aggregate", "--expected", json.dumps(study),
                           "--out-runs", str(out), "--out-history", str(tmp_path / "history.csv")],
                          capture_output=True, text=True, env=tool_env())
    assert proc.returncode == 0, proc.stderr
    runs = pd.read_csv(out)
    assert sorted(zip(runs.model, runs.hardware)) == [("cfc", "cpu"), ("cfc", "ddp-cpu-2"), ("ltc", "cpu")]
    assert set(runs.status) == {"missing"}


# a study file whose sections also define entries named '..' (a study file given to `liquidbench
# train --config` is not checked against the schema): only what the study selects may be run
DOTTED = {
    "study": {"datasets": ["sine"], "models": ["g"], "hardware": ["cpu"], "seeds": [3]},
    "training": {"epochs": 1},
    "datasets": {"sine": {"kind": "sine"}, "..": {"kind": "sine"}},
    "models": {"g": {"type": "gru"}, "..": {"type": "gru"}},
    "hardware": {"cpu": {"device": "cpu"}, "..": {"device": "cpu"}},
}


@pytest.mark.parametrize("run, message", [
    ("../../../3", "--run '../../../3': '..' is not one of the datasets the study selects (study.datasets: sine); "
                   "expected one of those"),
    ("sine/../cpu/3", "--run 'sine/../cpu/3': '..' is not one of the models the study selects (study.models: g)"),
    ("sine/g/../seed3", "--run 'sine/g/../seed3': '..' is not one of the hardware the study selects (study.hardware: cpu)"),
    ("sine/g/cpu/0", "--run 'sine/g/cpu/0': seed 0 is not one of the study's seeds (study.seeds: 3); expected one of those"),
])
def test_a_run_must_be_one_the_study_selects(run, message):
    from liquidbench.study import run_of

    with pytest.raises(ValueError) as err:
        run_of(DOTTED, run)
    assert str(err.value).startswith(message)
    assert run_of(DOTTED, "sine/g/cpu/seed3")["seed"] == 3


def test_train_config_refuses_a_run_outside_the_study_and_writes_nothing(tmp_path, monkeypatch):
    """`liquidbench train --config FILE --run ../../../0` would write its run above the study's root."""
    import argparse

    import yaml

    from liquidbench.cli import _run_from_config

    (tmp_path / "study.yaml").write_text(yaml.safe_dump({**DOTTED, "study": {**DOTTED["study"], "seeds": [0]}}))
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(config="study.yaml", run="../../../0", data=None, out=None, **dict.fromkeys(
        ("dataset", "model", "hardware", "seed", "model_params", "train_params", "hardware_params")))
    with pytest.raises(ValueError, match=r"^--run '../../../0': '..' is not one of the datasets the study selects"):
        _run_from_config(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_compare_config_reads_the_study_file_as_the_workflow_does(tmp_path):
    from liquidbench.cli import _study_results

    (tmp_path / "study.yaml").write_text('root: "2020"\n')
    assert str(_study_results(tmp_path / "study.yaml")) == "2020/results"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    (tmp_path / "bomb.yaml").write_text(bomb)
    with pytest.raises(ValueError, match="^--config .*bomb.yaml: its YAML aliases"):
        _study_results(tmp_path / "bomb.yaml")


def test_the_workflow_starts_without_pandas_or_scipy():
    """Snakemake reads the workflow whenever it starts: every plan, every run, and every job under
    Slurm (a job runs Snakemake again on its node). What the workflow imports of liquidbench, and the
    study check (workflow/rules/config.smk; the probe plan's scaling groups among it), are plain
    Python: scipy.stats alone would add about 1 s to each start. (A study that tunes imports
    scipy.stats for its Sobol points, liquidbench.tune.space.)"""
    from conftest import REPO

    modules = sorted({m for path in [REPO / "workflow/Snakefile", *(REPO / "workflow/rules").glob("*.smk")]
                      for m in re.findall(r"^(?:from|import) (liquidbench[\w.]*)", path.read_text(), re.M)})
    assert "liquidbench.study" in modules and len(modules) > 10, modules
    code = f"""
import importlib, sys
for name in {modules!r}:
    importlib.import_module(name)
from liquidbench.study import checked_study
for study in ("config/config.yaml", "config/local.yaml"):
    checked_study([{str(REPO)!r} + "/" + study], {{}}, {str(REPO / "workflow/schemas/config.schema.yaml")!r})
print(sorted(m for m in ("pandas", "scipy", "torch", "matplotlib") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tool_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"
