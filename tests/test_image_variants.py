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

    def build(*args, command=(str(REPO / "containers" / "build.sh"),)):
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LIQUIDBENCH_WHEELS": str(wheels)}
        log.unlink(missing_ok=True)
        proc = subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
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
    assert re.search(r"^ARG VARIANT=cuda$", text, re.M) and re.search(r"^ARG TORCH_INDEX=$", text, re.M)
    assert len(re.findall(r'TORCH_INDEX="\$TORCH_INDEX" .*\n\s+sh /opt/liquidbench/pip-install.sh (?:deps|project) ', text)) == 2
    assert re.search(r"cuda\) unset PIP_FIND_LINKS ;;", (REPO / "containers" / "pip-install.sh").read_text())
    assert "torch.version.cuda" in text and "is not a CUDA build" in text


def test_make_image_hands_the_torch_index_to_the_build(fake_podman):
    """`make image TORCH_INDEX=...` (docs/containers.md: an image for a driver older than CUDA 13.0's)
    reaches the build as the TORCH_INDEX build argument, and the tag names the index."""
    index = "https://download.pytorch.org/whl/cu126"
    proc, args = fake_podman("image", f"TORCH_INDEX={index}", command=("make", "--no-print-directory"))
    assert proc.returncode == 0, proc.stderr
    assert f"TORCH_INDEX={index}" in args and "VARIANT=cuda" in args
    assert args[args.index("-t") + 1] == f"localhost/liquidbench:{__version__}-cu126"
    proc, args = fake_podman("image", command=("make", "--no-print-directory"))
    assert proc.returncode == 0 and not any(a.startswith("TORCH_INDEX=") for a in args), args
    proc, _ = fake_podman("--torch-index", "https://example.org/")
    assert proc.returncode == 0  # the trailing slash is dropped: tag ...-example.org
    proc, _ = fake_podman("--torch-index", "file:///srv/whl/cu 126")
    assert proc.returncode != 0 and "does not end in a name for the tag" in proc.stderr


@pytest.fixture
def recording_pip(tmp_path):
    """A pip that records its arguments, the requirements file it is given and the PIP_* settings
    (pip-install.sh's decisions are under test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pip-calls"
    (bin_dir / "pip").write_text(
        "#!/bin/sh\n{\n  printf 'ARGS %s\\n' \"$*\"\n"
        "  while [ $# -gt 0 ]; do [ \"$1\" = --requirement ] && sed 's/^/REQ /' \"$2\"; shift; done\n"
        f"  env | grep '^PIP_' | sort\n}} >> {log}\n")
    (bin_dir / "pip").chmod(0o755)

    def install(step, **env):
        base = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), base["PATH"]])
        proc = subprocess.run(["sh", str(REPO / "containers" / "pip-install.sh"), step, str(REPO)],
                              env={**base, "PATH": path, **env}, capture_output=True, text=True, timeout=60)
        calls = log.read_text().split("ARGS ")[1:] if log.exists() else []
        log.unlink(missing_ok=True)
        return proc, [call.splitlines() for call in calls]

    return install


def test_pip_install_takes_torch_from_the_given_index(recording_pip):
    import tomllib

    index = "https://download.pytorch.org/whl/cu126"
    proc, calls = recording_pip("deps", VARIANT="cuda", TORCH_INDEX=index, PIP_FIND_LINKS="/run/wheels", PIP_CERT="")
    assert proc.returncode == 0, proc.stderr
    (deps,) = calls
    assert deps[0].startswith(f"install --constraint {REPO}/constraints.txt --requirement ")
    # the dependencies are pyproject's, not a second list
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [line[4:] for line in deps if line.startswith("REQ ")] == dependencies
    assert f"PIP_EXTRA_INDEX_URL={index}" in deps
    assert not any(line.startswith(("PIP_FIND_LINKS=", "PIP_CERT=")) for line in deps), deps
    proc, calls = recording_pip("project", VARIANT="cuda", TORCH_INDEX=index)
    assert proc.returncode == 0, proc.stderr
    project, check = calls
    assert project[0] == f"install --no-deps --constraint {REPO}/constraints.txt {REPO}"
    assert f"PIP_EXTRA_INDEX_URL={index}" in project and check[0] == "check"
    # without the option pip sees PyPI only; the cpu variant keeps its local wheel directory
    _, calls = recording_pip("deps", VARIANT="cuda", TORCH_INDEX="")
    assert not any(line.startswith("PIP_EXTRA_INDEX_URL=") for line in calls[0]), calls[0]
    _, calls = recording_pip("deps", VARIANT="cpu", PIP_FIND_LINKS="/run/wheels")
    assert "PIP_FIND_LINKS=/run/wheels" in calls[0]
    proc, calls = recording_pip("deps", VARIANT="rocm")
    assert proc.returncode == 1 and not calls
    assert proc.stderr.strip() == "pip-install.sh: VARIANT must be cuda or cpu, got 'rocm'"
    proc, calls = recording_pip("all", VARIANT="cpu")
    assert proc.returncode == 1 and not calls
    assert proc.stderr.strip() == "pip-install.sh: the step must be deps or project, got 'all'"


def fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A wheel with only its metadata, enough for pip to resolve it."""
    import zipfile

    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as zf:
        for n, text in files.items():
            zf.writestr(n, text)
    return path


def test_a_local_index_standing_in_for_pytorchs_gives_its_cuda_build(tmp_path):
    """pip as pip-install.sh runs it with TORCH_INDEX (PIP_EXTRA_INDEX_URL), PyPI beside it: torch
    comes from the extra index, whose 2.13.0+cu126 satisfies constraints.txt's torch==2.13.0 and sorts
    above PyPI's 2.13.0. A local PyPI-style index stands in for download.pytorch.org/whl/cu126."""
    index = tmp_path / "whl" / "cu126"
    (index / "torch").mkdir(parents=True)
    wheel = fake_wheel(index / "torch", "torch", "2.13.0+cu126")
    (index / "torch" / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    env = {k: v for k, v in os.environ.items() if k not in PIP_ENV_DROPPED}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_EXTRA_INDEX_URL=index.as_uri())
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), "--no-deps",
         "--ignore-installed", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version",
         "3.11", "--implementation", "cp", "--constraint", str(REPO / "constraints.txt"), "torch"],
        capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0 and re.search(r"connection|resolve|network|timed out", proc.stderr, re.I):
        missing_part("PyPI", f"pip could not reach pypi.org: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    (torch,) = json.loads(report.read_text())["install"]
    assert torch["metadata"]["version"] == "2.13.0+cu126"
    assert torch["download_info"]["url"] == wheel.as_uri()


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
