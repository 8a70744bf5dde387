"""Reference folders (`liquidbench export-reference`) and `liquidbench compare`, on real small results
folders: runs' metrics.json and history.csv files turned into tables by the results stage's own
subcommands, exported, perturbed and compared; and the workflow's compare job (dry runs).

The committed reference (reference/paper) is checked here for integrity and budget, and compared
with itself; comparing it with a fresh smoke run is `test_committed_reference_against_the_smoke_run` in
tests/test_workflow.py, where the smoke run is.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, planned_jobs, snakemake
from liquidbench.cli import main
from liquidbench.envinfo import git_commit
from liquidbench.io import sha256_file
from liquidbench.results import reference as rf
from liquidbench.results.registry import SETTINGS, TABLES
from liquidbench.results.stats import t_quantile

T2 = t_quantile(0.975, 2)  # three seeds a side: 2 degrees of freedom
ENV = {"git_commit": "a" * 40, "liquidbench": "0.1.0", "python": "3.12.3", "torch": "2.5.1", "ncps": "1.0.1",
       "numpy": "2.1.0", "cpu_model": "Test CPU 3000", "hostname": "node1"}
# (dataset, model) -> (test metrics per seed, training times per seed); har measures accuracy
REFERENCE_RUNS = {
    ("sine", "ltc"): ([0.10, 0.11, 0.12], [10.0, 11.0, 12.0]),
    ("sine", "cfc"): ([0.20, 0.21, 0.22], [4.0, 4.4, 4.8]),
    ("sine", "lstm"): ([0.30], [2.0]),  # one seed: no verdict
    ("sine", "gru"): ([0.30, 0.31, 0.32], [3.0, 3.1, 3.2]),  # reference only
    ("har", "cfc"): ([0.80, 0.82, 0.84], [5.0, 5.5, 6.0]),
}
# the same study run again slower and worse (ltc, har cfc), better and faster (cfc), with other versions
CURRENT_RUNS = {
    ("sine", "ltc"): ([m * 1.5 for m in REFERENCE_RUNS["sine", "ltc"][0]], [t * 2 for t in REFERENCE_RUNS["sine", "ltc"][1]]),
    ("sine", "cfc"): ([m * 0.5 for m in REFERENCE_RUNS["sine", "cfc"][0]], [t * 0.5 for t in REFERENCE_RUNS["sine", "cfc"][1]]),
    ("sine", "lstm"): ([0.31], [2.1]),
    ("sine", "ltc_fast"): ([0.10, 0.11], [1.0, 1.1]),  # current only
    ("har", "cfc"): ([m * 0.8 for m in REFERENCE_RUNS["har", "cfc"][0]], REFERENCE_RUNS["har", "cfc"][1]),
}
CURRENT_ENV = {**ENV, "torch": "2.6.0", "cpu_model": "Other CPU 9000", "git_commit": "b" * 40}
# the settings the workflow passes to the table subcommands (config schema defaults)
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CLAIMS = {k: v["default"] for k, v in SCHEMA["properties"]["results"]["properties"]["claims"]["properties"].items()}


def write_run(results, dataset, model, seed, metric, time, env, status="ok", settings=None):
    """One run's files; ``settings``: metrics.json fields over the defaults (train_params, ...)."""
    folder = results / "runs" / dataset / model / "cpu" / f"seed{seed}"
    folder.mkdir(parents=True)
    metrics = dict(dataset=dataset, model=model, model_type=model.split("_")[0], hardware="cpu", seed=seed,
                   status=status, metric_name="accuracy" if dataset == "har" else "mse", test_metric=metric,
                   train_time_s=time, steady_epoch_time_s=time / 2, n_params=100, device="cpu", device_name=None,
                   world_size=1, threads=1, epochs=2, env=env, **(settings or {}))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.0, 0.6], "val_metric": [metric * 2, metric],
                  "epoch_time_s": [time / 2, time / 2]}).to_csv(folder / "history.csv", index=False)
    (folder / "train.log").write_text("a log an export leaves out\n")
    (folder / "weights.pt").write_bytes(b"weights an export leaves out")
    return folder / "metrics.json"


