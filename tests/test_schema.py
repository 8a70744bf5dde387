"""The config is validated at start: bad keys and types fail with a message naming the key."""

import pytest
import yaml

from conftest import snakemake


def dry_run(workdir, *extra):
    return snakemake(workdir, "-n", "--configfile", "config/smoke.yaml", *extra, check=False)


def failure(proc) -> str:
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("config", ["config/config.yaml", "config/local.yaml", "config/smoke.yaml"])
def test_shipped_configs_are_valid(workflow_copy, config):
    proc = snakemake(workflow_copy, "-n", "--configfile", config, check=False)
    assert proc.returncode == 0, proc.stderr


def test_unknown_top_level_key_is_named(workflow_copy):
    out = failure(dry_run(workflow_copy, "--config", "epochz=3"))
    assert "config: Additional properties are not allowed ('epochz' was unexpected)" in out


def test_unknown_nested_key_is_named(workflow_copy):
    out = failure(dry_run(workflow_copy, "--config", "training={epochz: 3}"))
    assert "config key 'training': Additional properties are not allowed ('epochz' was unexpected)" in out


def test_wrong_type_is_named(workflow_copy):
    out = failure(dry_run(workflow_copy, "--config", "training={epochs: many}"))
    assert "config key 'training.epochs': 'many' is not of type 'integer'" in out


def test_wrong_model_parameter_type_is_named(workflow_copy):
    out = failure(dry_run(workflow_copy, "--config", "models={cfc: {units: eight}}"))
    assert "config key 'models.cfc.units': 'eight' is not of type 'integer'" in out
    out = failure(dry_run(workflow_copy, "--config", "models={cfc: {unitz: 8}}"))
    assert "config key 'models.cfc': Additional properties are not allowed ('unitz' was unexpected)" in out


def test_study_naming_an_undefined_entry_is_named(workflow_copy):
    out = failure(dry_run(workflow_copy, "--config", "study={models: [cfc, transformer]}"))
    assert "config key 'study.models' names 'transformer', which is not defined under 'models'" in out


def test_command_line_values_are_typed(workflow_copy):
    """Nested --config values arrive as strings; numbers must still validate as numbers."""
    proc = dry_run(workflow_copy, "--config", "models={cfc: {units: 4}}", "study={seeds: [7]}", "training={lr: 0.5}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed7" in proc.stdout


def test_configfile_replaces_the_full_study(workflow_copy):
    """A --configfile stands alone: nothing of config/config.yaml leaks into it."""
    smoke = yaml.safe_load((workflow_copy / "config/smoke.yaml").read_text())
    proc = dry_run(workflow_copy, "--printshellcmds")
    assert proc.returncode == 0
    full_only = set(yaml.safe_load((workflow_copy / "config/config.yaml").read_text())["datasets"]) - set(smoke["datasets"])
    for name in full_only:
        assert f"--dataset {name} " not in proc.stdout
    assert '"lr_decay"' not in proc.stdout or "lr_decay" in smoke["training"]
