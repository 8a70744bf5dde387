"""Nothing wrong presented as right: aggregation validation, checkpoint and data hashes, atomic
data sets, output permissions, leftovers of killed jobs (docs/measurements-history.md, issue 26, lists the cases)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from liquidbench.cli import main


def write_run(root, dataset="sine", model="cfc", hw="cpu", seed=0, **fields):
    d = root / "runs" / dataset / model / hw / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    metrics = {**dict(dataset=dataset, model=model, hardware=hw, seed=seed, status="ok", metric_name="mse",
                      train_time_s=1.0 + seed, test_metric=0.1 + seed), **fields}
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d / "metrics.json"


def aggregate(tmp_path, files, caplog, seeds=(0, 1)):
    out = tmp_path / "tables"
    expected = {"datasets": ["sine"], "models": ["cfc"], "hardware": ["cpu"], "seeds": list(seeds)}
    code = main(["aggregate", *map(str, files), "--expected", json.dumps(expected),
                 "--out-runs", str(out / "runs.csv"), "--out-history", str(out / "history.csv")])
    return code, out, caplog.text


def test_valid_runs_aggregate(tmp_path, caplog):
    code, out, _ = aggregate(tmp_path, [write_run(tmp_path, seed=0), write_run(tmp_path, seed=1)], caplog)
    assert code == 0
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["status"]) == ["ok", "ok"] and list(runs["test_metric"]) == [0.1, 1.1]


def test_run_copied_into_another_seeds_folder_is_refused(tmp_path, caplog):
    first = write_run(tmp_path, seed=0)
    copy = tmp_path / "runs/sine/cfc/cpu/seed1/metrics.json"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(first.read_bytes())
    code, out, text = aggregate(tmp_path, [first, copy], caplog)
    assert code == 1 and not out.exists()
    assert f"run metrics {copy}: its fields name the run sine/cfc/cpu/seed0, but it lies in sine/cfc/cpu/seed1" in text


def test_same_run_given_twice_is_refused(tmp_path, caplog):
    first = write_run(tmp_path, seed=0)
    code, out, text = aggregate(tmp_path, [first, first], caplog)
    assert code == 1 and not out.exists()
    assert "the run sine/cfc/cpu/0 is also given by" in text and "expected each run once" in text


@pytest.mark.parametrize("content, message", [
    ({"status": None}, "field 'status': None is not one of ['ok', 'diverged', 'failed']"),
    ({"status": "fine"}, "field 'status': 'fine' is not one of ['ok', 'diverged', 'failed']"),
    ({"seed": "one"}, "field 'seed': 'one' is not of type 'integer'"),
    ({"test_metric": None}, "field 'test_metric': None is not of type 'number'"),
    ({"test_metric": float("nan")}, "field 'test_metric': a run with status ok has a finite test metric, got nan"),
    ({"train_time_s": "fast"}, "field 'train_time_s': 'fast' is not of type 'number'"),
])
def test_malformed_fields_are_named(tmp_path, caplog, content, message):
    bad = write_run(tmp_path, seed=1)
    bad.write_text(json.dumps({**json.loads(bad.read_text()), **content}))
    code, out, text = aggregate(tmp_path, [write_run(tmp_path, seed=0), bad], caplog)
    assert code == 1 and not out.exists()
    assert f"run metrics {bad}: {message}" in text


@pytest.mark.parametrize("drop, message", [
    ("status", "field 'status' is missing"),
    ("test_metric", "field 'test_metric' is missing (a run with status ok carries it)"),
    ("dataset", "field 'dataset' is missing"),
])
def test_missing_fields_are_named(tmp_path, caplog, drop, message):
    bad = write_run(tmp_path, seed=1)
    metrics = json.loads(bad.read_text())
    del metrics[drop]
    bad.write_text(json.dumps(metrics))
    code, out, text = aggregate(tmp_path, [write_run(tmp_path, seed=0), bad], caplog)
    assert code == 1 and not out.exists()
    assert f"run metrics {bad}: {message}" in text


@pytest.mark.parametrize("content", ["null", "[1, 2]", "{"])
def test_not_an_object_is_named(tmp_path, caplog, content):
    bad = write_run(tmp_path, seed=1)
    bad.write_text(content)
    code, out, text = aggregate(tmp_path, [write_run(tmp_path, seed=0), bad], caplog)
    assert code == 1 and not out.exists()
    assert f"run metrics {bad}" in text and "Traceback" not in text


def test_diverged_run_without_metric_counts_as_diverged(tmp_path, caplog):
    code, out, _ = aggregate(tmp_path, [write_run(tmp_path, seed=0),
                                        write_run(tmp_path, seed=1, status="diverged", test_metric=float("nan"))], caplog)
    assert code == 0
    assert list(pd.read_csv(out / "runs.csv")["status"]) == ["ok", "diverged"]


def test_unknown_extra_fields_pass_through(tmp_path, caplog):
    code, out, _ = aggregate(tmp_path, [write_run(tmp_path, seed=0, new_measure=3.5), write_run(tmp_path, seed=1)],
                             caplog)
    assert code == 0 and list(pd.read_csv(out / "runs.csv")["new_measure"].fillna(-1)) == [3.5, -1]


# --- checkpoints ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sine_dir(tmp_path_factory):
    from liquidbench.data.sine import prepare

    d = tmp_path_factory.mktemp("sine")
    prepare({"n_sequences": 40, "seq_len": 10, "seed": 0}, d)
    return d


def test_damaged_checkpoint_is_not_resumed_and_leftovers_go(sine_dir, tmp_path):
    from test_hardware import run, train_cmd

    ref = run(train_cmd(sine_dir, tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    assert run(train_cmd(sine_dir, out), signal_at="TERM@6").returncode == 143
    path = out / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x01  # one bit of the saved state
    path.write_bytes(bytes(data))
    leftover = out / ".checkpoint.pt.abc123.tmp"  # what a write killed by SIGKILL leaves
    leftover.write_bytes(b"")
    second = run(train_cmd(sine_dir, out))
    assert second.returncode == 0, second.stderr
    assert f"checkpoint {path} is damaged: its content has sha256" in second.stderr
    assert "not resuming from it, starting fresh" in second.stderr and "resuming from checkpoint" not in second.stderr
    a = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert b["segments"] == 1 and b["final_params_sha256"] == a["final_params_sha256"]
    assert not leftover.exists() and not path.exists()


def test_checkpoint_write_that_fails_names_the_file_and_leaves_nothing(tmp_path):
    """A full disk, made real by a file size limit (RLIMIT_FSIZE): the error names the checkpoint."""
    import subprocess
    import sys

    from conftest import tool_env

    code = ("import resource, signal, torch\n"
            "from liquidbench.train import checkpoint as ckpt\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            f"ckpt.save({str(tmp_path)!r}, {{'model': {{'w': torch.zeros(10000)}}}})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tool_env())
    assert proc.returncode != 0
    assert f"cannot write checkpoint {tmp_path / 'checkpoint.pt'}" in proc.stderr and "File too large" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --- prepared data sets -----------------------------------------------------------------------------

def _prepare_in_subprocess(out, params, fsize_limit=None):
    import subprocess
    import sys

    from conftest import tool_env

    limit = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize_limit}, {fsize_limit}))\n") if fsize_limit else ""
    code = limit + ("import sys\nfrom liquidbench.cli import main\n"
                    f"sys.exit(main(['prepare', '--dataset', 'sine', '--kind', 'sine', '--params', {json.dumps(json.dumps(params))}, "
                    f"'--out', {str(out)!r}]))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tool_env())


def test_failed_prepare_leaves_the_previous_data_set_whole(tmp_path):
    """A full disk (a file size limit) while the larger data set is written: the previous one stays."""
    from liquidbench.data import load_split, read_meta

    out = tmp_path / "processed" / "sine"
    assert _prepare_in_subprocess(out, {"n_sequences": 20, "seq_len": 10}).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = _prepare_in_subprocess(out, {"n_sequences": 400, "seq_len": 50}, fsize_limit=50_000)
    assert proc.returncode == 1 and "File too large" in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["sine"]  # no temporary folder left
    assert len(load_split(out, "train")["x"]) == read_meta(out)["shapes"]["train"]["x"][0]


def test_mixed_data_set_is_refused_by_training(tmp_path, sine_dir):
    import shutil

    from liquidbench.data import load_split
    from test_hardware import run, train_cmd

    other = tmp_path / "other"
    assert _prepare_in_subprocess(other, {"n_sequences": 40, "seq_len": 10, "seed": 1}).returncode == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(sine_dir, mixed)
    shutil.copy(other / "train.npz", mixed / "train.npz")  # a new train.npz beside the old meta.json
    with pytest.raises(ValueError, match=r"train.npz does not match meta.json \(array\(s\) x, y differ"):
        load_split(mixed, "train")
    proc = run(train_cmd(mixed, tmp_path / "run"))
    assert proc.returncode == 1
    assert f"data set {mixed}: train.npz does not match meta.json" in proc.stderr
    assert "prepare the data set again" in proc.stderr and not (tmp_path / "run" / "metrics.json").exists()


# --- permissions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                       (0o002, 0o664, 0o775)])
def test_outputs_get_the_permissions_of_the_umask(tmp_path, mask, file_mode, dir_mode):
    import os
    import stat

    from liquidbench.data.sine import prepare
    from liquidbench.io import write_json

    old = os.umask(mask)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        prepare({"n_sequences": 20, "seq_len": 5}, tmp_path / "sine")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == file_mode  # what open() gives
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "sine").stat().st_mode) == dir_mode
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "sine").iterdir()} == {file_mode}


# --- stale tables ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_failed_aggregation_leaves_no_current_looking_table(narrow_copy):
    from conftest import NARROW, snakemake

    from liquidbench.results.registry import EVALUATION_FIGURES, TUNING_FIGURES

    wd = narrow_copy  # the narrowed smoke study, complete
    products = sorted(p.relative_to(wd) for p in (wd / "results").glob("[tf]*/*.*"))
    assert {str(p) for p in products} >= {"results/tables/runs.csv", "results/tables/summary.csv",
                                          "results/tables/claims.md", "results/figures/loss_curves_sine.png"}
    bad = wd / "results/runs/sine/cfc/cpu/seed1/metrics.json"
    metrics = json.loads(bad.read_text())
    del metrics["status"]
    bad.write_text(json.dumps(metrics))
    proc = snakemake(wd, "--cores", "2", *NARROW, check=False)
    assert proc.returncode != 0
    log = (wd / "logs/results/aggregate.log").read_text()
    assert "run metrics results/runs/sine/cfc/cpu/seed1/metrics.json: field 'status' is missing" in log
    # what depends on the runs' table is gone; only the evaluation stage's own products, which do not
    # depend on aggregation (evaluation.json files -> evaluation tables and figures), may stay
    # and the tuning stage's (selections -> trials table -> tuning tables and figure), and the scaling
    # model's probes table (probe files -> probes table)
    independent = {"evaluation", "evaluation_runs", "robustness", "robustness_claims", *EVALUATION_FIGURES,
                   "trials", "tuning", "tuned", *TUNING_FIGURES, "probes"}
    left = [p for p in products if (wd / p).exists()]
    assert all(p.name.split(".")[0] in independent for p in left), left
    assert not any(p.name.split(".")[0] in ("runs", "summary", "claims", "memory", "headline", "loss_curves_sine")
                   for p in left)
    assert "that depend on a failed or missing step" in proc.stderr
    # mended, the same command makes every table and figure again
    bad.write_text(json.dumps({**metrics, "status": "ok"}))
    snakemake(wd, "--cores", "2", *NARROW)
    assert all((wd / p).exists() for p in products)


# --- archives and mirrors -------------------------------------------------------------------------

def _bomb_zip(path, extra=None):
    """A zip whose one member of 8 MiB of zeros compresses about a thousand times."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
        zf.writestr("UCI HAR Dataset/bomb.bin", bytes(8 * 2**20))
    return path


