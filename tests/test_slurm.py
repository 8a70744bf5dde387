"""Slurm: `snakemake --profile profiles/slurm` (profiles/slurm/config.yaml) and the Slurm request of each
hardware configuration (liquidbench.slurm).

The tests marked slow run on a real one-node Slurm cluster that tests/slurm/cluster.sh starts on
this machine (needs root and Debian's munge, slurmctld, slurmd, slurm-client; .ci/run installs
them). Where they are missing the fixture fails with the script's message: these tests are part
of the suite, not optional. Together they take about three minutes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow, planned_jobs, snakemake
from liquidbench.slurm import job_resources

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
SITE_VARS = ("LIQUIDBENCH_SLURM_ACCOUNT", "LIQUIDBENCH_SLURM_PARTITION", "LIQUIDBENCH_SLURM_QOS")
# Test-cluster settings for the plugin (not in the user's profile): squeue instead of sacct (no
# slurmdbd here) and status checks every second instead of the production 40 s start / +10 s.
FAST_STATUS = (
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "1",
    "--slurm-keep-successful-logs",
)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm-state")
    start = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True)
    if start.returncode:
        pytest.fail(f"could not start the test Slurm cluster:\n{start.stdout}{start.stderr}")
    yield state
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, text=True)


@pytest.fixture(autouse=True)
def no_site_values(monkeypatch):
    for var in SITE_VARS:
        monkeypatch.delenv(var, raising=False)


def slurm_workflow(tmp_path: Path) -> Path:
    wd = copy_workflow(tmp_path / "wf")
    shutil.copytree(REPO / "profiles" / "slurm", wd / "profiles" / "slurm")
    return wd


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def slurm_jobs(run_id: str) -> dict[str, dict]:
    """scontrol's record of every job of one Snakemake run (job name = the plugin's run id)."""
    ids = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i", "--name", run_id],
                         capture_output=True, text=True, check=True).stdout.split()
    jobs = {}
    for jid in ids:
        text = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True, text=True,
                              check=True).stdout
        jobs[jid] = dict(item.split("=", 1) for item in text.split() if "=" in item)
    return jobs


def dry_run_resources(output: str) -> dict[str, dict]:
    """hardware name -> resources of the first training job planned on it (`snakemake -n`)."""
    found = {}
    for block in re.split(r"\n(?=rule \S+:)", output):
        if not block.startswith("rule train:"):
            continue
        hw = re.search(r"hardware=([^,\s]+)", block).group(1)
        res = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
        found.setdefault(hw, dict(kv.split("=", 1) for kv in res.split(", ")))
    return found


# --- the mapping, without a cluster ------------------------------------------------------------


def test_full_study_dry_run_lists_every_training_job_with_its_slurm_request(tmp_path, monkeypatch):
    wd = slurm_workflow(tmp_path)
    monkeypatch.setenv("LIQUIDBENCH_SLURM_ACCOUNT", "proj42")
    monkeypatch.setenv("LIQUIDBENCH_SLURM_PARTITION", "gpu-a100")
    # The full study names its image; planning it with the profile's apptainer needs apptainer,
    # which this machine lacks (tests/test_container_config.py covers that path): plan without it.
    proc = snakemake(wd, "--profile", "profiles/slurm", "-n", "--config", "container=null")
    out = proc.stdout + proc.stderr
    config = yaml.safe_load((wd / "config/config.yaml").read_text())
    study = config["study"]
    n_train = len(study["datasets"]) * len(study["models"]) * len(study["hardware"]) * len(study["seeds"])
    assert sum(rule == "train" for rule, _ in planned_jobs(out)) == n_train
    assert len(re.findall(r"rule train:\n(?:.*\n)*?\s+resources: .*slurm_account=proj42", out)) == n_train

    res = dry_run_resources(out)
    assert set(res) == set(study["hardware"])
    for hw in res.values():
        assert hw["slurm_account"] == "proj42" and hw["slurm_partition"] == "gpu-a100"
        assert "qos" not in hw  # unset variable: no --qos
        assert hw["slurm_extra"] == "--signal=TERM@300"
    pick = lambda hw, *keys: {k: res[hw].get(k) for k in keys}
    keys = ("nodes", "tasks", "tasks_per_node", "cpus_per_task", "mem_mb", "runtime", "gres", "gpus", "mpi")
    assert pick("cpu", *keys) == dict(zip(keys, ["1", None, None, "1", "8000", "240", None, "0", None]))
    assert pick("gpu", *keys) == dict(zip(keys, ["1", None, None, "4", "16000", "120", "gpu:1", "1", None]))
    assert pick("ddp-2gpu", *keys) == dict(zip(keys, ["1", None, "2", "4", "32000", "120", "gpu:2", "2", "srun"]))
    # Two nodes x 4 ranks: 4 tasks and 4 GPUs per node, 16 CPUs per node (4 per rank).
    assert pick("ddp-8gpu", *keys) == dict(zip(keys, ["2", None, "4", "4", "64000", "120", "gpu:4", "8", "srun"]))
    assert pick("ddp-cpu-2", *keys) == dict(zip(keys, ["1", None, "2", "1", "8000", "240", None, "0", "srun"]))

    # Multi-node: one torchrun per node, started by srun with the node's CPUs, rendezvous on the
    # allocation's first node; single-node DDP becomes a job step only inside a Slurm job.
    shell = re.search(r"srun [^\n]*hardware ddp-8gpu[^\n]*", out).group(0)
    assert shell.startswith("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=16 --kill-on-bad-exit=1 "
                            "torchrun --nnodes=2 --nproc_per_node=4")
    assert "--rdzv_endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):$((29500 + SLURM_JOB_ID % 1000))" in shell
    assert re.search(r"\$\{SLURM_JOB_ID:\+srun --nodes=1 --ntasks=1 --ntasks-per-node=1 --cpus-per-task=8 --kill-on-bad-exit=1\} "
                     r"torchrun --standalone --nnodes=1 --nproc_per_node=2 --no-python liquidbench train [^\n]*ddp-2gpu", out)


@pytest.mark.parametrize(
    "hw, expected",
    [
        ({"device": "cpu", "nodes": 1, "nproc_per_node": 1, "resources": {"cpus_per_task": 3, "mem_mb": 100, "runtime": 5, "gpus": 0}},
         {"nodes": 1, "cpus_per_task": 3, "tasks": None, "tasks_per_node": None, "gres": None, "gpus": 0, "mpi": None}),
        # one rank per node on two nodes: --ntasks=2, and no --ntasks-per-gpu from the plugin
        ({"device": "cuda", "nodes": 2, "nproc_per_node": 1, "resources": {"cpus_per_task": 8, "mem_mb": 100, "runtime": 5, "gpus": 1}},
         {"nodes": 2, "cpus_per_task": 8, "tasks": 2, "tasks_per_gpu": 0, "tasks_per_node": None, "gres": "gpu:1", "gpus": 2, "mpi": "srun"}),
    ],
)
def test_job_resources(hw, expected):
    res = job_resources("x", hw)
    assert {k: res[k] for k in expected} == expected


def test_job_resources_rejects_cpus_not_divisible_by_ranks():
    hw = {"device": "cpu", "nodes": 1, "nproc_per_node": 2, "resources": {"cpus_per_task": 3, "mem_mb": 1, "runtime": 1}}
    with pytest.raises(ValueError, match=r"hardware 'odd': resources.cpus_per_task \(3, CPUs per node\)"):
        job_resources("odd", hw)


def test_job_resources_rejects_too_few_gpus():
    hw = {"device": "cuda", "nodes": 1, "nproc_per_node": 4, "resources": {"cpus_per_task": 4, "gpus": 2, "mem_mb": 1, "runtime": 1}}
    with pytest.raises(ValueError, match="hardware 'g'.*needs resources.gpus >= 4"):
        job_resources("g", hw)


# --- a real cluster ------------------------------------------------------------------------------




def run_id(log: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", log)
    assert match, f"no SLURM run ID in snakemake's output:\n{log[-3000:]}"
    return match.group(1)


def submitted(log: str) -> dict[str, str]:
    """Snakemake job id -> Slurm job id, from the plugin's submission messages."""
    return dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))