def make_results(root, runs=REFERENCE_RUNS, env=ENV, failed=(), settings=None):
    """A results folder as a finished study leaves it: runs, and every table the workflow writes
    for a study without `when` tables, each by its subcommand; ``failed`` (dataset, model, seed)
    runs have status failed; ``settings``: (dataset, model) -> its runs' recorded settings."""
    results = root / "results"
    settings = settings or {}
    files = [write_run(results, d, m, seed, metric, time, env, "failed" if (d, m, seed) in failed else "ok",
                       settings.get((d, m)))
             for (d, m), (metrics, times) in runs.items() for seed, (metric, time) in enumerate(zip(metrics, times))]
    tables = results / "tables"
    assert main(["aggregate", *map(str, files), "--out-runs", str(tables / "runs.csv"),
                 "--out-history", str(tables / "history.csv")]) == 0
    settings = {"hardware": {"cpu": {"device": "cpu"}}, "threshold": 0.7, "baselines": {},
                "model_types": {m: m.split("_")[0] for _, m in runs}, "targets": {}, "settings": CLAIMS}
    pending = [name for name, table in TABLES.items() if not table.when]
    while pending:  # each table once its inputs exist
        name = next(n for n in pending if all((tables / f"{i}.csv").exists() for i in TABLES[n].inputs))
        table = TABLES[name]
        args = [table.command, *(a for i in table.inputs for a in (f"--{i}", str(tables / f"{i}.csv")))]
        for key in table.settings:
            value = settings[key]
            args += [SETTINGS[key].flag, json.dumps(value) if SETTINGS[key].json else str(value)]
        args += [f"--out-{ext}={tables / f'{name}.{ext}'}" for ext in ("csv", "md", "tex", "html")]
        assert main(args) == 0, name
        pending.remove(name)
    (results / "figures").mkdir()
    (results / "figures/train_time.png").write_bytes(b"\x89PNG a figure")
    return results


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The reference study's results, their export, and the perturbed second study's results."""
    root = tmp_path_factory.mktemp("reference")
    results = make_results(root / "first")
    assert main(["export-reference", str(results), str(root / "reference/first"), "--command",
                 "snakemake --cores 2 --configfile config/first.yaml"]) == 0
    current = make_results(root / "second", CURRENT_RUNS, CURRENT_ENV)
    return results, root / "reference/first", current


def check_comparison(reference, results, out) -> pd.DataFrame:
    """`liquidbench compare REFERENCE RESULTS` into ``out``: every data set x model x hardware entry of
    either side listed once, each verdict one the rule knows; the table (compare.csv)."""
    assert main(["compare", str(reference), str(results), *(f"--out-{e}={out / f'compare.{e}'}"
                                                             for e in ("csv", "md", "tex", "html"))]) == 0
    table = pd.read_csv(out / "compare.csv", keep_default_na=False, na_values=[""])
    keys = lambda folder: {tuple(r) for r in pd.read_csv(folder / "tables/summary.csv")[rf.KEY].to_numpy()}  # noqa: E731
    assert sorted(map(tuple, table[rf.KEY].to_numpy())) == sorted(keys(reference) | keys(results))
    assert set(table["metric_verdict"]) <= {rf.CONSISTENT, rf.BETTER, rf.WORSE, rf.UNDECIDABLE, rf.REFERENCE_ONLY,
                                            rf.CURRENT_ONLY, rf.NOT_COMPARABLE}
    assert set(table["time_verdict"]) <= {rf.FASTER, rf.SLOWER, rf.WITHIN_NOISE, rf.UNDECIDABLE, rf.REFERENCE_ONLY,
                                          rf.CURRENT_ONLY, rf.NOT_COMPARABLE}
    for ext in ("md", "tex", "html"):
        assert (out / f"compare.{ext}").stat().st_size > 0
    return table.set_index(rf.KEY)


def test_export_writes_a_self_describing_folder(study):
    results, reference, _ = study
    info = json.loads((reference / "reference.json").read_text())
    assert (info["format"], info["table_format"], info["name"]) == (rf.FORMAT, 1, "first")
    assert info["command"] == "snakemake --cores 2 --configfile config/first.yaml"
    assert info["commits"] == ["a" * 40] and info["versions"]["torch"] == ["2.5.1"]
    assert info["machines"]["cpu"] == {"device": ["cpu"], "device_name": [], "cpu_model": ["Test CPU 3000"],
                                       "threads": [1], "world_size": [1], "hosts": ["node1"]}
    assert info["study"] == {"datasets": ["har", "sine"], "models": ["cfc", "gru", "lstm", "ltc"],
                             "hardware": ["cpu"], "seeds": [0, 1, 2], "runs": 13}
    # every table in every format, every run's metrics and history, the figures; no logs, no weights
    for name in ("summary", "ratios", "time_to_target", "provenance", "claims", "headline"):
        for ext in ("csv", "md", "tex", "html"):
            assert (reference / f"tables/{name}.{ext}").read_bytes() == (results / f"tables/{name}.{ext}").read_bytes()
    kept = {p.relative_to(reference).as_posix() for p in (reference / "runs").rglob("*") if p.is_file()}
    assert kept == {f"runs/{d}/{m}/cpu/seed{s}/{f}" for (d, m), (ms, _) in REFERENCE_RUNS.items()
                    for s in range(len(ms)) for f in ("metrics.json", "history.csv")}
    assert (reference / "figures/train_time.png").read_bytes() == b"\x89PNG a figure"
    assert set(info["files"]) == {p.relative_to(reference).as_posix() for p in reference.rglob("*")
                                  if p.is_file() and p.name not in ("reference.json", "README.md")}
    assert info["files"]["tables/summary.csv"] == sha256_file(reference / "tables/summary.csv")
    assert info["exported"]["commit"] == git_commit()  # the code that made the tables
    readme = (reference / "README.md").read_text()
    for text in ("# Reference results: first", f"(commit {git_commit()})",
                 "`snakemake --cores 2 --configfile config/first.yaml`", "a" * 40, "torch 2.5.1",
                 "| cpu | cpu | not recorded | Test CPU 3000 | 1 | 1 | node1 |",
                 "liquidbench compare reference/first RESULTS", "| sine | ltc | cpu |"):
        assert text in readme, text
    assert not [p for p in reference.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def refusals():
    """(name, how to spoil a fresh results folder or its destination, the message's words)."""
    def no_tables(results, dest):
        for p in (results / "tables").iterdir():
            p.unlink()
        (results / "tables").rmdir()

    def no_ratios(results, dest):
        (results / "tables/ratios.csv").unlink()

    def dest_exists(results, dest):
        dest.mkdir(parents=True)
        (dest / "mine.txt").write_text("kept")

    def old_table(results, dest):
        path = results / "tables/summary.csv"
        pd.read_csv(path).drop(columns="table_format").to_csv(path, index=False)

    def lost_history(results, dest):
        (results / "runs/sine/ltc/cpu/seed1/history.csv").unlink()

    def link_to(path, target):
        """``path`` replaced by a symbolic link to ``target`` (a file outside the results folder is
        written first)."""
        if not target.exists():
            target.write_text("root:x:0:0:root:/root:/bin/bash\n")
        path.unlink()
        os.symlink(target, path)

    def linked_history(results, dest):
        link_to(results / "runs/sine/ltc/cpu/seed1/history.csv", results.parent / "passwd")

    def linked_table(results, dest):
        link_to(results / "tables/summary.md", results.parent / "passwd")

    def link_inside(results, dest):  # another run's file: inside RESULTS, refused all the same
        link_to(results / "runs/sine/ltc/cpu/seed1/history.csv", results / "runs/sine/ltc/cpu/seed0/history.csv")

    def linked_run_folder(results, dest):
        seed = results / "runs/sine/cfc/cpu/seed2"
        shutil.move(seed, results.parent / "elsewhere")
        os.symlink(results.parent / "elsewhere", seed)

    return [
        ("not a results folder", lambda r, d: None, "is not a results folder", "empty"),
        ("no tables", no_tables, "is not a results folder; expected the results/ folder of a finished study", None),
        ("a missing table", no_ratios, "lacks tables/ratios.csv; expected every table of a finished study", None),
        ("a failed run", lambda r, d: None, "1 run(s) not ok: sine/ltc/cpu/seed1 (failed)", "failed"),
        ("dest exists", dest_exists, "exists; expected a new folder", None),
        ("an old table", old_table, "no table_format column, expected table format 1", None),
        ("a lost history", lost_history, "runs/sine/ltc/cpu/seed1/history.csv is missing", None),
        ("a linked history", linked_history, "runs/sine/ltc/cpu/seed1/history.csv is a symbolic link (to ", None),
        ("a linked table", linked_table, "tables/summary.md is a symbolic link (to ", None),
        ("a link inside", link_inside, "runs/sine/ltc/cpu/seed1/history.csv is a symbolic link (to ", None),
        ("a linked run folder", linked_run_folder, "runs/sine/cfc/cpu/seed2 is a symbolic link (to ", None),
    ]


@pytest.mark.parametrize("name, spoil, message, kind", refusals(), ids=[r[0] for r in refusals()])
def test_export_refuses_bad_input_and_writes_nothing(tmp_path, caplog, name, spoil, message, kind):
    runs = {k: REFERENCE_RUNS[k] for k in (("sine", "ltc"), ("sine", "cfc"))}
    if kind == "empty":
        results = tmp_path / "results"
        results.mkdir()
    else:
        results = make_results(tmp_path, runs, failed={("sine", "ltc", 1)} if kind == "failed" else ())
    dest = tmp_path / "reference/new/first"
    spoil(results, dest)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    caplog.clear()
    assert main(["export-reference", str(results), str(dest)]) == 1
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0].getMessage() and "\n" not in errors[0].getMessage()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, nothing left