def test_zip_bomb_is_refused_and_nothing_is_written(tmp_path):
    from liquidbench.data.archive import ArchiveError, safe_extract

    archive = _bomb_zip(tmp_path / "a.zip")
    with pytest.raises(ArchiveError, match=r"member 'UCI HAR Dataset/bomb.bin' expands \d+ times \(\d+ to 8388608 "
                                           r"bytes\), more than the 100 allowed"):
        safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_member_over_the_size_limit_is_refused(tmp_path):
    from har_archive import write_zip
    from liquidbench.data.archive import ArchiveError, Limits, safe_extract

    archive = write_zip(tmp_path / "a.zip", {"top/big.txt": "x" * 5000})
    with pytest.raises(ArchiveError, match="member 'top/big.txt' has 5000 bytes, more than the 4096 a member may have"):
        safe_extract(archive, tmp_path / "out", limits=Limits(member_bytes=4096))
    assert not (tmp_path / "out").exists()


def test_only_the_members_a_protocol_reads_are_extracted(tmp_path):
    """A bomb beside the members the protocol needs is neither extracted nor refused: it is not read."""
    import zipfile

    from har_archive import har_files
    from liquidbench.data import har, read_meta
    from liquidbench.data.archive import safe_extract

    files = har_files(n_train=40, n_test=24)
    archive = _bomb_zip(tmp_path / "UCI HAR Dataset.zip", files)
    wanted = [f"UCI HAR Dataset/{m}" for m in har.NEEDS["inertial"]]
    root = safe_extract(archive, tmp_path / "x", wanted)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(wanted)
    assert zipfile.ZipFile(archive).getinfo("UCI HAR Dataset/bomb.bin").file_size == 8 * 2**20
    har.prepare({"protocol": "inertial"}, tmp_path / "out", raw=archive)
    assert read_meta(tmp_path / "out")["protocol"] == "inertial"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["UCI HAR Dataset.zip", "out", "x"]