@pytest.mark.slow
def test_smoke_study_through_slurm(slurm_cluster, tmp_path):
    wd = slurm_workflow(tmp_path)
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    # Every model on the sine signal, on the CPU and the 2-rank DDP configuration; one seed keeps
    # it to 9 Slurm jobs.
    config["study"] = {"datasets": ["sine"], "models": config["study"]["models"],
                       "hardware": ["cpu", "ddp-cpu-2"], "seeds": [0]}
    write_config(wd / "study.yaml", config)

    proc = snakemake(wd, "--profile", "profiles/slurm", "--configfile", "study.yaml", *FAST_STATUS)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]

    study = config["study"]
    runs = [(m, h) for m in study["models"] for h in study["hardware"]]
    for model, hardware in runs:
        metrics = json.loads((wd / f"results/runs/sine/{model}/{hardware}/seed0/metrics.json").read_text())
        assert metrics["status"] == "ok"
        assert metrics["world_size"] == (2 if hardware == "ddp-cpu-2" else 1)
        assert (metrics["model"], metrics["hardware"]) == (model, hardware)
    assert len((wd / "results/tables/runs.csv").read_text().strip().splitlines()) == 1 + len(runs)
    assert (wd / "results/figures/train_time.png").stat().st_size > 0

    # Every job went through Slurm: one submission per prepare/train job, each with its own Slurm
    # job id, Slurm log and a COMPLETED record; aggregation stayed on the submitting host.
    ids = submitted(log)
    assert len(ids) == 1 + len(runs), log[-3000:]
    jobs = slurm_jobs(run_id(log))
    assert set(jobs) == set(ids.values())
    assert all(job["JobState"] == "COMPLETED" for job in jobs.values()), jobs
    comments = sorted(job["Comment"] for job in jobs.values())
    assert comments == sorted(["rule_prepare_synthetic_wildcards_sine"]
                              + [f"rule_train_wildcards_sine_{m}_{h}_0" for m, h in runs])
    for jid, job in jobs.items():
        logs = list((wd / ".snakemake/slurm_logs").rglob(f"{jid}.log"))
        assert len(logs) == 1, f"no Slurm log for job {jid}"
        if "ddp-cpu-2" in job["Comment"]:
            # One job of two tasks (ranks), one CPU each, as the hardware entry asks.
            assert (job["NumNodes"], job["NumTasks"], job["NumCPUs"]) == ("1", "2", "2"), job
        elif job["Comment"].startswith("rule_train"):
            assert (job["NumTasks"], job["NumCPUs"], job["TimeLimit"]) == ("1", "1", "00:10:00"), job

    # A second run plans nothing: outputs are complete and up to date.
    again = snakemake(wd, "--profile", "profiles/slurm", "--configfile", "study.yaml", "-n", *FAST_STATUS)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_training_killed_at_time_limit_resumes_from_checkpoint(slurm_cluster, tmp_path):
    wd = slurm_workflow(tmp_path)
    # About 100 s of training on one core, under a 1-minute time limit: no single attempt can
    # finish (Slurm kills a job 60 to 90 s after it starts), so completing needs a resume.
    config = {
        "study": {"datasets": ["long"], "models": ["lstm"], "hardware": ["cpu"], "seeds": [0]},
        "training": {"epochs": 25, "batch_size": 16, "lr": 0.005},
        "datasets": {"long": {"kind": "sine", "params": {"n_sequences": 8192, "seq_len": 64, "seed": 0}}},
        "models": {"lstm": {"type": "lstm", "hidden_size": 64}},
        "hardware": {"cpu": {"device": "cpu", "threads": 1,
                             "resources": {"cpus_per_task": 1, "mem_mb": 2000, "runtime": 1}}},
    }
    write_config(wd / "study.yaml", config)
    # No early signal: this test is about the time limit itself (SIGTERM, then SIGKILL after
    # KillWait), the case --signal only makes earlier.
    proc = snakemake(wd, "--profile", "profiles/slurm", "--configfile", "study.yaml", *FAST_STATUS,
                     "--set-resources", "train:slurm_extra=''", timeout=480)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]

    run = wd / "results/runs/long/lstm/cpu/seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    history = (run / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 25
    assert not (run / "checkpoint.pt").exists()

    train_jobs = {jid: job for jid, job in slurm_jobs(run_id(log)).items()
                  if job["Comment"].startswith("rule_train")}
    states = [train_jobs[j]["JobState"] for j in sorted(train_jobs, key=int)]
    assert len(states) >= 2 and states[-1] == "COMPLETED", states
    assert all(s == "TIMEOUT" for s in states[:-1]), states
    assert all(job["TimeLimit"] == "00:01:00" for job in train_jobs.values())
