"""Integrity, round two: what a run, an evaluation and a study record is checked against where it
lies and what the study says; divergence as a user means it; a run folder trained by one process at
a time; failures of a CLI job as one line."""

import json
import math

import pytest

from liquidbench.data.sine import prepare
from liquidbench.train.loop import RunSpec, divergence, train


@pytest.fixture(scope="module")
def sine_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sine2")
    prepare({"n_sequences": 40, "seq_len": 10, "seed": 0}, d)
    return d


def run_spec(data_dir, out_dir, model="gru", seed=0, **training):
    models = {"gru": {"type": "gru", "hidden_size": 6}, "cfc": {"type": "cfc", "units": 6, "backbone_units": 8}}
    return RunSpec(dataset="sine", model=model, hardware="cpu", seed=seed, data_dir=data_dir, out_dir=out_dir,
                   model_spec=models[model], train_params={"epochs": 2, "batch_size": 8, "lr": 0.01, **training},
                   hardware_spec={"device": "cpu", "threads": 1})


def test_divergence_rule():
    """Not finite, or the validation loss above factor x the untrained model's: diverged, saying why."""
    assert divergence(0.5, 0.4, 1.0, 10) is None
    assert divergence(0.5, 9.9, 1.0, 10) is None
    assert "above 10 x the untrained model's 1" in divergence(0.5, 10.5, 1.0, 10)
    assert "training.divergence_factor" in divergence(0.5, 10.5, 1.0, 10)
    assert "not finite" in divergence(float("nan"), 0.4, 1.0, 10)
    assert "not finite" in divergence(0.5, float("inf"), 1.0, 10)


def test_a_run_whose_loss_explodes_is_diverged_with_its_epoch(sine_dir, tmp_path):
    """lr 1e4 used to end `ok` with MSE up to 1e27: now `diverged`, with the epoch and the rule."""
    metrics = train(run_spec(sine_dir, tmp_path, lr=1e4, epochs=3))
    assert metrics["status"] == "diverged"
    assert metrics["diverged_epoch"] == 1 and "divergence_factor" in metrics["diverged_reason"]
    assert metrics["start_val_loss"] > 0 and metrics["epochs_run"] == 1
    # the same settings at a sane learning rate train on as before
    ok = train(run_spec(sine_dir, tmp_path / "ok"))
    assert ok["status"] == "ok" and ok["diverged_epoch"] is None and ok["epochs_run"] == 2
    assert ok["start_val_loss"] > ok["best_val_metric"]


def test_a_run_records_the_settings_it_ran_with(sine_dir, tmp_path):
    """metrics.json records the model, training, hardware and data set settings, and the hash of
    the weights it kept: what later stages check a run against."""
    from liquidbench.train.loop import params_sha256
    from liquidbench.train.weights import load, rebuild

    m = train(run_spec(sine_dir, tmp_path))
    assert m["model_params"] == {"type": "gru", "hidden_size": 6}
    assert m["train_params"]["lr"] == 0.01 and m["train_params"]["divergence_factor"] == 10.0
    assert m["hardware_params"]["device"] == "cpu" and m["hardware_params"]["threads"] == 1
    assert m["data_params"]["params"]["n_sequences"] == 40 and set(m["data_params"]["sha256"]) >= {"train", "test"}
    assert m["best_params_sha256"] == params_sha256(rebuild(load(tmp_path)))


EVAL = {"seed": 0, "batch_size": 64, "families": {"noise": {"levels": [0, 0.5]}}}


@pytest.fixture(scope="module")
def study_runs(sine_dir, tmp_path_factory):
    """Three runs laid out as the workflow lays them out: gru seeds 0 and 1, cfc seed 0."""
    runs = tmp_path_factory.mktemp("study") / "results/runs/sine"
    for model, seed in [("gru", 0), ("gru", 1), ("cfc", 0)]:
        train(run_spec(sine_dir, runs / model / "cpu" / f"seed{seed}", model, seed))
    return runs


def copy_run(src, dest):
    import shutil

    shutil.copytree(src, dest)
    return dest