def test_mirror_folder_with_a_symlink_is_refused(tmp_path):
    import os

    from har_archive import ROOT, har_files, sha256sums, write_folder
    from liquidbench.data.download import download
    from liquidbench.data.manifest import ManifestError

    files = har_files(n_train=40, n_test=24)
    manifest = tmp_path / "m.sha256"
    manifest.write_text(sha256sums(files))
    mirror = write_folder(tmp_path / "mirror", files)
    secret = tmp_path / "secret.txt"
    secret.write_text("owner only\n")
    secret.chmod(0o600)
    (mirror / ROOT / "README.txt").unlink()
    os.symlink(secret, mirror / ROOT / "README.txt")
    out = tmp_path / "raw" / ROOT
    with pytest.raises(ManifestError, match=rf"folder {mirror / ROOT} \(mirror\): 'README.txt' is a symbolic link "
                                            rf"\(to {secret}\); a mirror folder must hold the files themselves"):
        download("https://127.0.0.1:9/x.zip", out, None, mirrors=[mirror], manifest=manifest, retries=0)
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []


def test_mirror_copies_are_no_wider_than_the_mirrors_files(tmp_path):
    import os
    import stat

    from har_archive import ROOT, har_files, sha256sums, write_folder
    from liquidbench.data.download import download

    files = har_files(n_train=40, n_test=24)
    manifest = tmp_path / "m.sha256"
    manifest.write_text(sha256sums(files))
    mirror = write_folder(tmp_path / "mirror", files)
    (mirror / ROOT / "README.txt").chmod(0o600)
    old = os.umask(0o022)
    try:
        download("https://127.0.0.1:9/x.zip", tmp_path / "raw" / ROOT, None, mirrors=[mirror], manifest=manifest,
                 retries=0)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "raw" / ROOT).iterdir() if p.is_file()}
    assert modes["README.txt"] == 0o600 and modes["activity_labels.txt"] == 0o644


