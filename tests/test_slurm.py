"""Slurm: `snakemake --profile profiles/slurm` (profiles/slurm/config.yaml) and the Slurm request of each
hardware configuration (liquidbench.slurm).

The tests marked slow run on a real two-node Slurm cluster that tests/slurm/cluster.sh starts on
this machine (network and UTS namespaces give each node its own address and host name; needs root
and Debian's munge, slurmctld, slurmd, slurm-client, iproute2; .ci/run installs them). Where a part
is missing, or a slurmctld not started here is running, they skip with the reason outside CI and
fail under CI (`CI` set), like the container tests. In the suite they take about 5 minutes on 2
cores (smoke study 82 s, killed rank 51-72 s, time limit 161 s), most of it waiting for Slurm's
kill and for the plugin's status checks (docs/measurements.md).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, missing_part, planned_jobs, tool_env
from liquidbench.slurm import job_resources
from liquidbench.train.settings import Hardware

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
CONF = Path("/etc/slurm/slurm.conf")
MARK = "# liquidbench test cluster"
NETNS = ("liquidbench-n1", "liquidbench-n2")  # the nodes' network namespaces (cluster.sh)
NODES = ("lbnode1", "lbnode2")
SITE_VARS = ("LIQUIDBENCH_SLURM_ACCOUNT", "LIQUIDBENCH_SLURM_PARTITION", "LIQUIDBENCH_SLURM_QOS")
# Test-cluster settings for the plugin (not in the user's profile): squeue instead of sacct (no
# slurmdbd here) and status checks every second instead of the production 40 s start / +10 s.
FAST_STATUS = (
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "1",
    "--slurm-keep-successful-logs",
)
INSTALL = "apt-get install munge slurmctld slurmd slurm-client iproute2 util-linux"


def daemon_pids(*names: str) -> set[int]:
    out = subprocess.run(["pgrep", "-x", "|".join(names)], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


def cluster_problem() -> str | None:
    """Why the test cluster cannot run here, or None."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    tools = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun", "ip", "nsenter", "unshare")
    missing = [tool for tool in tools if not shutil.which(tool, path=path)]
    if missing:
        return f"missing {', '.join(missing)} (install: {INSTALL})"
    if os.geteuid() != 0:
        return "needs root (Slurm daemons, network namespaces, /etc/slurm/slurm.conf)"
    foreign = daemon_pids("slurmctld", "slurmd")
    if foreign:
        return (f"a slurmctld or slurmd not started by these tests is running (pid {', '.join(map(str, sorted(foreign)))}); "
                "stop it to run them")
    if CONF.exists() and MARK not in CONF.read_text():
        return f"{CONF} belongs to another Slurm installation; not touching it"
    return None


def require_cluster():
    problem = cluster_problem()
    if problem:
        missing_part("Slurm test", problem)


