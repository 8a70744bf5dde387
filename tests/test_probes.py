"""The two probes of the DDP scaling model: step time against batch size, all-reduce time against
message size (liquidbench.train.probes), and their CLI subcommands."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist

from conftest import tool_env
from liquidbench.cli import main
from liquidbench.data.store import save_dataset
from liquidbench.models import build_model, count_parameters
from liquidbench.train.probes import (MIN_REPEATS, allreduce_probe, coverage, median_interval, run_allreduce_probe,
                                      seeded_model, step_probe)

GRU = {"type": "gru", "hidden_size": 8}
LSTM = {"type": "lstm", "hidden_size": 8}
ENV_KEYS = {"torch", "device", "device_name", "threads", "world", "backend", "tf32", "fp32_precision", "hostname",
            "dtype", "git_commit"}


def probe(spec=GRU, batches=(1, 2, 4), repeats=MIN_REPEATS, task="regression_per_step", **kw):
    return step_probe(spec, n_features=2, n_outputs=3, task=task, seq_len=8, batches=list(batches), device="cpu",
                      warmup=1, repeats=repeats, seed=0, **kw)


def assert_points(points, key, grid, repeats):
    assert [p[key] for p in points] == grid
    for p in points:
        assert len(p["samples_s"]) == repeats and all(s > 0 for s in p["samples_s"])
        assert 0 < p["lo_s"] <= p["median_s"] <= p["hi_s"]
        assert p["lo_s"] == min(p["samples_s"]) and p["hi_s"] == max(p["samples_s"])  # n = 6: min to max
        assert p["coverage"] == pytest.approx(1 - 2 / 2 ** 6)


def test_median_interval_is_the_order_statistic_interval():
    assert MIN_REPEATS == 6  # min..max of 5 samples covers the median only 93.75 % of the time
    assert coverage(5, 1) == pytest.approx(0.9375)
    six = median_interval([6.0, 1.0, 5.0, 2.0, 4.0, 3.0])
    assert (six.median, six.lo, six.hi, six.n) == (3.5, 1.0, 6.0, 6)
    assert six.coverage == pytest.approx(0.96875)
    twenty = median_interval(range(20))  # the textbook interval for n = 20: x_(6) .. x_(15), 95.86 %
    assert (twenty.lo, twenty.hi, twenty.median) == (5.0, 14.0, 9.5)
    assert twenty.coverage == pytest.approx(0.9586, abs=1e-4)
    with pytest.raises(ValueError, match="5 sample.*expected at least 6"):
        median_interval(range(5))


def test_step_probe_times_each_batch_size():
    result = probe()
    out = result.to_json()
    assert out["probe"] == "step" and out["interval"]["confidence"] == 0.95
    assert_points(out["points"], "batch", [1, 2, 4], MIN_REPEATS)
    expected = count_parameters(build_model(GRU, 2, 3, "regression_per_step"))
    assert out["n_params"] == result.n_params == expected
    assert out["gradient_bytes"] == 4 * expected
    assert (out["task"], out["seq_len"], out["n_features"], out["n_outputs"]) == ("regression_per_step", 8, 2, 3)
    assert (out["warmup"], out["repeats"], out["seed"]) == (1, MIN_REPEATS, 0)
    assert ENV_KEYS <= set(out["env"]) and out["env"]["world"] == 1 and out["env"]["device"] == "cpu"
    json.dumps(out)  # serialisable as it is


def test_step_probe_classification_and_irregular_sampling():
    out = probe(LSTM, batches=(1, 3), task="classification_per_sequence", irregular=True).to_json()
    assert_points(out["points"], "batch", [1, 3], MIN_REPEATS)
    assert out["irregular"] is True and out["task"] == "classification_per_sequence"
    per_step = probe(LSTM, batches=(2,), task="classification_per_step").to_json()
    assert out["n_params"] == count_parameters(build_model(LSTM, 2, 3, "classification_per_sequence", irregular=True))
    assert per_step["n_params"] == count_parameters(build_model(LSTM, 2, 3, "classification_per_step"))


def test_the_same_seed_builds_the_same_model():
    cpu = torch.device("cpu")
    before = torch.random.get_rng_state()
    a, b = (seeded_model(LSTM, 2, 3, "regression_per_step", False, 7, cpu) for _ in range(2))
    other = seeded_model(LSTM, 2, 3, "regression_per_step", False, 8, cpu)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's generator is left as it was
    sa, sb, so = a.state_dict(), b.state_dict(), other.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], so[k]) for k in sa)
    first, second = probe(LSTM, batches=(1,)), probe(LSTM, batches=(1,))
    assert first.n_params == second.n_params == count_parameters(a)
    assert first.gradient_bytes == second.gradient_bytes == 4 * count_parameters(a)


@pytest.mark.parametrize("batches, repeats, message", [
    ([], MIN_REPEATS, "batches: expected a non-empty list"),
    ([0, 1, 2], MIN_REPEATS, r"batches: expected per-process batch sizes \(integers >= 1\), got 0"),
    ([1, 4, 2], MIN_REPEATS, "batches: expected strictly increasing .* got 2 after 4"),
    ([1, 2, 2], MIN_REPEATS, "batches: expected strictly increasing .* got 2 after 2"),
    ([1, 2], 5, "repeats: expected an integer >= 6, got 5: the 95% order-statistic interval"),
])
def test_step_probe_refuses_bad_grids(batches, repeats, message):
    with pytest.raises(ValueError, match=message):
        probe(batches=batches, repeats=repeats)


def test_step_probe_refuses_an_unknown_task():
    with pytest.raises(ValueError, match="task: 'forecast' is unknown, expected one of"):
        probe(task="forecast")


def test_allreduce_with_two_gloo_processes(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE"):  # started here, not under torchrun
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "allreduce.json"
    sizes = [4096, 16384, 65536]
    assert main(["probe-allreduce", "--world", "2", "--sizes", ",".join(map(str, sizes)), "--warmup", "1",
                 "--repeats", "6", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["probe"] == "allreduce" and (result["world"], result["backend"]) == (2, "gloo")
    assert len(result["hosts"]) == 2 and result["nodes"] == 1
    assert_points(result["points"], "size_bytes", sizes, 6)
    env = result["env"]
    assert ENV_KEYS <= set(env) and (env["world"], env["backend"], env["device"]) == (2, "gloo", "cpu")
    assert env["torch"] == torch.__version__ and env["threads"] == 1


def test_allreduce_under_torchrun(tmp_path, monkeypatch):
    """The module runs as torchrun's workers (as NCCL on a GPU node and multi-node runs use it); rank 0 writes."""
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "torchrun.json"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "liquidbench.train.probes", "--sizes", "4096,8192", "--warmup", "1", "--repeats", "6",
                           "--out", str(out)], capture_output=True, text=True, timeout=120, env=tool_env())
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert (result["world"], result["backend"], result["env"]["world"]) == (2, "gloo", 2)
    assert_points(result["points"], "size_bytes", [4096, 8192], 6)
    assert [p.name for p in tmp_path.iterdir()] == ["torchrun.json"]