def test_undecompressable_mirror_file_is_named_not_its_temporary_copy(tmp_path):
    from liquidbench.data.download import ChecksumError, download

    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "f.csv.gz").write_text("not gzip")
    with pytest.raises(ChecksumError) as err:
        download("https://127.0.0.1:9/f.csv.gz", tmp_path / "raw" / "f.csv.gz", "0" * 64, sha256_of="decompressed",
                 mirrors=[tmp_path / "mirror"], retries=0)
    assert str(err.value).startswith(f"'f.csv.gz' from mirror {tmp_path / 'mirror' / 'f.csv.gz'}: cannot decompress")
    assert ".tmp" not in str(err.value) and list((tmp_path / "raw").iterdir()) == []


@pytest.mark.slow
def test_resumed_job_keeps_the_first_segments_log(workflow_copy):
    import os
    import subprocess
    import sys

    from conftest import tool_env

    wd = workflow_copy
    one = ["--configfile", ".test/config/config.yaml", "--config",
           "study={datasets: [sine], models: [cfc], hardware: [cpu], seeds: [0]}"]
    target = "results/runs/sine/cfc/cpu/seed0/metrics.json"
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", "1", *one]  # the target before --config
    first = subprocess.run(cmd, cwd=wd, env={**tool_env(), "LIQUIDBENCH_TEST_SIGNAL": "TERM@4"},
                           capture_output=True, text=True)
    assert first.returncode != 0
    log = wd / "results/runs/sine/cfc/cpu/seed0/train.log"
    assert "checkpoint written" in log.read_text()
    env = tool_env()
    env.pop("LIQUIDBENCH_TEST_SIGNAL", None)
    second = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    text = log.read_text()
    assert text.index("checkpoint written") < text.index("resuming from checkpoint") < text.index("done: status ok")
    assert not (wd / "results/runs/sine/cfc/cpu/seed0/checkpoint.pt").exists()
    assert json.loads((wd / target).read_text())["segments"] == 2
    assert not os.path.exists(wd / "results/runs/sine/cfc/cpu/seed0/.train.log.all")


# --- liquidbench train --config: messages, YAML floats, prepared data of another study ---------------

