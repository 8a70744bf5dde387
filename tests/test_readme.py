"""The documentation's commands run as written (the quick ones: plans, one run by hand each way, the
dry runs, the manifest check), so that they cannot rot. Each command is read from the page that
documents it (README.md, docs/running.md, config/README.md); a copy of the workflow runs it, with
the local study cut to one epoch."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import REPO, SHARED, SLURM_PLAN, copy_workflow, tool_env

pytestmark = pytest.mark.slow

# Documented lines (comments stripped) and what each must leave behind
PLAN = "snakemake -n"
BY_TARGET = "snakemake studies/local/results/runs/sine/cfc/cpu/seed0/metrics.json --cores 2 --configfile config/local.yaml"
BY_HAND = "liquidbench train --config config/local.yaml --run sine/cfc/cpu/0"
BY_TORCHRUN = ("torchrun --standalone --nproc_per_node=2 -m liquidbench.cli train --config config/local.yaml "
               "--study-run sine/cfc/ddp-cpu-2/0")
NARROWED = "snakemake --cores 2 --configfile config/local.yaml --config 'study={models: [cfc, ltc], seeds: [0]}'"

# The page whose ```bash blocks document each command
PAGES = {
    PLAN: "docs/running.md",
    BY_TARGET: "docs/running.md",
    BY_HAND: "docs/running.md",
    BY_TORCHRUN: "docs/running.md",
    SLURM_PLAN: "README.md",
    NARROWED: "config/README.md",
}


def readme_commands(path) -> list[str]:
    """Every line of the file's ```bash blocks, without its trailing comment."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line:
                lines.append(line)
    return lines


def sh(wd, command, timeout=600):
    proc = subprocess.run(["bash", "-c", command], cwd=wd, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wd(tmp_path_factory):
    import shutil

    wd = copy_workflow(tmp_path_factory.mktemp("readme") / "wf")
    shutil.copytree(REPO / "profiles", wd / "profiles")
    local = wd / "config/local.yaml"
    local.write_text(local.read_text().replace("epochs: 15", "epochs: 1"))  # the same commands, shorter
    return wd


def test_readme_lists_the_commands_tested_here():
    commands = {page: readme_commands(REPO / page) for page in sorted(set(PAGES.values()))}
    for command, page in PAGES.items():
        assert command in commands[page], f"{page} does not document: {command}"
    assert {"make run", "make test"} <= set(commands["README.md"])  # the front page's two commands


def test_plans_run_as_written(wd, full_plan, slurm_plan):
    assert full_plan.args[-2:] == ["snakemake", "-n"] and PLAN == "snakemake -n"  # the shared plan is PLAN
    assert full_plan.returncode == 0, full_plan.stderr[-3000:]
    full = full_plan
    # 1,500 runs, and the forecasting sine signal's 6 models x cpu, gpu x 5 seeds
    assert re.search(r"^train\s+1560$", full.stdout, re.M)
    assert slurm_plan.args[-1] == SLURM_PLAN  # the shared Slurm plan is README's command
    assert slurm_plan.returncode == 0, slurm_plan.stderr[-3000:]
    narrowed = sh(wd, NARROWED + " -n")
    # 3 data sets x 2 models x 1 seed on cpu, cfc on sine_forecast (the study's exclude leaves LTC out
    # there), and cfc on sine with ddp-cpu-2 (the exclude keeps DDP to sine x cfc, lstm)
    assert re.search(r"^train\s+8$", narrowed.stdout, re.M)


def test_one_run_by_hand_each_way(wd):
    run = wd / "studies/local/results/runs/sine/cfc/cpu/seed0"
    sh(wd, BY_TARGET)
    first = json.loads((run / "metrics.json").read_text())
    sh(wd, BY_HAND)
    again = json.loads((run / "metrics.json").read_text())
    assert (first["status"], again["status"]) == ("ok", "ok")
    assert first["final_params_sha256"] == again["final_params_sha256"]  # the workflow's run, by hand
    sh(wd, BY_TORCHRUN)
    ddp = json.loads((wd / "studies/local/results/runs/sine/cfc/ddp-cpu-2/seed0/metrics.json").read_text())
    assert (ddp["status"], ddp["world_size"], ddp["backend"]) == ("ok", 2, "gloo")


def test_manifest_check_of_config_readme_runs_from_the_repository_root(wd):
    from har_archive import ROOT
    from liquidbench.data.download import download

    if not (SHARED / "data" / "uci_har").is_dir():
        pytest.skip(f"needs the shared data beside the checkout ({SHARED / 'data'})")
    command = re.search(r"`(\(cd data/raw && sha256sum -c [^`]+\))`", (REPO / "config/README.md").read_text()).group(1)
    download("https://archive.ics.uci.edu/ml/machine-learning-databases/00240/UCI%20HAR%20Dataset.zip",
             wd / "data/raw" / ROOT, None, mirrors=[SHARED / "data"], manifest=wd / "config/sources/uci_har.sha256",
             other_names=["UCI_HAR_Dataset_inertial.zip"])
    proc = sh(wd, command)
    assert proc.stdout.count(": OK") == len((wd / "config/sources/uci_har.sha256").read_text().splitlines())