def test_compare_with_itself_is_consistent_and_within_noise(study, tmp_path):
    results, reference, _ = study
    table = check_comparison(reference, results, tmp_path)
    decided = table.drop(index=("sine", "lstm", "cpu"))  # one seed a side
    assert set(decided["side"]) == {"both"} and set(decided["metric_verdict"]) == {"consistent"}
    assert set(decided["time_verdict"]) == {"within noise"}
    assert table.loc[("sine", "lstm", "cpu"), ["metric_verdict", "time_verdict"]].tolist() == ["undecidable"] * 2
    assert np.allclose(decided["time_ratio"], 1.0) and np.allclose(decided["metric_difference"], 0.0, atol=1e-12)
    assert table["differs"].isna().all()
    md = (tmp_path / "compare.md").read_text()
    assert md.startswith("### Comparison with reference first\n\n- reference: ")
    assert "hardware cpu: same versions, commit, CPU and device on both sides" in md
    # RESULTS against itself, written where compare writes by default: RESULTS/tables/compare.*
    assert main(["compare", str(results), str(results)]) == 0
    assert set(pd.read_csv(results / "tables/compare.csv")["time_verdict"]) == {"within noise", "undecidable"}
    for ext in ("csv", "md", "tex", "html"):
        (results / f"tables/compare.{ext}").unlink()


