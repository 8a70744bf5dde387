import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest

from conftest import tool_env
from liquidbench.data.sine import prepare
from liquidbench.train.loop import RunSpec, train

REQUIRED = {
    "dataset", "model", "hardware", "seed", "device", "world_size", "threads", "epochs", "n_params",
    "metric_name", "final_train_loss", "best_val_metric", "test_metric", "train_time_s",
    "warmup_time_s", "epoch_times_s", "throughput_samples_per_s", "peak_host_rss_mb", "status", "env",
}
ENV_KEYS = {"python", "torch", "ncps", "numpy", "hostname", "cpu_model", "git_commit", "ltc_kernel", "cfc_kernel"}
TIMING = {"train_time_s", "warmup_time_s", "epoch_times_s", "throughput_samples_per_s", "peak_host_rss_mb",
          "steady_epoch_time_s", "env", "step_time_median_s", "step_time_p95_s", "telemetry", "comm_probe",
          "comm_fraction"}


@pytest.fixture(scope="module")
def sine_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sine")
    prepare({"n_sequences": 40, "seq_len": 10, "seed": 0}, d)
    return d


def spec(data_dir, out_dir, model="cfc", seed=0, epochs=3):
    models = {"cfc": {"type": "cfc", "units": 6, "backbone_units": 8}, "ltc": {"type": "ltc", "units": 6, "ode_unfolds": 2},
              "gru": {"type": "gru", "hidden_size": 6}}
    return RunSpec(dataset="sine", model=model, hardware="cpu", seed=seed, data_dir=data_dir, out_dir=out_dir,
                   model_spec=models[model], train_params={"epochs": epochs, "batch_size": 8, "lr": 0.01},
                   hardware_spec={"device": "cpu", "threads": 1, "resources": {"mem_mb": 1000, "runtime": 5}})


@pytest.mark.parametrize("model", ["cfc", "ltc"])
def test_same_seed_gives_identical_metrics(sine_dir, tmp_path, model):
    a = train(spec(sine_dir, tmp_path / "a", model))
    b = train(spec(sine_dir, tmp_path / "b", model))
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMING}
    assert strip(a) == strip(b)
    assert (tmp_path / "a" / "history.csv").read_text().split("\n")[1].split(",")[:4] == \
        (tmp_path / "b" / "history.csv").read_text().split("\n")[1].split(",")[:4]
    c = train(spec(sine_dir, tmp_path / "c", model, seed=1))
    assert c["final_train_loss"] != a["final_train_loss"]


def test_metrics_json_has_every_field(sine_dir, tmp_path):
    m = train(spec(sine_dir, tmp_path, "gru", epochs=3))
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert REQUIRED <= set(on_disk)
    assert ENV_KEYS <= set(on_disk["env"])
    assert on_disk["status"] == "ok" and on_disk["device"] == "cpu" and on_disk["world_size"] == 1
    assert on_disk["threads"] == 1 and on_disk["epochs"] == 3 and on_disk["metric_name"] == "mse"
    assert len(on_disk["epoch_times_s"]) == 3
    assert on_disk["warmup_time_s"] == on_disk["epoch_times_s"][0]
    assert math.isclose(on_disk["train_time_s"], sum(on_disk["epoch_times_s"]))
    # 28 training sequences per epoch over the two steady-state epochs
    assert math.isclose(on_disk["throughput_samples_per_s"], 28 * 2 / sum(on_disk["epoch_times_s"][1:]))
    assert on_disk["n_params"] == m["n_params"] > 0
    assert on_disk["peak_host_rss_mb"] > 10
    history = (tmp_path / "history.csv").read_text().strip().split("\n")
    assert history[0] == "epoch,train_loss,val_loss,val_metric,epoch_time_s"
    assert len(history) == 4
    best = min(float(r.split(",")[3]) for r in history[1:])
    assert on_disk["best_val_metric"] == pytest.approx(best)


