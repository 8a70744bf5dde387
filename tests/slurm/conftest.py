"""A real one-node Slurm cluster for the tests in this directory (tests/slurm/cluster.sh).

The cluster needs root and Debian's munge, slurmctld, slurmd and slurm-client (installed by
.ci/run). Where they are missing the fixture fails with the script's message: these tests are
part of the suite, not optional.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
# Test-cluster settings for the plugin (not in the user's profile): squeue instead of sacct (no
# slurmdbd here) and status checks every second instead of the production 40 s start / +10 s.
FAST_STATUS = [
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "1",
    "--slurm-keep-successful-logs",
]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm-state")
    start = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True)
    if start.returncode:
        pytest.fail(f"could not start the test Slurm cluster:\n{start.stdout}{start.stderr}")
    yield state
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, text=True)


def workflow_copy(dest: Path) -> Path:
    """The workflow (Snakefile, rules, configs, profile) in a scratch directory."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", dest)
    for name in ("workflow", "config", "slurm"):
        shutil.copytree(ROOT / name, dest / name)
    return dest


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run snakemake in workdir with this environment's bin directory first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for var in ("LIQUIDBENCH_SLURM_ACCOUNT", "LIQUIDBENCH_SLURM_PARTITION", "LIQUIDBENCH_SLURM_QOS"):
        env.pop(var, None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
    )


def slurm_jobs(run_id: str) -> dict[str, dict]:
    """scontrol's record of every job of one Snakemake run (job name = the plugin's run id)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i", "--name", run_id],
                         capture_output=True, text=True, check=True).stdout.split()
    jobs = {}
    for jid in out:
        text = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True, text=True,
                              check=True).stdout
        fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
        jobs[jid] = fields
    return jobs