def test_a_perturbed_study_is_worse_slower_better_faster_by_the_rule(study, tmp_path):
    _, reference, current = study
    table = check_comparison(reference, current, tmp_path)
    ltc = table.loc[("sine", "ltc", "cpu")]
    assert (ltc["metric_verdict"], ltc["time_verdict"]) == ("worse", "slower")
    ref, cur = np.array(REFERENCE_RUNS["sine", "ltc"][0]), np.array(CURRENT_RUNS["sine", "ltc"][0])
    half = T2 * math.sqrt(ref.var(ddof=1) / 3 + cur.var(ddof=1) / 3)  # Welch-type, min(n) - 1 d.f.
    assert ltc["metric_difference"] == pytest.approx(cur.mean() - ref.mean())
    assert (ltc["metric_difference_ci_low"], ltc["metric_difference_ci_high"]) == pytest.approx(
        (cur.mean() - ref.mean() - half, cur.mean() - ref.mean() + half))
    sd = np.log(REFERENCE_RUNS["sine", "ltc"][1]).std(ddof=1)  # the same spread on both sides
    assert ltc["time_ratio"] == pytest.approx(2.0)
    assert (ltc["time_ratio_ci_low"], ltc["time_ratio_ci_high"]) == pytest.approx(
        (2 * math.exp(-T2 * sd * math.sqrt(2 / 3)), 2 * math.exp(T2 * sd * math.sqrt(2 / 3))))
    assert ltc["metric_ratio"] == pytest.approx(1.5)
    cfc = table.loc[("sine", "cfc", "cpu")]
    assert (cfc["metric_verdict"], cfc["time_verdict"]) == ("better", "faster")
    har = table.loc[("har", "cfc", "cpu")]  # accuracy lower: worse; the same times: within noise
    assert (har["metric_name"], har["metric_verdict"], har["time_verdict"]) == ("accuracy", "worse", "within noise")
    assert har["metric_difference"] < 0
    lstm = table.loc[("sine", "lstm", "cpu")]
    assert (lstm["metric_verdict"], lstm["time_verdict"]) == ("undecidable", "undecidable")
    # the same rule with the seeds asked for: three seeds a side are too few for 4
    assert main(["compare", str(reference), str(current), "--min-seeds", "4", f"--out-csv={tmp_path / 'k4.csv'}"]) == 0
    k4 = pd.read_csv(tmp_path / "k4.csv").set_index(rf.KEY)
    assert set(k4.loc[k4["side"] == "both", "metric_verdict"]) == {"undecidable"}
    assert not (tmp_path / "k4.md").exists()