def test_allreduce_refuses_a_world_of_one(tmp_path, monkeypatch, caplog):
    with pytest.raises(ValueError, match="world: expected at least 2 processes for an all-reduce, got 1"):
        run_allreduce_probe(1, [4096, 8192])
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="expected a world of at least 2 processes, got 1"):
            allreduce_probe([4096], "gloo", "cpu", 0, MIN_REPEATS)
    finally:
        dist.destroy_process_group()
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "allreduce.json"
    assert main(["probe-allreduce", "--world", "1", "--out", str(out)]) == 1
    assert "expected at least 2 processes" in caplog.text
    assert main(["probe-allreduce", "--world", "2", "--sizes", "4096,4098", "--out", str(out)]) == 1
    assert "sizes_bytes: expected multiples of 4 bytes" in caplog.text
    assert main(["probe-allreduce", "--out", str(out)]) == 1
    assert "--world: expected the number of processes" in caplog.text
    assert list(tmp_path.iterdir()) == []


def step_args(out, *extra):
    return ["probe-step", "--model-params", json.dumps(GRU), "--batches", "1,2,4", "--repeats", "6",
            "--warmup", "1", "--seed", "3", "--out", str(out), *extra]


def test_cli_probe_step_writes_json_with_the_environment(tmp_path):
    out = tmp_path / "probe" / "step.json"
    assert main(step_args(out, "--data", "none", "--features", "2", "--outputs", "1", "--task", "regression_per_step",
                          "--seq-len", "8", "--threads", "1")) == 0
    result = json.loads(out.read_text())
    assert_points(result["points"], "batch", [1, 2, 4], 6)
    assert result["model_spec"] == GRU and result["data"] is None and result["seed"] == 3
    n_params = count_parameters(build_model(GRU, 2, 1, "regression_per_step"))
    assert result["n_params"] == n_params and result["gradient_bytes"] == 4 * n_params
    env = result["env"]
    assert ENV_KEYS <= set(env)
    assert (env["torch"], env["device"], env["threads"]) == (torch.__version__, "cpu", 1)
    assert (env["world"], env["backend"], env["dtype"]) == (1, None, "float32")
    assert env["tf32"] is False  # the run's float32 policy (no --tf32)
    assert [p.name for p in out.parent.iterdir()] == ["step.json"]  # no temporary file left


def test_cli_probe_step_reads_a_prepared_data_set(tmp_path):
    rng = np.random.default_rng(0)
    split = lambda n: {"x": rng.normal(size=(n, 5, 3)), "y": np.arange(n) % 4}  # noqa: E731
    save_dataset(tmp_path / "data", {"train": split(8), "val": split(4), "test": split(4)},
                 "classification_per_sequence", {})
    out = tmp_path / "step.json"
    assert main(step_args(out, "--data", str(tmp_path / "data"))) == 0
    result = json.loads(out.read_text())
    assert (result["task"], result["n_features"], result["n_outputs"], result["seq_len"]) == (
        "classification_per_sequence", 3, 4, 5)
    assert result["data"] == str(tmp_path / "data") and len(result["points"]) == 3


@pytest.mark.parametrize("extra, message", [
    (["--repeats", "5"], "repeats: expected an integer >= 6, got 5"),
    (["--batches", "4,2"], "batches: expected strictly increasing"),
    (["--batches", "1,two"], "--batches: expected comma-separated integers"),
    (["--features", "2"], "without --data, give --outputs, --task, --seq-len"),
    (["--data", "DATA", "--task", "regression_per_step"], "leave out --task"),
    (["--data", "DATA"], "holds no prepared data set"),
])
def test_cli_probe_step_refused_leaves_no_file(tmp_path, caplog, extra, message):
    out = tmp_path / "out" / "step.json"
    extra = [str(tmp_path / "missing") if e == "DATA" else e for e in extra]
    shape = [] if "--data" in extra or "--features" in extra else [
        "--features", "2", "--outputs", "1", "--task", "regression_per_step", "--seq-len", "8"]
    assert main([*step_args(out), *shape, *extra]) == 1
    assert message in caplog.text
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))
