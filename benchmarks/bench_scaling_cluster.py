"""The DDP scaling model against measured runs on one node and across two nodes of the Slurm test cluster.

The sine part of the local study (`config/local.yaml`: 512 sequences of 48 steps, batch 32, 15
epochs, CfC and LSTM, 3 seeds) on three hardware entries: ``cpu`` (one process), ``ddp-cpu-2``
(two gloo processes on one node) and ``ddp-2node`` (one process on each of the two nodes; the
all-reduce crosses the veth link between their network namespaces), every job through Slurm
(tests/slurm/cluster.sh: two nodes in network namespaces on this machine), one job at a time (``-j
1``: a DDP run never shares the cores with another job), with the probes of the scaling model.
Printed: the ``scaling_model`` table (predicted speedup at each width against the measured one of
steady epochs, the error, the knee) and each run's steady epoch time and comm_probe all-reduce.

Needs root and Debian's munge, slurmctld, slurmd, slurm-client, iproute2 and util-linux (what
tests/test_slurm.py needs); says why and returns otherwise. About 10 minutes on a 2-core machine.
LIQUIDBENCH_SCALING_CLUSTER_SEEDS and LIQUIDBENCH_SCALING_CLUSTER_EPOCHS change the seeds (3) and
epochs (15); the outputs stay in a temporary directory printed at the end
(LIQUIDBENCH_SCALING_CLUSTER_KEEP=1 keeps them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
TWO_NODES = {"device": "cpu", "nodes": 2, "nproc_per_node": 1, "threads": 1, "backend": "gloo",
             "scaling": "strong", "timeout_s": 120, "resources": {"cpus_per_task": 1, "mem_mb": 4000, "runtime": 30}}
# status checks every second (the test suite's settings): the plugin's defaults wait 40 s first
STATUS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
          "--seconds-between-status-checks", "1")


def study_config(root: Path, seeds: int, epochs: int) -> dict:
    config = yaml.safe_load((REPO / "config" / "local.yaml").read_text())
    config["root"] = str(root)
    config["study"] = {"datasets": ["sine"], "models": ["cfc", "lstm"], "hardware": ["cpu", "ddp-cpu-2", "ddp-2node"],
                       "seeds": list(range(seeds))}
    config["hardware"]["ddp-2node"] = TWO_NODES
    config["training"]["epochs"] = epochs
    config["datasets"] = {"sine": config["datasets"]["sine"]}
    config["results"]["targets"] = {"sine": config["results"]["targets"]["sine"]}
    config.pop("evaluation", None)  # not what this measures
    return config


def problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (the cluster's daemons and network namespaces)"
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch", "ip", "nsenter", "unshare")
               if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]
    if missing:
        return (f"{', '.join(missing)} not found: apt-get install munge slurmctld slurmd slurm-client iproute2 "
                f"util-linux")
    return None


def steady_times(root: Path) -> list[str]:
    lines = ["| model | hardware | seed | steady epoch [s] | train time [s] | comm_probe all-reduce [ms] |",
             "|---|---|---|---|---|---|"]
    for path in sorted((root / "results" / "runs" / "sine").glob("*/*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        probe = m.get("comm_probe") or {}
        ar = f"{1e3 * probe['allreduce_s']:.3f}" if probe.get("allreduce_s") is not None else ""
        lines.append(f"| {m['model']} | {m['hardware']} | {m['seed']} | {m['steady_epoch_time_s']:.4f} | "
                     f"{m['train_time_s']:.3f} | {ar} |")
    return lines


def main() -> None:
    why = problem()
    if why:
        print(f"bench_scaling_cluster: skipped: {why}")
        return
    seeds = int(os.environ.get("LIQUIDBENCH_SCALING_CLUSTER_SEEDS", "3"))
    epochs = int(os.environ.get("LIQUIDBENCH_SCALING_CLUSTER_EPOCHS", "15"))
    work = Path(tempfile.mkdtemp(prefix="liquidbench-scaling-cluster-"))
    state = work / "slurm-state"
    state.mkdir()
    config = work / "study.yaml"
    config.write_text(yaml.safe_dump(study_config(work / "study", seeds, epochs), sort_keys=False))
    # a run stopped from outside (SIGTERM) still stops the cluster (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"bench_scaling_cluster: stopped; outputs in {work}"))
    start = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True)
    try:
        if start.returncode:
            print(f"bench_scaling_cluster: the test cluster did not start:\n{start.stdout}{start.stderr}")
            return
        # the jobs find this environment's tools (torchrun) first, as the tests' do
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        t0 = time.monotonic()
        run = subprocess.run(["bash", str(CLUSTER), "exec", sys.executable, "-m", "snakemake", "--profile",
                              "profiles/slurm", "--configfile", str(config), "--config", "container=null", "-j", "1",
                              "--retries", "0",
                              *STATUS], cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - t0
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, text=True)
    if run.returncode:
        print(f"bench_scaling_cluster: the study failed (outputs in {work}):\n{(run.stdout + run.stderr)[-4000:]}")
        return
    root = work / "study"
    print(f"{seeds} seed(s) x {epochs} epochs, sine, CfC and LSTM; cpu, ddp-cpu-2 (one node), ddp-2node (two "
          f"nodes); {seconds:.0f} s through Slurm, one job at a time; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("\n".join(steady_times(root)))
    print()
    print((root / "results" / "tables" / "scaling_model.md").read_text())
    if os.environ.get("LIQUIDBENCH_SCALING_CLUSTER_KEEP") == "1":
        print(f"outputs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