def cluster(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def slurm_cluster():
    require_cluster()
    # Not under pytest's temporary directories: another pytest session on the machine may remove
    # those, and with them the process ids that `stop` needs.
    state = Path(tempfile.mkdtemp(prefix="liquidbench-slurm-"))
    try:
        start = cluster("start", str(state))
        if start.returncode:
            pytest.fail(f"could not start the test Slurm cluster:\n{start.stdout}{start.stderr}")
        yield state
    finally:
        # also after a failed start or a failing test: everything `start` made goes
        stop = cluster("stop", str(state))
        if stop.returncode == 0:
            shutil.rmtree(state, ignore_errors=True)


def on_cluster(cmd: list[str], cwd: Path | None = None, timeout: int = 60, check: bool = True) -> subprocess.CompletedProcess:
    """A command on the test cluster's login node (lbnode1's namespaces)."""
    proc = subprocess.run(["bash", str(CLUSTER), "exec", *cmd], cwd=cwd, env=tool_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """snakemake in ``workdir`` on the login node (without a cluster: here)."""
    return subprocess.run(["bash", str(CLUSTER), "exec", sys.executable, "-m", "snakemake", *args], cwd=workdir,
                          env=tool_env(), capture_output=True, text=True, timeout=timeout)


def snakemake_here(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=tool_env(),
                          capture_output=True, text=True, timeout=600)


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
    ids = on_cluster(["squeue", "-h", "-t", "all", "-o", "%i", "--name", run_id]).stdout.split()
    jobs = {}
    for jid in ids:
        text = on_cluster(["scontrol", "-o", "show", "job", jid]).stdout
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


def test_full_study_dry_run_lists_every_training_job_with_its_slurm_request(slurm_plan):
    # README's plan with the profile (conftest's slurm_plan), site values set: account proj42,
    # partition gpu-a100, no QOS.
    out = slurm_plan.stdout + slurm_plan.stderr
    assert slurm_plan.returncode == 0, out[-3000:]
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    study = config["study"]
    from liquidbench.study import study_runs

    n_train = len(study_runs(study))  # the product of the study's names, less its exclude
    assert n_train == 1560  # 6 data sets x 6 models x 10 hardware x 5 seeds, less sine_forecast's 240 DDP runs
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
    assert "--rdzv_endpoint=$(scontrol show hostnames \"$(squeue -h -j $SLURM_JOB_ID -o %N)\" | head -n 1):$((29500 + SLURM_JOB_ID % 1000))" in shell
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
    res = job_resources(Hardware.from_entry("x", hw))
    assert {k: res[k] for k in expected} == expected


def test_job_resources_rejects_cpus_not_divisible_by_ranks():
    hw = {"device": "cpu", "nodes": 1, "nproc_per_node": 2, "resources": {"cpus_per_task": 3, "mem_mb": 1, "runtime": 1}}
    with pytest.raises(ValueError, match=r"hardware 'odd': resources.cpus_per_task \(3, CPUs per node\)"):
        job_resources(Hardware.from_entry("odd", hw))


def test_job_resources_rejects_too_few_gpus():
    hw = {"device": "cuda", "nodes": 1, "nproc_per_node": 4, "resources": {"cpus_per_task": 4, "gpus": 2, "mem_mb": 1, "runtime": 1}}
    with pytest.raises(ValueError, match="hardware 'g'.*needs resources.gpus >= 4"):
        job_resources(Hardware.from_entry("g", hw))


class _Resources(dict):
    """A job's resources as the plugin reads them (``.get`` and attribute access)."""

    __getattr__ = dict.__getitem__


class _Job:
    """What snakemake-executor-plugin-slurm reads of a job to build its sbatch and srun calls."""

    def __init__(self, resources: dict, threads: int):
        self.resources = _Resources({k: v for k, v in resources.items() if v is not None})
        self.threads = threads


def plugin_request(name: str, hw: dict) -> tuple[str, str | None]:
    """(sbatch options, srun call of the job step or None) that the installed plugin builds for a
    training job on hardware entry ``name``: the request is the plugin's own code on the resources
    liquidbench.slurm gives the train rule."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting, get_gpu_setting, get_node_setting

    res = {**job_resources(Hardware.from_entry(name, hw)), "mem_mb": hw["resources"]["mem_mb"], "runtime": hw["resources"]["runtime"]}
    job = _Job(res, threads=hw.get("nproc_per_node", 1) * hw.get("threads", 1))
    params = dict(run_uuid="r", slurm_logfile="l", comment_str="c", account="", partition="", workdir="")
    sbatch = get_submit_command(job, params) + set_gres_string(job)
    # drop "sbatch --parsable --job-name r --output l --export=ALL --comment c"
    sbatch = " ".join(sbatch.split()[9:])
    gpu_job = "gpu" in (job.resources.get("gres") or "")
    # The jobstep plugin: an `mpi` job runs the rule's command itself (our launcher's srun);
    # any other job runs it as one task: srun -n1 with these settings.
    step = None if "mpi" in job.resources else " ".join(
        ["srun -n1", get_cpu_setting(job, gpu_job), get_gpu_setting(job), get_node_setting(job)])
    return sbatch, step


def sbatch_options(text: str) -> dict[str, str]:
    """'--nodes=2 --mem 100 -t 5' -> {'--nodes': '2', '--mem': '100', '-t': '5'}."""
    out, tokens = {}, text.split()
    while tokens:
        opt = tokens.pop(0)
        key, eq, value = opt.partition("=")
        out[key] = value if eq else tokens.pop(0)
    return out


def test_plugin_request_for_every_configured_entry_is_one_launcher_per_node():
    """The sbatch request of every hardware entry of the full study is docs/cluster.md's table, and no entry
    gets a request that makes Slurm start the command once per GPU: --ntasks-per-gpu (what the
    plugin adds to GPU jobs with `tasks` unless `tasks_per_gpu` is 0, snakemake-executor-plugin-slurm
    issues #316 and #459) never appears, and the one-process entries run as one task."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    requests = {name: plugin_request(name, hw) for name, hw in config["hardware"].items()}
    for name, (sbatch, step) in requests.items():
        assert "ntasks-per-gpu" not in sbatch, (name, sbatch)
        hw = config["hardware"][name]
        if hw.get("nodes", 1) * hw.get("nproc_per_node", 1) > 1:
            assert step is None, name  # the launcher's srun starts one torchrun per node
        else:
            assert step.split()[:2] == ["srun", "-n1"], (name, step)
    table = {  # docs/cluster.md, "What each job asks for" (option order as the plugin writes it)
        "cpu": "-t 240 --mem 8000 --nodes=1 --ntasks=1 --cpus-per-task=1",
        "gpu": "-t 120 --mem 16000 --nodes=1 --cpus-per-task=4 --gres=gpu:1",
        "ddp-2gpu": "-t 120 --mem 32000 --nodes=1 --ntasks-per-node=2 --cpus-per-task=4 --gres=gpu:2",
        "ddp-8gpu": "-t 120 --mem 64000 --nodes=2 --ntasks-per-node=4 --cpus-per-task=4 --gres=gpu:4",
        "ddp-cpu-2": "-t 240 --mem 8000 --nodes=1 --ntasks-per-node=2 --cpus-per-task=1",
    }
    for name, expected in table.items():
        assert requests[name][0].split() == expected.split(), name
    page = (REPO / "docs/cluster.md").read_text()
    for name, expected in table.items():
        row = re.search(rf"^\| `{re.escape(name)}` \| `([^`]*)`", page, re.M)
        assert row, f"docs/cluster.md's table has no row for {name}"
        assert sbatch_options(row.group(1)) == sbatch_options(expected), name
    # Two nodes of one GPU each: two tasks (one per node), not one task per GPU.
    two_nodes = {"device": "cuda", "nodes": 2, "nproc_per_node": 1, "backend": "nccl",
                 "resources": {"cpus_per_task": 8, "mem_mb": 100, "gpus": 1, "runtime": 5}}
    sbatch, step = plugin_request("two-nodes", two_nodes)
    assert sbatch.split() == "-t 5 --mem 100 --nodes=2 --ntasks=2 --cpus-per-task=8 --gres=gpu:1".split()
    assert step is None
    # The single-GPU entry's step: one task with its GPU.
    assert requests["gpu"][1].split() == "srun -n1 --cpus-per-task=4 --gpus=1 --nodes=1".split()


def test_grouping_puts_only_one_process_cpu_training_jobs_into_groups(tmp_path):
    wd = slurm_workflow(tmp_path)
    plain = snakemake_here(wd, "--profile", "profiles/slurm", "-n", "--configfile", ".test/config/config.yaml")
    grouped = snakemake_here(wd, "--profile", "profiles/slurm", "-n", "--configfile", ".test/config/config.yaml",
                             "--group-components", "cpu-short=4", "cpu-short-trials=2")
    assert plain.returncode == 0 and grouped.returncode == 0, (plain.stderr + grouped.stderr)[-3000:]
    assert "Group job" not in plain.stdout + plain.stderr
    out = grouped.stdout + grouped.stderr
    # Jobs inside a group are printed indented under "Group job cpu-short". The tuning stage's trials
    # (the smoke study tunes gru) group apart, in cpu-short-trials: a trial feeds its selection,
    # which feeds the runs, so one group of both would depend on itself.
    inside = re.findall(r"^    rule train:\n(?:    .*\n)*?\s+wildcards: .*hardware=([^,\s]+)", out, re.M)
    outside = re.findall(r"^rule train:\n(?:.*\n)*?\s+wildcards: .*hardware=([^,\s]+)", out, re.M)
    assert set(inside) == {"cpu"} and set(outside) == {"ddp-cpu-2"}, (inside, outside)
    n_groups = len(re.findall(r"Group job cpu-short \(", out))
    assert n_groups == -(-len(inside) // 4), (n_groups, len(inside))
    trials = re.findall(r"^    rule tune_trial:\n(?:    .*\n)*?\s+wildcards: .*hardware=([^,\s]+)", out, re.M)
    ungrouped = re.findall(r"^rule tune_trial:\n(?:.*\n)*?\s+wildcards: .*hardware=([^,\s]+)", out, re.M)
    assert trials and set(trials) == {"cpu"} and set(ungrouped) <= {"ddp-cpu-2"}, (trials, ungrouped)
    assert len(re.findall(r"Group job cpu-short-trials \(", out)) == -(-len(trials) // 2)


# --- a real cluster ------------------------------------------------------------------------------




def run_id(log: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", log)
    assert match, f"no SLURM run ID in snakemake's output:\n{log[-3000:]}"
    return match.group(1)


def submitted(log: str) -> dict[str, str]:
    """Snakemake job id -> Slurm job id, from the plugin's submission messages."""
    return dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))


# Two nodes x one gloo process; strong scaling splits the global batch as ddp-cpu-2 does, so the
# two give the same losses.
TWO_NODES = {"device": "cpu", "nodes": 2, "nproc_per_node": 1, "threads": 1, "backend": "gloo", "scaling": "strong",
             "timeout_s": 60, "resources": {"cpus_per_task": 1, "mem_mb": 2000, "runtime": 10}}


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["foreign-conf", "daemon-fails", "dead-cluster-left"])
def test_refused_or_failed_start_leaves_nothing_behind(tmp_path, how):
    """A start refused before anything runs (a slurm.conf not written by the script) or failing
    half-way (slurmctld rejects its configuration after munged, the namespaces and the conf exist)
    stops what it started: no daemon, namespace or configuration is left. A cluster that died
    without `stop` (its test session was killed) does not block the next start: its state directory
    says what it left, and `start` removes that first."""
    require_cluster()
    if how != "dead-cluster-left":
        # what a killed earlier session left would be cleared by the start below: clear it first,
        # so that "before" is what the start must leave as it found
        cleared = cluster("clear-dead")
        assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    # Runs before the module's cluster exists (file order): every daemon now is someone else's.
    before, ns_before = daemon_pids("munged", "slurmctld", "slurmd"), namespaces()
    run_dir = Path("/run/liquidbench-slurm")
    run_dir_before = run_dir.exists()  # a cluster stopped by hand earlier may have left it
    env = dict(os.environ)
    if how == "foreign-conf":
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text("ClusterName=somewhere_else\n")
    else:
        env["LIQUIDBENCH_SLURM_NODE_CPUS"] = "not-a-number"
    if how == "dead-cluster-left":
        if run_dir_before or ns_before & set(NETNS):
            # not a dead test cluster's (clear-dead ran in the cases before): CI must not skip this
            missing_part("Slurm test", f"{run_dir} or a liquidbench-n* namespace exists already and no dead "
                                       "test cluster's state directory names it: "
                                       "'tests/slurm/cluster.sh stop STATE_DIR' first")
        # what a killed test session leaves: the namespaces, $RUN naming its state directory, and
        # that directory's records, with a slurmctld pid that is no longer alive
        dead_state = tmp_path / "dead"
        dead_state.mkdir()
        for ns in NETNS:
            subprocess.run(["ip", "netns", "add", ns], check=True)
        (dead_state / "netns").write_text("".join(f"{ns}\n" for ns in NETNS))
        gone = subprocess.Popen(["true"])
        gone.wait()
        (dead_state / "slurmctld.pid").write_text(f"{gone.pid}\n")
        run_dir.mkdir()
        (run_dir / "state").write_text(f"{dead_state}\n")
    state = tmp_path / "state"
    try:
        proc = cluster("start", str(state), env=env)
    finally:
        if how == "foreign-conf":
            assert CONF.read_text() == "ClusterName=somewhere_else\n"  # not touched
            CONF.unlink()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    if how == "foreign-conf":
        assert "was not written by this script" in out
    else:
        # slurmctld and both slurmd read the bad value; whichever exits first is reported
        failed = re.search(r"cluster\.sh: (slurmctld|slurmd-1|slurmd-2) exited during start", out)
        assert failed and "stopping what it started" in out, out
        assert "not-a-number" in (state / f"{failed.group(1)}.out").read_text()
        assert not CONF.exists()
    if how == "dead-cluster-left":
        assert f"clearing a dead test cluster (no daemon of it alive) left in {tmp_path / 'dead'}" in out, out
        assert not (tmp_path / "dead" / "netns").exists()
    assert daemon_pids("munged", "slurmctld", "slurmd") == before, out
    assert namespaces() == ns_before
    assert not list(state.glob("*.pid")) if state.exists() else True
    assert run_dir.exists() == run_dir_before


@pytest.mark.slow
def test_smoke_study_through_slurm(slurm_cluster, tmp_path):
    wd = slurm_workflow(tmp_path)
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    # The sine signal: CfC on the CPU, the 2-rank DDP configuration and two nodes x one rank; GRU
    # (the tuned model) on the CPU. One seed keeps it to 15 Slurm jobs. What a model computes is the
    # same under Slurm as without it: every model runs in the smoke study (conftest's smoke_run),
    # LSTM among them on the 2-rank configuration; the two tests below train LSTMs on two nodes.
    config["hardware"]["ddp-2node"] = TWO_NODES
    config["study"] = {"datasets": ["sine"], "models": ["cfc", "gru"],
                       "hardware": ["cpu", "ddp-cpu-2", "ddp-2node"], "seeds": [0],
                       "exclude": [{"model": "gru", "hardware": ["ddp-cpu-2", "ddp-2node"]}]}
    write_config(wd / "study.yaml", config)

    proc = snakemake(wd, "--profile", "profiles/slurm", "--configfile", "study.yaml", *FAST_STATUS)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]

    study = config["study"]
    runs = [(m, h) for m in study["models"] for h in study["hardware"] if not (m == "gru" and h != "cpu")]
    assert len(runs) == 4
    run_dir = lambda m, h: wd / f"results/runs/sine/{m}/{h}/seed0"
    for model, hardware in runs:
        metrics = json.loads((run_dir(model, hardware) / "metrics.json").read_text())
        assert metrics["status"] == "ok"
        assert metrics["world_size"] == (1 if hardware == "cpu" else 2)
        assert metrics["nodes"] == (2 if hardware == "ddp-2node" else 1)
        assert (metrics["model"], metrics["hardware"]) == (model, hardware)

    # Two nodes: one rank on each node, telemetry of both, and the losses of the one-node
    # two-process run of the same seed (same global batch and sampler).
    for model in ("cfc",):
        with (run_dir(model, "ddp-2node") / "telemetry.csv").open() as f:
            ranks = {(row["rank"], row["host"]) for row in csv.DictReader(f)}
        assert ranks == {("0", "lbnode1"), ("1", "lbnode2")}, ranks
        two, one = (pd.read_csv(run_dir(model, h) / "history.csv") for h in ("ddp-2node", "ddp-cpu-2"))
        assert len(two) == len(one) == config["training"]["epochs"]
        for col in ("train_loss", "val_loss", "val_metric"):
            assert np.allclose(two[col], one[col], rtol=0, atol=1e-6), (model, col, two[col], one[col])
    assert len((wd / "results/tables/runs.csv").read_text().strip().splitlines()) == 1 + len(runs)
    assert (wd / "results/figures/train_time.png").stat().st_size > 0

    # Every job went through Slurm: one submission per prepare/train/evaluate job (the smoke study's
    # evaluation stage: one job per run, and the sine task's evaluation sets), each with its own
    # Slurm job id, Slurm log and a COMPLETED record; aggregation stayed on the submitting host.
    # the tuning stage's trials (the smoke study tunes gru) are training jobs too
    trials = [(m, h, k) for m, h in runs if m in config["tuning"]["models"] for k in range(config["tuning"]["trials"])]
    # and the scaling model's probes: a step probe per model with DDP runs (on the CPU), an all-reduce
    # probe per DDP entry, the two-node one across both nodes
    step_probes = sorted({m for m, h in runs if h != "cpu"})
    allreduce_probes = sorted({h for _, h in runs if h != "cpu"})
    ids = submitted(log)
    assert len(ids) == 2 + 2 * len(runs) + len(trials) + len(step_probes) + len(allreduce_probes), log[-3000:]
    jobs = slurm_jobs(run_id(log))
    assert set(jobs) == set(ids.values())
    assert all(job["JobState"] == "COMPLETED" for job in jobs.values()), jobs
    comments = sorted(job["Comment"] for job in jobs.values())
    assert comments == sorted(["rule_prepare_synthetic_wildcards_sine", "rule_prepare_evaluation_sets_wildcards_sine"]
                              + [f"rule_{rule}_wildcards_sine_{m}_{h}_0" for m, h in runs
                                 for rule in ("train", "evaluate")]
                              + [f"rule_tune_trial_wildcards_sine_{m}_{h}_{k}" for m, h, k in trials]
                              + [f"rule_probe_step_wildcards_sine_{m}_cpu" for m in step_probes]
                              + [f"rule_probe_allreduce_wildcards_{h}" for h in allreduce_probes])
    for jid, job in jobs.items():
        logs = list((wd / ".snakemake/slurm_logs").rglob(f"{jid}.log"))
        assert len(logs) == 1, f"no Slurm log for job {jid}"
        if job["Comment"] == "rule_probe_allreduce_wildcards_ddp-2node":
            assert (job["NumNodes"], job["NumTasks"], job["NodeList"]) == ("2", "2", "lbnode[1-2]"), job
        if not job["Comment"].startswith("rule_train"):
            continue
        if "ddp-2node" in job["Comment"]:
            # Both nodes, one task (one torchrun) on each.
            assert (job["NumNodes"], job["NumTasks"], job["NodeList"]) == ("2", "2", "lbnode[1-2]"), job
        elif "ddp-cpu-2" in job["Comment"]:
            # One job of two tasks (ranks), one CPU each, as the hardware entry asks.
            assert (job["NumNodes"], job["NumTasks"], job["NumCPUs"]) == ("1", "2", "2"), job
        else:
            assert (job["NumTasks"], job["NumCPUs"], job["TimeLimit"]) == ("1", "1", "00:10:00"), job

    # A second run plans nothing: outputs are complete and up to date.
    again = snakemake(wd, "--profile", "profiles/slurm", "--configfile", "study.yaml", "-n", *FAST_STATUS)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def slurm_processes() -> dict[int, dict[str, str]]:
    """pid -> environment (and "cmdline") of every process on this machine started by Slurm."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw if "=" in item)
        if "SLURM_JOB_ID" in env:
            found[int(proc.name)] = {**env, "cmdline": cmdline}
    return found


def job_processes(slurm_job_id: str) -> dict[int, dict[str, str]]:
    return {pid: env for pid, env in slurm_processes().items() if env["SLURM_JOB_ID"] == slurm_job_id}


def is_rank(env: dict[str, str]) -> bool:
    """A training process started by torchrun (not the shell or srun that name it)."""
    return "liquidbench train" in env["cmdline"] and "torchrun" not in env["cmdline"] and "RANK" in env


def slurm_time(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def wait_for(predicate, what: str, deadline_s: float, proc: subprocess.Popen | None = None):
    """Poll until predicate() is true; fail after deadline_s (a generous bound, not a measurement)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"snakemake ended ({proc.returncode}) while waiting for {what}:\n{out[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {deadline_s} s waiting for {what}")


def prepare_here(workdir: Path) -> None:
    """Prepare the study's data sets on this host, without Slurm, so that the Slurm run that follows
    starts with its training job. Preparing through Slurm is test_smoke_study_through_slurm's; here
    it would cost about 12 s: the plugin checks a job's status 1 s after submitting it, then 11 s
    later, 10 s more each time after that until some job ends."""
    proc = snakemake_here(workdir, "--cores", "1", "--configfile", "study.yaml", "--until", "prepare_synthetic")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def snakemake_background(workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(CLUSTER), "exec", sys.executable, "-m", "snakemake", *args], cwd=workdir,
                            env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_rank_killed_on_second_node_fails_the_job_on_both_nodes(slurm_cluster, tmp_path):
    wd = slurm_workflow(tmp_path)
    timeout_s = 15
    config = {
        "study": {"datasets": ["sig"], "models": ["lstm"], "hardware": ["ddp-2node"], "seeds": [0]},
        "training": {"epochs": 6, "batch_size": 16, "lr": 0.005},
        "datasets": {"sig": {"kind": "sine", "params": {"n_sequences": 2048, "seq_len": 32, "seed": 0}}},
        "models": {"lstm": {"type": "lstm", "hidden_size": 32}},
        "hardware": {"ddp-2node": {**TWO_NODES, "timeout_s": timeout_s}},
    }
    write_config(wd / "study.yaml", config)
    run = wd / "results/runs/sig/lstm/ddp-2node/seed0"
    args = ("--profile", "profiles/slurm", "--configfile", "study.yaml", *FAST_STATUS, "--retries", "0", "--until", "train")
    prepare_here(wd)
    proc = snakemake_background(wd, *args)
    try:
        # Once the first epoch is done (its checkpoint exists), kill rank 1 on lbnode2.
        wait_for(lambda: (run / "checkpoint.pt").exists(), "the first epoch's checkpoint", 300, proc)
        jid = wait_for(lambda: next((env["SLURM_JOB_ID"] for env in slurm_processes().values() if is_rank(env)), None),
                       "the ranks", 60, proc)
        ranks = {env["SLURMD_NODENAME"]: pid for pid, env in job_processes(jid).items() if is_rank(env)}
        assert set(ranks) == set(NODES), ranks
        os.kill(ranks["lbnode2"], 9)
        killed_at = time.time()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out[-3000:]
    assert "Error in rule train" in out, out[-3000:]
    job = slurm_jobs(run_id(out))[jid]
    assert job["JobState"] == "FAILED", job
    # Ended on both nodes: within the process-group timeout of the kill (plus Slurm's bookkeeping
    # of whole seconds), and no process of the job is left on either node.
    assert slurm_time(job["EndTime"]) - killed_at <= timeout_s + 10, (job["EndTime"], killed_at)
    wait_for(lambda: not job_processes(jid), f"the processes of job {jid} to end", 30)
    assert not (run / "metrics.json").exists()

    # A rerun starts and finishes the run (from the last epoch's checkpoint): nothing of the
    # failed job stands in its way.
    again = snakemake(wd, *args)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log[-4000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["status"], metrics["world_size"], metrics["nodes"]) == ("ok", 2, 2)
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == list(range(1, 7))
    assert not (run / "checkpoint.pt").exists()


@pytest.mark.slow
def test_time_limit_on_two_nodes_signals_every_rank_and_resumes(slurm_cluster, tmp_path):
    wd = slurm_workflow(tmp_path)
    # One training on two nodes under a 1-minute time limit in its first attempt, 30 minutes in the
    # retry (a retry under 1 minute could finish training and be killed while Snakemake checks its
    # outputs, which would discard the run). Slurm kills a job 60 to 90 s after it starts, and an
    # epoch here takes about 1.2 s on this 2-core machine: 12 epochs alone would finish long before
    # the kill. So while the first attempt runs, busy loops share the cores with its ranks, twelve
    # sessions a core. Linux shares a core between sessions (autogroups), not processes, and each
    # rank is a session of its own (a Slurm task), so each loop gets a session too. Each rank then
    # runs about 14 times slower (an epoch 16 s, and its start-up 30 s): its training cannot finish
    # inside the limit on any machine up to twice as fast, and the limit is reached mid-training.
    # The loops end at the first SIGTERM, so that the checkpoint and the retry, which trains the
    # rest (about 8 epochs, 19 s here), run at full speed. Snakemake sees each attempt end at the
    # Slurm plugin's next status check (1 s after the first submission, then 11, 21, 31, ... s apart
    # until a job succeeds): the first attempt's end 64 or 105 s after its submission, the retry's
    # 41 or 51 s after its own, so this test takes 110 to 160 s whatever the retry trains.
    # That a 2-rank run stopped by SIGTERM mid-epoch resumes bit for bit to the uninterrupted run's
    # parameters is tests/test_hardware.py's test_ddp_sigterm_on_one_rank_stops_both_at_the_same_step_
    # and_resumes_identically; that two nodes compute what one node's two processes do is
    # test_smoke_study_through_slurm. Here: Slurm's limit reaches every rank on both nodes, and the
    # retry resumes the checkpoint they wrote instead of starting again.
    epochs = 12
    n_loops = 12 * len(os.sched_getaffinity(0)) - 2
    config = {
        "study": {"datasets": ["long"], "models": ["lstm"], "hardware": ["limited"], "seeds": [0]},
        "training": {"epochs": epochs, "batch_size": 16, "lr": 0.005},
        "datasets": {"long": {"kind": "sine", "params": {"n_sequences": 8192, "seq_len": 64, "seed": 0}}},
        "models": {"lstm": {"type": "lstm", "hidden_size": 64}},
        "hardware": {"limited": TWO_NODES},
    }
    write_config(wd / "study.yaml", config)
    limited = wd / "results/runs/long/lstm/limited/seed0"
    # No early signal: this test is about the time limit itself (SIGTERM, then SIGKILL after
    # KillWait), the case --signal only makes earlier.
    runtime = "train:runtime=1 if attempt == 1 else 30"
    prepare_here(wd)
    proc = snakemake_background(wd, "--profile", "profiles/slurm", "--configfile", "study.yaml", *FAST_STATUS, "--retries", "1",
                                "--set-resources", "train:slurm_extra=''", runtime, "--until", "train")
    # Every rank reports SIGTERM on stderr (train.log); read it as the run goes (a retry that resumes
    # keeps the earlier lines, one that starts fresh does not).
    signalled, loops, loops_ran = set(), [], False
    try:
        end = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < end:
            try:
                signalled |= set(re.findall(r"SIGTERM received by rank (\d+) on (\S+)", (limited / "train.log").read_text()))
            except OSError:
                pass
            if not loops_ran and any(is_rank(env) for env in slurm_processes().values()):
                loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                         for _ in range(n_loops)]
                loops_ran = True
            if loops and signalled:
                for loop in loops:
                    loop.kill()
                    loop.wait()
                loops = []
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=5)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
        if proc.poll() is None:
            proc.kill()
    assert loops_ran
    assert proc.returncode == 0, out[-5000:]
    assert signalled == {("0", "lbnode1"), ("1", "lbnode2")}, signalled

    train_jobs = {jid: job for jid, job in slurm_jobs(run_id(out)).items() if "limited" in job["Comment"]}
    attempts = [(train_jobs[j]["JobState"], train_jobs[j]["TimeLimit"]) for j in sorted(train_jobs, key=int)]
    assert attempts == [("TIMEOUT", "00:01:00"), ("COMPLETED", "00:30:00")], attempts
    assert all(job["NumNodes"] == "2" for job in train_jobs.values())

    metrics = json.loads((limited / "metrics.json").read_text())
    assert (metrics["status"], metrics["segments"], metrics["world_size"], metrics["nodes"]) == ("ok", 2, 2, 2)
    log = (limited / "train.log").read_text()
    resumed = re.findall(r"resuming from checkpoint: epoch (\d+), step (\d+)", log)
    assert len(set(resumed)) == 1 and 0 < int(resumed[0][0]) < epochs, resumed  # every rank from the same step
    history = pd.read_csv(limited / "history.csv")
    assert list(history["epoch"]) == list(range(1, epochs + 1)) and history["train_loss"].notna().all()
    assert not (limited / "checkpoint.pt").exists()