def test_rows_of_one_side_are_listed(study, tmp_path):
    _, reference, current = study
    table = check_comparison(reference, current, tmp_path)
    gru, fast = table.loc[("sine", "gru", "cpu")], table.loc[("sine", "ltc_fast", "cpu")]
    assert (gru["side"], gru["metric_verdict"], gru["time_verdict"]) == ("reference only",) * 3
    assert gru["reference_metric_mean"] == pytest.approx(0.31) and gru["current_metric_n"] == 0
    assert (fast["side"], fast["metric_verdict"], fast["time_verdict"]) == ("current only",) * 3
    assert fast["current_time_n"] == 2 and math.isnan(fast["reference_metric_mean"])
    rows = {line.split(" | ")[1]: line for line in (tmp_path / "compare.md").read_text().splitlines()
            if line.startswith("| sine | ")}
    assert "| — | — | — | reference only |" in rows["gru"] and "| current only |" in rows["ltc_fast"]
    assert "no rows" not in (tmp_path / "compare.html").read_text() and "ltc_fast" in (tmp_path / "compare.html").read_text()


def test_versions_commit_and_machine_differences_are_shown(study, tmp_path):
    _, reference, current = study
    table = check_comparison(reference, current, tmp_path)
    both = table[table["side"] == "both"]
    assert set(both["differs"]) == {"commit, torch, CPU"}
    row = both.iloc[0]
    assert (row["reference_torch"], row["current_torch"]) == ("2.5.1", "2.6.0")
    assert (row["reference_cpu"], row["current_cpu"]) == ("Test CPU 3000", "Other CPU 9000")
    md = (tmp_path / "compare.md").read_text()
    assert ("- hardware cpu: commit aaaaaaaaaaaa (reference) vs bbbbbbbbbbbb (current); torch 2.5.1 (reference) vs "
            "2.6.0 (current); CPU Test CPU 3000 (reference) vs Other CPU 9000 (current)") in md
    assert "made by `snakemake --cores 2 --configfile config/first.yaml`" in md
    assert "<li>hardware cpu: commit aaaaaaaaaaaa" in (tmp_path / "compare.html").read_text()
    assert r"\caption{Comparison with reference first}" in (tmp_path / "compare.tex").read_text()


# what a run of the paper study records of its settings (metrics.json): the data set as the run saw
# it and as it was prepared, the budget, the training settings and the model's
SPLITS = {split: {"x": split[0] * 64, "y": "f" * 64} for split in ("train", "val", "test")}  # sha256 per array
PAPER_SETTINGS = {
    "task": "regression_per_step", "samples_per_epoch": 9024, "global_batch_size": 16,
    "data_params": {"params": {"seq_len": 32, "stride": 4}, "sha256": SPLITS},
    "train_params": {"epochs": 200, "batch_size": 16, "eval_batch_size": 512, "lr": 0.01, "lr_decay": 1.0,
                     "grad_clip": 0, "weight_decay": 0, "drop_last": True, "optimizer_impl": "default"},
    "model_params": {"type": "ltc", "units": 32, "ode_unfolds": 6},
}
SETTINGS_RUNS = {  # three seeds a side everywhere: every comparable row is decided
    ("sine", "ltc"): ([0.10, 0.11, 0.12], [10.0, 11.0, 12.0]),
    ("sine", "cfc"): ([0.20, 0.21, 0.22], [4.0, 4.4, 4.8]),
    ("sine", "gru"): ([0.30, 0.31, 0.32], [3.0, 3.1, 3.2]),
    ("sine", "lstm"): ([0.30, 0.31, 0.32], [2.0, 2.1, 2.2]),
    ("har", "cfc"): ([0.80, 0.82, 0.84], [5.0, 5.5, 6.0]),
}