def test_evaluation_refuses_weights_or_metrics_of_another_run(study_runs, sine_dir, tmp_path):
    """Weights copied into another model's or seed's folder, a state dict of another architecture,
    a metrics.json of another run: refused, naming the file, where they used to count as that run."""
    import shutil

    import torch

    from liquidbench.evaluate.stage import evaluate_run

    assert evaluate_run(study_runs / "gru/cpu/seed0", sine_dir, EVAL)["status"] == "ok"
    # another model's weights.pt in the cfc folder
    run = copy_run(study_runs / "cfc/cpu/seed0", tmp_path / "a/sine/cfc/cpu/seed0")
    shutil.copy(study_runs / "gru/cpu/seed0/weights.pt", run / "weights.pt")
    with pytest.raises(ValueError, match=r"weights\.pt holds the weights of run sine/gru/cpu/seed0, not of sine/cfc/cpu/seed0"):
        evaluate_run(run, sine_dir, EVAL)
    # another seed's
    run = copy_run(study_runs / "gru/cpu/seed1", tmp_path / "b/sine/gru/cpu/seed1")
    shutil.copy(study_runs / "gru/cpu/seed0/weights.pt", run / "weights.pt")
    with pytest.raises(ValueError, match="holds the weights of run sine/gru/cpu/seed0"):
        evaluate_run(run, sine_dir, EVAL)
    # the right names, the state dict of another architecture: one line, no traceback
    run = copy_run(study_runs / "cfc/cpu/seed0", tmp_path / "c/sine/cfc/cpu/seed0")
    kept = torch.load(run / "weights.pt", weights_only=True)
    kept["state_dict"] = torch.load(study_runs / "gru/cpu/seed0/weights.pt", weights_only=True)["state_dict"]
    torch.save(kept, run / "weights.pt")
    with pytest.raises(ValueError, match="do not fit the model they record"):
        evaluate_run(run, sine_dir, EVAL)
    # metrics.json of another run in this folder
    run = copy_run(study_runs / "gru/cpu/seed1", tmp_path / "d/sine/gru/cpu/seed1")
    shutil.copy(study_runs / "gru/cpu/seed0/metrics.json", run / "metrics.json")
    with pytest.raises(ValueError, match=r"metrics of run sine/gru/cpu/seed0, not of the folder it lies in \(sine/gru/cpu/seed1\)"):
        evaluate_run(run, sine_dir, EVAL)


def test_collect_refuses_an_edited_or_misplaced_or_repeated_evaluation(study_runs, sine_dir, tmp_path):
    """collect-evaluation: an evaluation.json whose clean metric is not its run's test_metric, one
    lying in another run's folder, or one run listed twice: refused, nothing written."""
    from liquidbench.cli import main
    from liquidbench.evaluate.stage import evaluate_run, write

    paths = []
    for model, seed in [("gru", 0), ("gru", 1), ("cfc", 0)]:
        run = copy_run(study_runs / model / "cpu" / f"seed{seed}", tmp_path / f"sine/{model}/cpu/seed{seed}")
        write(evaluate_run(run, sine_dir, EVAL), run / "evaluation.json")
        paths.append(str(run / "evaluation.json"))
    out = ["--out-rows", str(tmp_path / "rows.csv"), "--out-runs", str(tmp_path / "runs.csv")]
    assert main(["collect-evaluation", *paths, *out]) == 0
    (tmp_path / "rows.csv").unlink()
    assert main(["collect-evaluation", paths[0], paths[0], *out]) == 1  # one run twice
    edited = json.loads(open(paths[1]).read())
    clean = next(r for r in edited["rows"] if r["family"] == "clean")
    clean["metric"] *= 0.5
    open(paths[1], "w").write(json.dumps(edited))
    assert main(["collect-evaluation", *paths, *out]) == 1
    # seed0's evaluation copied over seed1's
    open(paths[1], "w").write(open(paths[0]).read())
    assert main(["collect-evaluation", *paths, *out]) == 1
    assert not (tmp_path / "rows.csv").exists()


