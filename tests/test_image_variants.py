"""The image's two variants: the cuda variant resolves to torch's CUDA build (never a local +cpu
wheel), containers/build.sh hands the local wheel directory to the cpu variant only, and a study
whose image cannot be had fails with the command that builds it."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import missing_part
from liquidbench import __version__
from liquidbench.image import container_problem, published_image, sif_name
from test_pins import read_pins

REPO = Path(__file__).resolve().parents[1]
# what the image's pip sees: PyPI only (no pip.conf, no local wheels or indexes of this machine)
PIP_ENV_DROPPED = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT",
                   "PIP_CONFIG_FILE")


def test_cuda_variant_resolves_to_torch_cuda_build_from_pypi(tmp_path):
    """pip, as the cuda variant runs it (constraints.txt, no wheel directory), for the image's
    platform: torch 2.13.0 without a local version, a wheel that requires the CUDA libraries and
    the triton of constraints.txt."""
    env = {k: v for k, v in os.environ.items() if k not in PIP_ENV_DROPPED}
    env["PIP_CONFIG_FILE"] = os.devnull
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), "--no-deps",
         "--ignore-installed", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version",
         "3.11", "--implementation", "cp", "--constraint", str(REPO / "constraints.txt"), "torch", "triton"],
        capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0 and re.search(r"connection|resolve|network|timed out|No matching distribution", proc.stderr, re.I):
        missing_part("PyPI", f"pip could not reach pypi.org: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    resolved = {i["metadata"]["name"].lower(): i for i in json.loads(report.read_text())["install"]}
    torch, triton = resolved["torch"]["metadata"], resolved["triton"]["metadata"]
    pins = read_pins()
    assert torch["version"] == pins["torch"] == "2.13.0"  # no "+cpu"
    assert "files.pythonhosted.org" in resolved["torch"]["download_info"]["url"]
    requires = [re.match(r"[A-Za-z0-9._-]+", r).group(0).lower() for r in torch.get("requires_dist", [])]
    assert any(name.startswith("nvidia-") for name in requires), "torch's wheel does not require the CUDA libraries"
    assert any(r.startswith(f"triton=={pins['triton']}") for r in torch["requires_dist"])
    assert triton["version"] == pins["triton"] == "3.7.1"


@pytest.fixture
def fake_podman(tmp_path):
    """A podman that records its arguments instead of building (build.sh's decisions are under test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "podman-args"
    script = bin_dir / "podman"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")

    def build(*args):
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LIQUIDBENCH_WHEELS": str(wheels)}
        proc = subprocess.run([str(REPO / "containers" / "build.sh"), *args], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=60)
        return proc, (log.read_text().splitlines() if log.exists() else [])

    return build


def test_build_sh_never_hands_the_local_wheels_to_the_cuda_variant(fake_podman):
    proc, args = fake_podman()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"localhost/liquidbench:{__version__}"
    assert "VARIANT=cuda" in args
    assert not any("PIP_FIND_LINKS" in a or "/run/wheels" in a for a in args), args

    proc, args = fake_podman("--variant", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"localhost/liquidbench:{__version__}-cpu"
    assert "VARIANT=cpu" in args and "PIP_FIND_LINKS=/run/wheels" in args

    proc, _ = fake_podman("--variant", "rocm")
    assert proc.returncode != 0
    assert proc.stderr.strip() == "build.sh: --variant must be cuda or cpu, got 'rocm'"


def test_dockerfile_cuda_variant_drops_the_wheel_directory_and_requires_a_cuda_torch():
    text = (REPO / "containers" / "Dockerfile").read_text()
    assert re.search(r"^ARG VARIANT=cuda$", text, re.M)
    assert re.search(r"cuda\) unset PIP_FIND_LINKS ;;", text)
    assert "torch.version.cuda" in text and "is not a CUDA build" in text


def test_a_study_without_its_image_gets_the_build_command(tmp_path):
    hint = f"build it here with `make sif` (Apptainer plus Docker or podman) and run with --config container={sif_name()}"
    assert container_problem(published_image(), published=False) == (
        f"container '{published_image()}' is not in any registry yet: {hint}")
    assert container_problem(published_image(), published=True) is None
    missing = tmp_path / "nowhere.sif"
    assert container_problem(str(missing)) == f"container '{missing}': no such image file: {hint}"
    present = tmp_path / "here.sif"
    present.write_bytes(b"")
    assert container_problem(str(present)) is None
    assert container_problem("docker://registry.example.org/lab/liquidbench:0.1.0") is None
    # the Makefile target the message names
    assert re.search(r"^sif:\n\tcontainers/build-sif\.sh", (REPO / "Makefile").read_text(), re.M)