def settings(train=None, model=None, **fields):
    """PAPER_SETTINGS with training settings, model settings or fields changed (None: not recorded)."""
    out = {**PAPER_SETTINGS, **fields}
    for name, changes in (("train_params", train), ("model_params", model)):
        merged = {**PAPER_SETTINGS[name], **(changes or {})}
        out[name] = {k: v for k, v in merged.items() if v is not None}
    return out


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    """An exported reference and a study that reruns it: sine ltc at 2 epochs and 8 units, sine cfc on
    its data set cut into shorter windows (fewer training samples, other data), sine gru as recorded
    but for the evaluation's batch (and worse and slower), sine lstm whose reference runs did not
    record optimizer_impl, har cfc as recorded on data whose bytes differ."""
    root = tmp_path_factory.mktemp("experiments")
    recorded = {key: settings() for key in SETTINGS_RUNS}
    first = make_results(root / "first", SETTINGS_RUNS,
                         settings={**recorded, ("sine", "lstm"): settings(train={"optimizer_impl": None})})
    assert main(["export-reference", str(first), str(root / "reference/paperlike")]) == 0
    runs = {**SETTINGS_RUNS, ("sine", "gru"): ([m * 1.5 for m in SETTINGS_RUNS["sine", "gru"][0]],
                                               [t * 2 for t in SETTINGS_RUNS["sine", "gru"][1]])}
    current = make_results(root / "second", runs, settings={
        **recorded, ("sine", "ltc"): settings(train={"epochs": 2}, model={"units": 8}),
        ("sine", "cfc"): settings(samples_per_epoch=264, data_params={
            "params": {"seq_len": 16, "stride": 128}, "sha256": {**SPLITS, "train": {"x": "1" * 64, "y": "2" * 64}}}),
        ("sine", "gru"): settings(train={"eval_batch_size": 64}),
        ("sine", "lstm"): settings(train={"optimizer_impl": "fused"}),
        ("har", "cfc"): settings(data_params={"params": PAPER_SETTINGS["data_params"]["params"],
                                              "sha256": {**SPLITS, "test": {"x": "3" * 64, "y": "f" * 64}}})})
    return root / "reference/paperlike", current


def test_different_experiments_are_not_comparable_and_say_why(experiments, tmp_path):
    reference, current = experiments
    table = check_comparison(reference, current, tmp_path)
    why = table["settings_differ"].fillna("")
    verdicts = table[["metric_verdict", "time_verdict"]]
    assert why[("sine", "ltc", "cpu")] == "epochs 200 vs 2; units 32 vs 8"
    assert why[("sine", "cfc", "cpu")] == ("training samples per epoch 9024 vs 264; data seq_len 32 vs 16; "
                                          "data stride 4 vs 128")
    # a setting that joined later counts at the value runs had before (LATER_DEFAULTS): torch's default
    assert why[("sine", "lstm", "cpu")] == "optimizer_impl default vs fused"
    for model in ("ltc", "cfc", "lstm"):
        assert verdicts.loc[("sine", model, "cpu")].tolist() == [rf.NOT_COMPARABLE] * 2, model
    # the same experiment (the evaluation's batch changes nothing run or timed): the usual verdicts
    assert why[("sine", "gru", "cpu")] == why[("har", "cfc", "cpu")] == ""
    assert verdicts.loc[("sine", "gru", "cpu")].tolist() == [rf.WORSE, rf.SLOWER]
    assert verdicts.loc[("har", "cfc", "cpu")].tolist() == [rf.CONSISTENT, rf.WITHIN_NOISE]
    # the prepared data's bytes are named where they differ, and stop nothing by themselves
    differs = table["differs"].fillna("")
    assert differs[("har", "cfc", "cpu")] == differs[("sine", "cfc", "cpu")] == "prepared data"
    assert differs[("sine", "gru", "cpu")] == ""
    # the CSV keeps every statistic; the Markdown shows no difference or ratio, and says why
    assert table.loc[("sine", "ltc", "cpu"), "time_ratio"] == pytest.approx(1.0)
    md = (tmp_path / "compare.md").read_text()
    lines = md.splitlines()
    cells = lambda line: [c.strip() for c in line.strip("|").split("|")]  # noqa: E731
    header = cells(next(line for line in lines if line.startswith("| data set |")))
    row = dict(zip(header, cells(next(line for line in lines if line.startswith("| sine | ltc | cpu |")))))
    assert [row[c] for c in ("difference", "metric ratio", "time ratio")] == ["—"] * 3
    assert row["settings differ (reference vs current)"] == "epochs 200 vs 2; units 32 vs 8"
    assert row["reference"] == row["current"] != "—"
    assert "not comparable (both verdicts, no difference or ratio shown): the sides ran different experiments" in md
    assert "'not recorded' where a side's runs lack the setting" in md


