"""Shared fixtures: a temporary copy of the workflow and a Snakemake runner."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# the workflow (workflow/Snakefile, rules, schema, captions), the study files and the test study
WORKFLOW_FILES = ["workflow", "config", ".test"]


def missing_part(what: str, problem: str) -> None:
    """A test needs a part this machine lacks: outside CI it skips, saying what is missing and how to
    install it; under CI (`CI` set, .ci/run installs every part) it fails instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} under CI: {problem}")
    pytest.skip(f"{what}: {problem}")


def tool_env() -> dict:
    """The environment for subprocesses: this interpreter's bin directory first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; on failure the assertion shows its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def planned_jobs(dry_run_output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a ``snakemake -n`` run plans."""
    jobs = []
    for block in re.split(r"\n(?=rule \S+:)", dry_run_output):
        m = re.match(r"rule (\S+):", block)
        if not m:
            continue
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        wildcards = dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}
        jobs.append((m.group(1), wildcards))
    return jobs


def smoke_data_args(workdir: Path) -> list[str]:
    """The smoke study's sources: the real traffic file and real UCI HAR from ../shared/data through
    the mirror, and a small synthetic HAR archive (features561) built in the original layout into
    the copy's data/smoke-mirror/."""
    from har_archive import SMOKE_ARGS, SMOKE_FILE, build_har_archive

    archive = workdir / "data" / "smoke-mirror" / SMOKE_FILE
    if not archive.exists():
        build_har_archive(archive, **SMOKE_ARGS)
    return ["--config", f"data_mirror=[{SHARED / 'data'}, data/smoke-mirror]"]


@pytest.fixture
def workflow_copy(tmp_path) -> Path:
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="session")
def full_plan(tmp_path_factory) -> subprocess.CompletedProcess:
    """`snakemake -n` in a copy of the workflow, once per session: the full study's plan
    (config/config.yaml, the Snakefile's default) and README's command as written; tests read its
    output."""
    return snakemake(copy_workflow(tmp_path_factory.mktemp("full") / "wf"), "-n", check=False)


# README's plan of the full study on a Slurm cluster, as written there; the site values that
# profiles/slurm reads from the environment set as a user would.
SLURM_PLAN = "snakemake --profile profiles/slurm -n --config container=null"
SLURM_SITE = {"LIQUIDBENCH_SLURM_ACCOUNT": "proj42", "LIQUIDBENCH_SLURM_PARTITION": "gpu-a100"}


@pytest.fixture(scope="session")
def slurm_plan(tmp_path_factory) -> subprocess.CompletedProcess:
    """SLURM_PLAN in a copy of the workflow with the profiles, once per session (about 15 s): README's
    test runs it, and tests/test_slurm.py checks the Slurm request of every job it plans. The
    full study names its image; planning it with the profile's apptainer would need apptainer
    (tests/test_container_config.py covers that path), hence container=null."""
    wd = copy_workflow(tmp_path_factory.mktemp("slurm-plan") / "wf")
    shutil.copytree(REPO / "profiles", wd / "profiles")
    env = {k: v for k, v in tool_env().items() if k != "LIQUIDBENCH_SLURM_QOS"} | SLURM_SITE
    return subprocess.run(["bash", "-c", SLURM_PLAN], cwd=wd, env=env, capture_output=True, text=True, timeout=600)


# The smoke study narrowed to two cheap runs on the synthetic signal (no downloads): the CfC on the
# CPU, seeds 0 and 1, with every stage after them (evaluation, tables, figures).
NARROW = ["--configfile", ".test/config/config.yaml", "--config",
          "study={datasets: [sine], models: [cfc], hardware: [cpu], seeds: [0, 1]}"]


@pytest.fixture(scope="session")
def narrow_run(tmp_path_factory) -> Path:
    """One complete run of the NARROW study; tests take a copy of it (narrow_copy)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("narrow") / "wf")
    snakemake(workdir, "--cores", "2", *NARROW)
    return workdir


@pytest.fixture
def narrow_copy(narrow_run, tmp_path) -> Path:
    """A copy of the complete NARROW study (times kept: Snakemake finds it up to date) to change."""
    dest = tmp_path / "wf"
    shutil.copytree(narrow_run, dest, symlinks=True)
    return dest


# A folder name no shell may see unquoted: a space, both quotes and a command substitution that
# would leave a file named PWNED behind (tests/test_workflow.py looks for it).
HOSTILE_NAME = """wf it's "$(touch PWNED)" `touch PWNED`"""


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One complete run of the smoke study, shared by the tests that only read its outputs. It runs
    in a folder named HOSTILE_NAME, which its study file (the copy's) gives as `root`, so that every
    path the rules hand to a shell carries that name."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke") / HOSTILE_NAME)
    study = workdir / ".test/config/config.yaml"
    study.write_text(study.read_text() + f"\nroot: {json.dumps(str(workdir))}\n")
    snakemake(workdir, "--cores", "2", "--configfile", ".test/config/config.yaml", *smoke_data_args(workdir))
    return workdir