def test_cli_rejects_bad_json_and_unknown_training_key(sine_dir, tmp_path):
    base = [sys.executable, "-m", "liquidbench.cli", "train", "--data", str(sine_dir), "--dataset", "sine",
            "--model", "gru", "--hardware", "cpu", "--seed", "0", "--out", str(tmp_path / "run"),
            "--hardware-params", '{"device": "cpu"}']
    bad = subprocess.run(base + ["--model-params", "{type: gru"], capture_output=True, text=True, env=tool_env())
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    unknown = subprocess.run(base + ["--model-params", '{"type": "gru"}', "--train-params", '{"epochz": 2}'],
                             capture_output=True, text=True, env=tool_env())
    assert unknown.returncode == 1 and "epochz" in unknown.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_cli_runs_one_run_of_a_study_file(sine_dir, tmp_path):
    """`liquidbench train --config FILE --run d/m/h/seed` trains what the workflow's job would: the
    run's model, its data set's training settings over the study's, its hardware entry."""
    import shutil

    import yaml

    shutil.copytree(sine_dir, tmp_path / "data/processed/sine")
    study = {
        "study": {"datasets": ["sine"], "models": ["g"], "hardware": ["cpu"], "seeds": [3]},
        "training": {"epochs": 5, "batch_size": 8, "lr": 0.01},
        "datasets": {"sine": {"kind": "sine", "params": {"n_sequences": 40, "seq_len": 10, "seed": 0},
                              "training": {"epochs": 2}}},
        "models": {"g": {"type": "gru", "hidden_size": 6}},
        "hardware": {"cpu": {"device": "cpu", "threads": 1, "resources": {"mem_mb": 1000, "runtime": 5}}},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    cmd = [sys.executable, "-m", "liquidbench.cli", "train", "--config", "study.yaml"]
    proc = subprocess.run(cmd + ["--run", "sine/g/cpu/seed3"], cwd=tmp_path, capture_output=True, text=True,
                          env=tool_env())
    assert proc.returncode == 0, proc.stderr
    by_cli = json.loads((tmp_path / "results/runs/sine/g/cpu/seed3/metrics.json").read_text())
    assert (by_cli["model"], by_cli["seed"], by_cli["epochs"], by_cli["train_params"]["batch_size"]) == ("g", 3, 2, 8)
    direct = train(RunSpec(dataset="sine", model="g", hardware="cpu", seed=3, data_dir=sine_dir,
                           out_dir=tmp_path / "direct", model_spec=study["models"]["g"],
                           train_params={"epochs": 2, "batch_size": 8, "lr": 0.01},
                           hardware_spec=study["hardware"]["cpu"]))
    assert by_cli["final_params_sha256"] == direct["final_params_sha256"]
    assert by_cli["test_metric"] == direct["test_metric"]

    bad = subprocess.run(cmd + ["--run", "sine/lstm/cpu/0"], cwd=tmp_path, capture_output=True, text=True,
                         env=tool_env())
    assert bad.returncode == 1 and "'lstm' is not defined under 'models'" in bad.stderr


def test_metrics_json_is_built_from_the_state_without_training():
    """build_metrics is a pure function: warm-up vs steady epochs, throughput, step-time statistics,
    comm fraction and segments follow from the recorded state alone."""
    from liquidbench.train.metrics import RunFacts, build_metrics
    from liquidbench.train.settings import Hardware, Training
    from liquidbench.train.state import TrainState

    state = TrainState(epoch=3, steps_done=12, segments=1, best_val=0.25, best_epoch=2,
                       history=[{"epoch": e, "train_loss": l, "val_loss": l, "val_metric": l, "epoch_time_s": t}
                                for e, l, t in [(1, 0.9, 4.0), (2, 0.5, 2.0), (3, 0.4, 3.0)]],
                       epoch_times=[4.0, 2.0, 3.0], warmup_step_times=[1.0] * 4, steady_step_times=[0.5, 0.5, 0.7, 0.9])
    facts = RunFacts(dataset="sine", model="c", model_spec={"type": "cfc"}, hardware="ddp", seed=1,
                     training=Training(epochs=3), hw=Hardware(nodes=1, nproc_per_node=2, scaling="strong"),
                     device="cpu", device_name=None, world=2, backend="gloo", ddp=True, threads=1, batch_per_process=8,
                     n_params=100, task="regression_per_step", metric_name="mse", samples_per_epoch=32,
                     steps_per_epoch=2, step_timer="perf_counter", comm_probe={"allreduce_s": 0.3},
                     final_params_sha256="ab", best_params_sha256="cd",
                     data_params={"params": {"seed": 0}, "sha256": None}, tuned=None, test_metric=0.3, peak_host_rss_mb=50.0, telemetry={}, status="ok", env={})
    m = build_metrics(facts, state)
    assert (m["warmup_time_s"], m["train_time_s"], m["steady_epoch_time_s"]) == (4.0, 9.0, 2.5)
    assert m["throughput_samples_per_s"] == 32 * 2 / 5.0
    assert m["step_time_median_s"] == 0.6 and m["step_time_p95_s"] == pytest.approx(0.87)
    assert m["comm_fraction"] == pytest.approx(0.5)
    assert (m["global_batch_size"], m["epochs_run"], m["final_train_loss"], m["segments"]) == (16, 3, 0.4, 2)
    assert (m["best_val_metric"], m["best_epoch"], m["model_type"], m["scaling"]) == (0.25, 2, "cfc", "strong")
    # one epoch only: it is both warm-up and steady state; no steady steps: warm-up steps count
    one = TrainState(epoch=1, history=state.history[:1], epoch_times=[4.0], warmup_step_times=[1.0, 3.0])
    m1 = build_metrics(facts, one)
    assert m1["steady_epoch_time_s"] == 4.0 and m1["step_time_median_s"] == 2.0


def test_train_state_round_trips_through_a_checkpoint(tmp_path):
    """to_checkpoint and from_checkpoint are inverse: model, optimizer, scheduler, RNG and state."""
    import torch

    from liquidbench.train import checkpoint as ckpt
    from liquidbench.train.state import TrainState

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    model(torch.randn(4, 3)).sum().backward()
    opt.step(), sched.step()
    state = TrainState(epoch=2, partial={"step_in_epoch": 3, "elapsed_s": 1.5, "step_times": [0.1],
                                         "loss_sum": [torch.tensor([2.0, 4.0])]},
                       steps_done=7, segments=1, history=[{"epoch": 1}], epoch_times=[1.0], best_val=0.5,
                       best_epoch=1, best_state={k: v.clone() for k, v in model.state_dict().items()})
    cpu = torch.device("cpu")
    ckpt.save(tmp_path, state.to_checkpoint("fp", model, opt, sched, [ckpt.rng_state(cpu)]))
    expected_draw = torch.rand(3)
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    sched2 = torch.optim.lr_scheduler.ExponentialLR(opt2, gamma=0.5)
    back = TrainState.from_checkpoint(ckpt.load(tmp_path, "fp"), model2, opt2, sched2, 0, cpu)
    assert torch.equal(torch.rand(3), expected_draw)  # the RNG continues where it was saved
    assert back.segments == 2 and back.start_epoch == 2 and back.steps_done == 7
    assert back.partial["step_in_epoch"] == 3 and back.history == [{"epoch": 1}]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert sched2.get_last_lr() == sched.get_last_lr() and opt2.state_dict()["state"].keys() == opt.state_dict()["state"].keys()


def test_drop_last_leaves_out_the_incomplete_batch(sine_dir, tmp_path):
    """28 training sequences, batch 8: three full batches (24 sequences) per epoch, as the LTC paper's
    batch iterator; without drop_last a fourth batch of 4."""
    full = spec(sine_dir, tmp_path / "full", "gru", epochs=2)
    dropped = spec(sine_dir, tmp_path / "dropped", "gru", epochs=2)
    dropped = replace(dropped, train_params={**dropped.train_params, "drop_last": True})
    a, b = train(full), train(dropped)
    assert a["samples_per_epoch"] == 28 and b["samples_per_epoch"] == 24
    assert b["throughput_samples_per_s"] == pytest.approx(24 / b["epoch_times_s"][1])
    assert a["final_params_sha256"] != b["final_params_sha256"]
    too_big = spec(sine_dir, tmp_path / "too_big", "gru", epochs=1)
    too_big = replace(too_big, train_params={**too_big.train_params, "drop_last": True, "batch_size": 64})
    with pytest.raises(ValueError, match=r"drop_last with batch 64 leaves no batch of the 28 training sequences"):
        train(too_big)
    assert not (tmp_path / "too_big" / "metrics.json").exists()