def test_a_study_against_itself_has_no_setting_differences(experiments, tmp_path):
    reference, _ = experiments
    table = check_comparison(reference, reference, tmp_path)
    assert table["settings_differ"].isna().all()
    assert set(table["metric_verdict"]) == {rf.CONSISTENT} and set(table["time_verdict"]) == {rf.WITHIN_NOISE}


def spoil_reference(kind, reference):
    info = json.loads((reference / "reference.json").read_text()) if (reference / "reference.json").exists() else {}
    files = info.get("files", {})
    hashes = {"no files": None, "empty files": {}, "files a list": sorted(files),
              "unrecorded table": {k: v for k, v in files.items() if k != "tables/runs.csv"},
              "a bad hash": {**files, "tables/summary.csv": "edited"}}
    if kind in hashes:
        info = {k: v for k, v in info.items() if k != "files"}
        if hashes[kind] is not None:
            info["files"] = hashes[kind]
        (reference / "reference.json").write_text(json.dumps(info))
    elif kind == "reference format":
        (reference / "reference.json").write_text(json.dumps({**info, "format": 2}))
    elif kind == "table format":
        path = reference / "tables/summary.csv"
        pd.read_csv(path).assign(table_format=2).to_csv(path, index=False)
    elif kind == "no format":
        path = reference / "tables/provenance.csv"
        pd.read_csv(path).drop(columns="table_format").to_csv(path, index=False)
    elif kind == "edited table":
        path = reference / "tables/summary.csv"
        table = pd.read_csv(path)
        table.loc[0, "test_metric_mean"] *= 0.5
        table.to_csv(path, index=False)
    elif kind == "missing table":
        (reference / "tables/summary.csv").unlink()
    elif kind == "no tables":
        (reference / "reference.json").unlink()
        for p in (reference / "tables").iterdir():
            p.unlink()
        (reference / "tables").rmdir()


