import json
import math
import subprocess
import sys

import pytest

from conftest import tool_env
from liquidbench.data.sine import prepare
from liquidbench.train.loop import RunSpec, train

REQUIRED = {
    "dataset", "model", "hardware", "seed", "device", "world_size", "threads", "epochs", "n_params",
    "metric_name", "final_train_loss", "best_val_metric", "test_metric", "train_time_s",
    "warmup_time_s", "epoch_times_s", "throughput_samples_per_s", "peak_host_rss_mb", "status", "env",
}
ENV_KEYS = {"python", "torch", "ncps", "numpy", "hostname", "cpu_model", "git_commit"}
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


def test_drop_last_leaves_out_the_incomplete_batch(sine_dir, tmp_path):
    """28 training sequences, batch 8: three full batches (24 sequences) per epoch, as the LTC paper's
    batch iterator; without drop_last a fourth batch of 4."""
    full = spec(sine_dir, tmp_path / "full", "gru", epochs=2)
    dropped = spec(sine_dir, tmp_path / "dropped", "gru", epochs=2)
    dropped.train_params = {**dropped.train_params, "drop_last": True}
    a, b = train(full), train(dropped)
    assert a["samples_per_epoch"] == 28 and b["samples_per_epoch"] == 24
    assert b["throughput_samples_per_s"] == pytest.approx(24 / b["epoch_times_s"][1])
    assert a["final_params_sha256"] != b["final_params_sha256"]
    too_big = spec(sine_dir, tmp_path / "too_big", "gru", epochs=1)
    too_big.train_params = {**too_big.train_params, "drop_last": True, "batch_size": 64}
    with pytest.raises(ValueError, match=r"drop_last with batch 64 leaves no batch of the 28 training sequences"):
        train(too_big)
    assert not (tmp_path / "too_big" / "metrics.json").exists()
