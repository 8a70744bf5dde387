"""The config's `container:` reaches every rule, and the Apptainer profiles select apptainer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

REPO = Path(__file__).resolve().parents[1]
IMAGE = "docker://ghcr.io/liquidbench/liquidbench:0.1.0"


@pytest.fixture
def workflow_dir(tmp_path):
    for name in ("workflow", "config", ".test", "profiles"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, tmp_path / name)
    return tmp_path


def rule_containers(workdir: Path, overrides: dict) -> dict:
    cwd, environ = os.getcwd(), dict(os.environ)  # loading the workflow sets LIQUIDBENCH_DATA_MIRROR
    os.chdir(workdir)
    try:
        with SnakemakeApi(OutputSettings(quiet=set())) as api:
            wf = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=ConfigSettings(configfiles=[Path(".test/config/config.yaml")], config=overrides),
                snakefile=Path("workflow/Snakefile"),
                workdir=workdir,
            )
            return {rule.name: rule.container_img for rule in wf._workflow.rules}
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)


def test_configured_container_applies_to_every_rule(workflow_dir):
    images = rule_containers(workflow_dir, {"container": IMAGE})
    assert {"prepare_synthetic", "train", "aggregate", "summarize", "plot"} <= set(images)
    assert set(images.values()) == {IMAGE}


def test_no_container_by_default(workflow_dir):
    assert set(rule_containers(workflow_dir, {}).values()) == {None}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", ".test/config/config.yaml", *args],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("profile,nv", [("apptainer", False), ("apptainer-gpu", True)])
def test_profiles_run_jobs_with_apptainer(workflow_dir, profile, nv):
    settings = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    assert settings["software-deployment-method"] == "apptainer"
    assert ("--nv" in settings.get("apptainer-args", "").split()) == nv
    # Without a container the profile plans as usual; with one, Snakemake wants apptainer, which
    # exists on clusters, not here: the jobs would have been started in the image.
    plain = snakemake(workflow_dir, "--profile", f"profiles/{profile}")
    assert plain.returncode == 0, plain.stderr
    other = "docker://registry.example.org/lab/liquidbench:0.1.0"
    contained = snakemake(workflow_dir, "--profile", f"profiles/{profile}", "--config", f"container={other}")
    if shutil.which("apptainer") or shutil.which("singularity"):
        assert contained.returncode == 0, contained.stderr
    else:
        assert contained.returncode != 0
        assert "apptainer or singularity command has to be available" in contained.stdout + contained.stderr
    # the config's default image is not in a registry yet: one line with the command that builds it
    unpublished = snakemake(workflow_dir, "--profile", f"profiles/{profile}", "--config", f"container={IMAGE}")
    assert unpublished.returncode != 0
    assert (f"container '{IMAGE}' is not in any registry yet: build it here with `make sif`"
            in unpublished.stdout + unpublished.stderr)