@pytest.mark.parametrize("kind, message", [
    ("reference format", "reference.json: format 2, expected 1"),
    ("table format", "tables/summary.csv: table format 2, expected 1"),
    ("no format", "tables/provenance.csv: no table_format column, expected table format 1"),
    ("edited table", "tables/summary.csv is not the file it was exported with (its sha256 differs from "
                     "reference.json's)"),
    ("missing table", "table tables/summary.csv is missing; expected the summary table of a finished study"),
    ("no tables", "not a results folder or a reference folder; expected tables/"),
    ("not a folder", "not a folder; expected a results folder"),
    ("no files", "reference.json: no 'files', so its files cannot be checked; expected 'files': a mapping of every "
                 "exported file (its path in the folder) to its sha256"),
    ("empty files", "reference.json: an empty 'files' mapping, so its files cannot be checked; expected 'files'"),
    ("files a list", "reference.json: 'files' that is a list, not a mapping, so its files cannot be checked"),
    ("unrecorded table", "reference.json records no sha256 of tables/runs.csv, so it cannot be checked"),
    ("a bad hash", "reference.json: 'files' gives 'tables/summary.csv' 'edited', not a sha256"),
])
def test_bad_input_is_refused_in_one_line_writing_nothing(study, tmp_path, caplog, kind, message):
    results, reference, _ = study
    spoiled = tmp_path / "ref"
    if kind != "not a folder":
        shutil.copytree(reference, spoiled)
    spoil_reference(kind, spoiled)
    out = tmp_path / "out"
    caplog.clear()
    assert main(["compare", str(spoiled), str(results), f"--out-csv={out / 'compare.csv'}",
                 f"--out-md={out / 'compare.md'}"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], errors
    assert not out.exists()


def test_a_whole_number_read_as_a_float_is_no_difference():
    """A runs table with a missing run reads threads as floats (1.0): provenance shows 1 all the same,
    so that compare finds no difference in threads with a side whose runs are all there."""
    from liquidbench.results.provenance import provenance

    gaps = pd.DataFrame({"hardware": ["cpu"] * 2, "seed": [0, 1], "status": ["ok", "missing"],
                         "threads": [1.0, float("nan")], "env.torch": ["2.5.1", None]})
    whole = pd.DataFrame({"hardware": ["cpu"], "seed": [0], "status": ["ok"], "threads": [1], "env.torch": ["2.5.1"]})
    assert provenance(gaps).iloc[0]["threads"] == provenance(whole).iloc[0]["threads"] == "1"


def test_default_min_seeds_is_the_workflows():
    from liquidbench.results.verdicts import MIN_SEEDS

    assert MIN_SEEDS == CLAIMS["min_seeds"]


def test_workflow_plans_the_compare_job_only_with_a_reference(study, tmp_path):
    _, reference, _ = study
    wf = copy_workflow(tmp_path / "wf")
    shutil.copytree(reference, wf / "reference/first")
    base = ["-n", "--printshellcmds", "--configfile", ".test/config/config.yaml"]
    without = snakemake(wf, *base)
    assert "compare" not in {rule for rule, _ in planned_jobs(without.stdout)}
    with_ref = snakemake(wf, *base, "--config", "results={reference: reference/first}")
    assert [rule for rule, _ in planned_jobs(with_ref.stdout)].count("compare") == 1
    assert ("liquidbench compare reference/first results --min-seeds 2 --out-csv results/tables/compare.csv"
            in with_ref.stdout)
    lint = snakemake(wf, "--lint", "--config", "results={reference: reference/first}", check=False)  # full study
    assert lint.returncode == 0, lint.stdout + lint.stderr
    missing = snakemake(wf, *base, "--config", "results={reference: reference/none}", check=False)
    assert missing.returncode != 0
    assert "config key 'results.reference': reference reference/none: not a folder" in missing.stdout + missing.stderr


# The project's committed reference (docs/paper.md): the paper study at the
# published budget; tests/test_workflow.py compares a fresh smoke run with it.
PAPER_REFERENCE = REPO / "reference/paper"


def test_the_committed_paper_reference_compared_with_itself(tmp_path):
    """Its runs record the same settings on both sides (traffic lstm's lack optimizer_impl on both):
    every row comparable, each verdict the rule's for identical samples."""
    table = check_comparison(PAPER_REFERENCE, PAPER_REFERENCE, tmp_path)
    assert table["settings_differ"].isna().all() and table["differs"].isna().all()
    one_seed = table["reference_metric_n"] < 2  # ltc_ncps: one seed, no verdict
    assert list(table.index[one_seed]) == [("traffic", "ltc_ncps", "cpu")]
    assert set(table.loc[~one_seed, "metric_verdict"]) == {rf.CONSISTENT}
    assert set(table.loc[~one_seed, "time_verdict"]) == {rf.WITHIN_NOISE}
    assert set(table.loc[one_seed, "metric_verdict"]) == {rf.UNDECIDABLE}


def test_the_committed_paper_reference_is_intact_and_at_the_published_budget():
    info = rf.read_info(PAPER_REFERENCE)
    on_disk = {p.relative_to(PAPER_REFERENCE).as_posix() for p in PAPER_REFERENCE.rglob("*") if p.is_file()}
    assert on_disk - set(info["files"]) == {"reference.json", "README.md"}
    changed = [rel for rel, sha in info["files"].items() if sha256_file(PAPER_REFERENCE / rel) != sha]
    assert not changed, f"edited after export: {changed}"
    assert (PAPER_REFERENCE / "README.md").read_text() == rf.readme(info, PAPER_REFERENCE)
    runs = [json.loads(p.read_text()) for p in sorted(PAPER_REFERENCE.glob("runs/*/*/*/seed*/metrics.json"))]
    assert len(runs) == info["study"]["runs"] and {r["status"] for r in runs} == {"ok"}
    # the published protocol: 200 epochs of batch 16, 32 units, LTC at lr 0.01 and the others at 0.001
    assert {(r["train_params"]["epochs"], r["train_params"]["batch_size"]) for r in runs} == {(200, 16)}
    assert {r["model"]: r["train_params"]["lr"] for r in runs} == {"ltc": 0.01, "ltc_ncps": 0.01, "lstm": 0.001,
                                                                   "cfc": 0.001, "gru": 0.001}
    summary = rf.read_table(PAPER_REFERENCE, "summary", "reference").set_index(rf.KEY)
    for model in ("ltc", "lstm", "cfc", "gru"):
        assert summary.loc[("traffic", model, "cpu"), "test_metric_n"] == 5, model
    published = pd.read_csv(PAPER_REFERENCE / "tables/published.csv").set_index(["dataset", "model"])
    assert published.loc[("traffic", "ltc"), "reproduced_n"] == 5
    assert published.loc[("har561", "ltc"), "verdict"] == "not run"