def test_check_evaluations_messages(study_runs, sine_dir, tmp_path):
    from liquidbench.evaluate.identity import check_evaluations
    from liquidbench.evaluate.stage import evaluate_run, write

    a = copy_run(study_runs / "gru/cpu/seed0", tmp_path / "sine/gru/cpu/seed0")
    b = copy_run(study_runs / "gru/cpu/seed1", tmp_path / "sine/gru/cpu/seed1")
    for run in (a, b):
        write(evaluate_run(run, sine_dir, EVAL), run / "evaluation.json")
    check_evaluations([a / "evaluation.json", b / "evaluation.json"])
    with pytest.raises(ValueError, match="evaluated twice"):
        check_evaluations([a / "evaluation.json", a / "evaluation.json"])
    (b / "evaluation.json").write_text((a / "evaluation.json").read_text())
    with pytest.raises(ValueError, match=r"evaluation of run sine/gru/cpu/seed0, not of the folder it lies in"):
        check_evaluations([b / "evaluation.json"])
    ev = json.loads((a / "evaluation.json").read_text())
    next(r for r in ev["rows"] if r["family"] == "clean")["metric"] += 1.0
    (a / "evaluation.json").write_text(json.dumps(ev))
    with pytest.raises(ValueError, match="is not the run's test_metric"):
        check_evaluations([a / "evaluation.json"])


def test_a_run_folder_is_trained_by_one_process_at_a_time(sine_dir, tmp_path):
    """While another process holds a run folder (as a running `liquidbench train` does), a second
    training of it is refused at once, naming the holder; once the holder exits, it trains."""
    import subprocess
    import sys

    from conftest import tool_env
    from liquidbench.train.lock import RunBusy

    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom liquidbench.train.lock import run_lock\n"
         f"with run_lock({str(run)!r}):\n    print('held', flush=True)\n    sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=tool_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=rf"being trained by another process \(pid {holder.pid} on "):
            train(run_spec(sine_dir, run))
        assert not (run / "metrics.json").exists() and not (run / "checkpoint.pt").exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert train(run_spec(sine_dir, run))["status"] == "ok"


def test_resume_reads_a_checkpoint_without_holding_it_as_bytes(tmp_path):
    """Reading a checkpoint hashes and unpickles it from the file: Python-side memory stays far below
    the file's size (reading it whole held the bytes, a copy of them, then the tensors)."""
    import tracemalloc

    import torch

    from liquidbench.train import checkpoint as ckpt

    ckpt.save(tmp_path, {"model": {"w": torch.randn(4_000_000)}, "fingerprint": "fp"})  # a 16 MB tensor
    size = (tmp_path / ckpt.NAME).stat().st_size
    tracemalloc.start()
    state = ckpt.read(tmp_path / ckpt.NAME)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert state["model"]["w"].shape == (4_000_000,)
    assert peak < size / 4, (peak, size)
    # a damaged one is still refused before it is unpickled
    raw = bytearray((tmp_path / ckpt.NAME).read_bytes())
    raw[-100] ^= 1
    (tmp_path / ckpt.NAME).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is damaged"):
        ckpt.read(tmp_path / ckpt.NAME)


@pytest.mark.parametrize("error, expected", [
    (MemoryError(), "out of memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 800000000000 bytes"), "out of memory"),
    (KeyError("state"), "failed with KeyError"),
])
def test_every_failure_of_a_cli_job_is_one_line(sine_dir, tmp_path, monkeypatch, caplog, error, expected):
    """Out of memory at model build (host or device) or any other failure: one line naming what
    failed and what to do, exit code 1, no traceback."""
    import logging

    import torch

    from liquidbench.cli import main
    from liquidbench.train import loop

    raised = [error, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")]

    def build_fails(*args, **kwargs):
        raise raised.pop(0)

    monkeypatch.setattr(loop, "build_model", build_fails)
    args = ["train", "--data", str(sine_dir), "--dataset", "sine", "--model", "gru", "--model-params",
            '{"type": "gru", "hidden_size": 4}', "--hardware", "cpu", "--hardware-params", '{"device": "cpu"}',
            "--seed", "0", "--out", str(tmp_path / "run")]
    for want in (expected, "out of memory"):  # then the device's own error type
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="liquidbench"):
            assert main(args) == 1
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info is None
        line = errors[0].getMessage()
        assert want in line and "\n" not in line
        if want == "out of memory":
            assert "batch_size" in line
