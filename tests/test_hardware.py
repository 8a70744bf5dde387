"""Hardware configurations through the command line: checkpoint/resume under SIGTERM, DDP with real
torchrun processes (gloo), a dead rank, a CUDA configuration where CUDA is unavailable, and (on a
GPU machine) one where it is."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tool_env
from liquidbench.data.sine import prepare
from liquidbench.train import checkpoint as ckpt

CPU = {"device": "cpu", "threads": 1, "resources": {"mem_mb": 1000, "runtime": 5}}
DDP2 = {"device": "cpu", "nproc_per_node": 2, "threads": 1, "backend": "gloo", "scaling": "strong", "timeout_s": 20,
        "resources": {"mem_mb": 1000, "runtime": 5}}
GRU = {"type": "gru", "hidden_size": 6}
CFC = {"type": "cfc", "units": 6, "backbone_units": 8}
# Differences an interrupted run may show: wall-clock figures and the process count.
TIMING = {"train_time_s", "warmup_time_s", "epoch_times_s", "throughput_samples_per_s", "peak_host_rss_mb",
          "steady_epoch_time_s", "env", "step_time_median_s", "step_time_p95_s", "telemetry", "comm_probe",
          "comm_fraction", "segments"}


@pytest.fixture(scope="module")
def sine_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sine")
    prepare({"n_sequences": 40, "seq_len": 10, "seed": 0}, d)  # 28 training sequences
    return d


def train_cmd(data, out, hardware="cpu", hw=CPU, model=CFC, train=None, torchrun=0):
    train = train or {"epochs": 4, "batch_size": 8, "lr": 0.01}
    cmd = [sys.executable, "-m", "liquidbench.cli", "train", "--data", str(data), "--dataset", "sine",
           "--model", model["type"], "--model-params", json.dumps(model), "--hardware", hardware,
           "--hardware-params", json.dumps(hw), "--train-params", json.dumps(train), "--seed", "0", "--out", str(out)]
    if torchrun:
        cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nnodes=1",
               f"--nproc_per_node={torchrun}", "-m"] + cmd[2:]
    return cmd


def run(cmd, signal_at=None, timeout=300, env=None):
    env = {**tool_env(), **(env or {})}
    env.pop("LIQUIDBENCH_TEST_SIGNAL", None)
    if signal_at:
        env["LIQUIDBENCH_TEST_SIGNAL"] = signal_at
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def strip(metrics):
    return {k: v for k, v in metrics.items() if k not in TIMING}


def history_without_times(path):
    return [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]


def test_sigterm_in_epoch_2_then_rerun_equals_uninterrupted(sine_dir, tmp_path):
    ref = run(train_cmd(sine_dir, tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    # 4 steps per epoch: the signal arrives just before step 6, i.e. during epoch 2
    out = tmp_path / "run"
    first = run(train_cmd(sine_dir, out), signal_at="TERM@6")
    assert first.returncode == 143, first.stderr
    assert "checkpoint written" in first.stderr
    assert not (out / "metrics.json").exists()
    state = ckpt.read(out / "checkpoint.pt")
    assert (state["epoch"], state["partial"]["step_in_epoch"], state["steps_done"]) == (2, 2, 6)
    assert len(state["history"]) == 1 and len(state["rng"]) == 1 and state["rng"][0]["torch"].dtype == torch.uint8

    second = run(train_cmd(sine_dir, out))
    assert second.returncode == 0, second.stderr
    assert "resuming from checkpoint: epoch 2, step 2" in second.stderr
    a = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert strip(a) == strip(b)
    assert a["final_params_sha256"] == b["final_params_sha256"] and a["final_train_loss"] == b["final_train_loss"]
    assert (a["segments"], b["segments"]) == (1, 2)
    assert len(b["epoch_times_s"]) == 4 and all(t > 0 for t in b["epoch_times_s"])
    assert history_without_times(tmp_path / "ref" / "history.csv") == history_without_times(out / "history.csv")
    assert not (out / "checkpoint.pt").exists()
    # telemetry of both process segments is kept
    rows = (out / "telemetry.csv").read_text().splitlines()
    assert {line.split(",")[1] for line in rows[1:]} == {"0", "1"}


def test_checkpoint_of_other_arguments_is_not_resumed(sine_dir, tmp_path):
    out = tmp_path / "run"
    assert run(train_cmd(sine_dir, out), signal_at="TERM@2").returncode == 143
    assert (out / "checkpoint.pt").exists()
    other = run(train_cmd(sine_dir, out, train={"epochs": 2, "batch_size": 8, "lr": 0.02}))
    assert other.returncode == 0, other.stderr
    assert "belongs to other run arguments" in other.stderr and "starting fresh" in other.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["segments"] == 1 and m["epochs_run"] == 2 and m["train_params"]["lr"] == 0.02


GPU = {"device": "cuda", "threads": 1, "resources": {"mem_mb": 1000, "gpus": 1, "runtime": 5}}


def test_cuda_configuration_without_cuda_fails_at_once(sine_dir, tmp_path):
    # On a GPU machine too: an empty CUDA_VISIBLE_DEVICES hides every GPU from the new process
    # (torch reads it when CUDA first initialises), so CUDA is really unavailable there.
    t0 = time.monotonic()
    proc = run(train_cmd(sine_dir, tmp_path / "run", hardware="gpu", hw=GPU), env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 1
    assert "hardware 'gpu' asks for device 'cuda', but CUDA is not available" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs on GPU machines)")
def test_cuda_configuration_trains_on_the_gpu(sine_dir, tmp_path):
    proc = run(train_cmd(sine_dir, tmp_path / "run", hardware="gpu", hw=GPU, train={"epochs": 2, "batch_size": 8}))
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (m["device"], m["step_timer"], m["world_size"], m["epochs_run"]) == ("cuda", "cuda_events", 1, 2)
    assert m["device_name"] == torch.cuda.get_device_name(0)
    assert 0 < m["step_time_median_s"] <= m["step_time_p95_s"]
    assert m["telemetry"]["gpu"] is not None or m["telemetry"]["gpu_reason"]  # NVML may be missing


def test_ddp_cpu_2_one_step_equals_one_process_on_the_union_of_batches(sine_dir, tmp_path):
    from liquidbench.models import build_model
    from liquidbench.train.loop import seed_everything, split_tensors
    from liquidbench.train.tasks import loss_fn
    from liquidbench.data import load_split
    from torch.utils.data import DistributedSampler

    # global batch 28 split over 2 ranks: one step per epoch; SIGTERM at step 1 stops after epoch 1
    train = {"epochs": 2, "batch_size": 28, "lr": 0.01, "grad_clip": 1.0}
    out = tmp_path / "ddp"
    proc = run(train_cmd(sine_dir, out, hardware="ddp-cpu-2", hw=DDP2, model=GRU, train=train, torchrun=2),
               signal_at="TERM@1")
    assert proc.returncode != 0 and "checkpoint written after epoch 1" in proc.stderr, proc.stderr
    state = ckpt.read(out / "checkpoint.pt")
    assert state["steps_done"] == 1 and len(state["rng"]) == 2

    tensors = split_tensors(load_split(sine_dir, "train"))
    union = []
    for rank in range(2):
        s = DistributedSampler(range(len(tensors[0])), num_replicas=2, rank=rank, shuffle=True, seed=0)
        s.set_epoch(1)
        union += list(s)
    assert sorted(union) == list(range(28))
    seed_everything(0)
    model = build_model(GRU, 2, 1, "regression_per_step")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    # the mean over the union equals the mean of the two ranks' means (equal halves)
    idx = torch.tensor(union)
    loss = loss_fn("regression_per_step", model(tensors[0][idx]), tensors[1][idx])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    ref = model.state_dict()
    moved = 0
    for name, value in state["model"].items():
        assert torch.allclose(value, ref[name], atol=1e-6, rtol=0), name
        moved += int(not torch.equal(value, build_model(GRU, 2, 1, "regression_per_step").state_dict()[name]))
    assert moved > 0


def test_ddp_sigterm_on_one_rank_stops_both_at_the_same_step_and_resumes_identically(sine_dir, tmp_path):
    from liquidbench.train.distributed import STOP_CHECK_STEPS

    # global batch 2 over 2 ranks: 14 steps an epoch. The ranks agree on the flag after step 10
    # (every STOP_CHECK_STEPS steps, without blocking) and read the result after step 11.
    assert STOP_CHECK_STEPS == 10
    train = {"epochs": 2, "batch_size": 2, "lr": 0.01}
    cmd = lambda out: train_cmd(sine_dir, out, hardware="ddp-cpu-2", hw=DDP2, model=GRU, train=train,  # noqa: E731
                                torchrun=2)
    ref = run(cmd(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    first = run(cmd(out), signal_at="TERM@3@1")  # SIGTERM to rank 1 only, before step 3
    assert first.returncode != 0 and "checkpoint written" in first.stderr, first.stderr
    state = ckpt.read(out / "checkpoint.pt")
    assert (state["epoch"], state["partial"]["step_in_epoch"], state["steps_done"]) == (1, 11, 11)
    assert len(state["rng"]) == 2
    second = run(cmd(out))
    assert second.returncode == 0, second.stderr
    assert "resuming from checkpoint: epoch 1, step 11" in second.stderr
    a = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert strip(a) == strip(b) and a["final_params_sha256"] == b["final_params_sha256"]
    assert (a["segments"], b["segments"]) == (1, 2)
    assert history_without_times(tmp_path / "ref" / "history.csv") == history_without_times(out / "history.csv")


def test_ddp_cpu_2_run_writes_world_size_2_metrics(sine_dir, tmp_path):
    out = tmp_path / "ddp"
    train = {"epochs": 3, "batch_size": 8, "lr": 0.01}
    proc = run(train_cmd(sine_dir, out, hardware="ddp-cpu-2", hw=DDP2, model=GRU, train=train, torchrun=2))
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert (m["world_size"], m["nodes"], m["backend"], m["scaling"]) == (2, 1, "gloo", "strong")
    assert m["batch_size_per_process"] == 4 and m["global_batch_size"] == 8 and m["steps_per_epoch"] == 4
    assert 0 <= m["comm_fraction"] <= 1 and m["comm_probe"]["synced_s"] > 0
    assert 0 < m["step_time_median_s"] <= m["step_time_p95_s"]
    assert m["telemetry"]["host"]["ranks"] == 2 and m["telemetry"]["gpu"] is None
    ranks = {line.split(",")[2] for line in (out / "telemetry.csv").read_text().splitlines()[1:]}
    assert ranks == {"0", "1"}
    assert not (out / "checkpoint.pt").exists()


def test_killed_rank_fails_the_job_within_the_timeout(sine_dir, tmp_path):
    hw = {**DDP2, "timeout_s": 10}
    train = {"epochs": 100000, "batch_size": 8, "lr": 0.01}
    t0 = time.monotonic()
    proc = run(train_cmd(sine_dir, tmp_path / "ddp", hardware="ddp-cpu-2", hw=hw, model=GRU, train=train, torchrun=2),
               signal_at="KILL@3@1", timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode != 0
    assert "SIGKILL" in proc.stderr or "Signal 9" in proc.stderr, proc.stderr[-2000:]
    # start-up (a few seconds) + the process-group timeout bounds the failure
    assert elapsed < 10 + 30, elapsed
    assert not (tmp_path / "ddp" / "metrics.json").exists()


def test_launch_commands_of_the_full_study(workflow_copy):
    import yaml
    from conftest import snakemake

    config = yaml.safe_load((workflow_copy / "config/config.yaml").read_text())
    proc = snakemake(workflow_copy, "-n", "-p", "--forceall")
    cmds = {}
    for line in proc.stdout.splitlines():
        if "liquidbench train" in line and "--seed 0" in line and "--dataset sine " in line and "--model ltc " in line:
            hw = line.split("--hardware ")[1].split()[0]
            # the launcher: what stands between the log preamble (train.smk) and the command
            cmds[hw] = line.split("liquidbench train")[0].split("|| true;")[-1].replace("Shell command:", "").strip()
    assert cmds["cpu"] == cmds["gpu"] == ""
    # one process: no job step of its own (Slurm runs the whole command as one)
    assert cmds["ddp-1gpu"] == "torchrun --standalone --nnodes=1 --nproc_per_node=1 --no-python"
    # several processes on one node: a job step only inside a Slurm job
    cpus = {hw: config["hardware"][hw]["resources"]["cpus_per_task"] for hw in ("ddp-cpu-2", "ddp-4gpu-strong")}
    assert cmds["ddp-cpu-2"] == (
        f"${{SLURM_JOB_ID:+srun --nodes=1 --ntasks=1 --ntasks-per-node=1 --cpus-per-task={cpus['ddp-cpu-2']} "
        "--kill-on-bad-exit=1} torchrun --standalone --nnodes=1 --nproc_per_node=2 --no-python")
    assert cmds["ddp-4gpu-strong"].endswith("} torchrun --standalone --nnodes=1 --nproc_per_node=4 --no-python")
    assert f"--cpus-per-task={cpus['ddp-4gpu-strong']} --kill-on-bad-exit=1}}" in cmds["ddp-4gpu-strong"]
    multi = cmds["ddp-8gpu"]
    assert multi.startswith(f"srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task={config['hardware']['ddp-8gpu']['resources']['cpus_per_task']} "
                            "--kill-on-bad-exit=1 torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_id=$SLURM_JOB_ID")
    assert "--rdzv_endpoint=$(scontrol show hostnames \"$(squeue -h -j $SLURM_JOB_ID -o %N)\" | head -n 1):$((29500 + SLURM_JOB_ID % 1000))" in multi
    assert multi.endswith("--no-python")


def test_one_process_ddp_entry_wraps_ddp_without_comm_fraction(sine_dir, tmp_path):
    from liquidbench.train.loop import RunSpec, train

    hw = {"device": "cpu", "threads": 1, "backend": "gloo", "scaling": "weak", "resources": {"mem_mb": 1000, "runtime": 5}}
    m = train(RunSpec(dataset="sine", model="gru", hardware="ddp-cpu-1", seed=0, data_dir=sine_dir, out_dir=tmp_path,
                      model_spec=GRU, train_params={"epochs": 2, "batch_size": 8}, hardware_spec=hw))
    assert (m["ddp"], m["backend"], m["world_size"], m["comm_fraction"]) == (True, "gloo", 1, None)
    plain = train(RunSpec(dataset="sine", model="gru", hardware="cpu", seed=0, data_dir=sine_dir,
                          out_dir=tmp_path / "plain", model_spec=GRU, train_params={"epochs": 2, "batch_size": 8},
                          hardware_spec=CPU))
    assert plain["ddp"] is False and plain["final_params_sha256"] == m["final_params_sha256"]