def _study_file(tmp_path, sine_dir, training, params=None):
    import shutil

    import yaml

    if sine_dir is not None and not (tmp_path / "data/processed/sine").exists():
        shutil.copytree(sine_dir, tmp_path / "data/processed/sine")
    study = {
        "study": {"datasets": ["sine"], "models": ["g"], "hardware": ["cpu"], "seeds": [0]},
        "training": training,
        "datasets": {"sine": {"kind": "sine", "params": params or {"n_sequences": 40, "seq_len": 10, "seed": 0}}},
        "models": {"g": {"type": "gru", "hidden_size": 6}},
        "hardware": {"cpu": {"device": "cpu", "threads": 1, "resources": {"mem_mb": 1000, "runtime": 5}}},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study).replace("lr: '1e-3'", "lr: 1e-3"))


def _train_config(tmp_path):
    import subprocess
    import sys

    from conftest import tool_env

    return subprocess.run([sys.executable, "-m", "liquidbench.cli", "train", "--config", "study.yaml", "--run",
                           "sine/g/cpu/0"], cwd=tmp_path, capture_output=True, text=True, env=tool_env())


@pytest.mark.parametrize("training, message", [
    ({"epochs": -1}, "training: epochs must be an integer >= 1, got -1"),
    ({"batch_size": 0}, "training: batch_size must be an integer >= 1, got 0"),
    ({"lr": "fast"}, "training: lr must be a number > 0, got 'fast' (a quoted number is a string: write it without quotes)"),
    ({"drop_last": "yes please"}, "training: drop_last must be true or false, got 'yes please'"),
])
def test_cli_train_bad_values_are_named(tmp_path, sine_dir, training, message):
    _study_file(tmp_path, sine_dir, training)
    proc = _train_config(tmp_path)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "results/runs/sine/g/cpu/seed0/metrics.json").exists()


def test_cli_train_takes_1e_minus_3_and_refuses_data_of_other_parameters(tmp_path, sine_dir):
    _study_file(tmp_path, sine_dir, {"epochs": 1, "batch_size": 8, "lr": "1e-3"})
    assert "lr: 1e-3" in (tmp_path / "study.yaml").read_text()
    proc = _train_config(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "results/runs/sine/g/cpu/seed0/metrics.json").read_text())["train_params"]["lr"] == 0.001
    # the study file now asks for longer sequences than data/processed/sine holds
    _study_file(tmp_path, None, {"epochs": 1}, params={"n_sequences": 40, "seq_len": 20, "seed": 0})
    proc = _train_config(tmp_path)
    assert proc.returncode == 1
    assert ("data set 'sine': the prepared data in data/processed/sine were made with other parameters "
            "(seq_len: 20 in study.yaml, 10 in data/processed/sine/meta.json)") in proc.stderr


def test_cli_train_without_prepared_data_says_how_to_prepare(tmp_path):
    _study_file(tmp_path, None, {"epochs": 1})
    proc = _train_config(tmp_path)
    assert proc.returncode == 1
    assert "data set 'sine': data/processed/sine holds no prepared data set (no meta.json); prepare it first" in proc.stderr
    assert not (tmp_path / "results").exists()


# --- studies keep their own outputs -----------------------------------------------------------------

@pytest.mark.slow
def test_a_study_with_its_own_root_leaves_another_study_untouched(narrow_copy):
    import yaml

    from conftest import NARROW, snakemake

    wd = narrow_copy  # the narrowed smoke study, complete, in the working directory (no root)
    one = NARROW[-1]
    first = {p: p.stat().st_mtime_ns for p in [*wd.glob("results/**/*.*"), *wd.glob("data/processed/**/*.*")]}
    assert wd / "results/tables/summary.csv" in first and wd / "data/processed/sine/meta.json" in first
    other = yaml.safe_load((wd / ".test/config/config.yaml").read_text())
    other["root"] = "studies/other"
    other["datasets"]["sine"]["params"]["seq_len"] = 6
    (wd / "other.yaml").write_text(yaml.safe_dump(other))
    snakemake(wd, "--cores", "2", "--configfile", "other.yaml", "--config", one.replace("seeds: [0, 1]", "seeds: [0]"))
    assert {p: p.stat().st_mtime_ns for p in first} == first  # not one file of the first study changed
    assert json.loads((wd / "studies/other/data/processed/sine/meta.json").read_text())["seq_len"] == 6
    assert (wd / "studies/other/results/tables/summary.csv").exists()
    assert (wd / "studies/other/logs/results/aggregate.log").exists()
    assert json.loads((wd / "data/processed/sine/meta.json").read_text())["seq_len"] == 12
    # the first study is still complete: nothing to do
    plan = snakemake(wd, "-n", "--configfile", ".test/config/config.yaml", "--config", one)
    assert "Nothing to be done" in plan.stdout + plan.stderr
