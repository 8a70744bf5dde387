"""The config is validated at start: bad keys and types fail with a message naming the key."""

import pytest
import yaml

from conftest import REPO, snakemake


def dry_run(workdir, *extra):
    return snakemake(workdir, "-n", "--configfile", ".test/config/config.yaml", *extra, check=False)


def failure(proc) -> str:
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("config", ["config/local.yaml", ".test/config/config.yaml", "config/paper.yaml"])
def test_shipped_configs_are_valid(workflow_copy, config):
    proc = snakemake(workflow_copy, "-n", "--configfile", config, check=False)
    assert proc.returncode == 0, proc.stderr


def test_full_study_is_valid(full_plan):
    """config/config.yaml, the Snakefile's default (its plan is shared: conftest's full_plan)."""
    assert full_plan.returncode == 0, full_plan.stderr


# (--config override, what the message must say): each bad value is named by its config key
BAD_VALUES = [
    # the tuning stage's section (the smoke study tunes gru): refused before any job, naming the key
    ("tuning={trials: 0}", "config key 'tuning.trials': 0 is less than the minimum of 1"),
    ("tuning={space: {gru: {lr: {low: 0.1, high: 0.01, log: true}}}}", "tuning.space.gru.lr: empty or inverted range"),
    # (the other refusals of liquidbench.tune.space are unit tests: tests/test_tune_space.py)
    ("tuning={epochs: 5}", "tuning.epochs: 5 is above the epochs of a tuned run"),
    ("epochz=3", "config: Additional properties are not allowed ('epochz' was unexpected)"),
    ("training={epochz: 3}", "config key 'training': Additional properties are not allowed ('epochz' was unexpected)"),
    ("training={epochs: many}", "config key 'training.epochs': 'many' is not of type 'integer'"),
    # JSON Schema counts 2.0 as an integer; a run cannot train 2.0 epochs
    ("training={epochs: 2.0}", "config key 'training.epochs': 2.0 is not of type 'integer'"),
    ("models={cfc: {units: eight}}", "config key 'models.cfc.units': 'eight' is not of type 'integer'"),
    ("models={cfc: {unitz: 8}}", "config key 'models.cfc': Additional properties are not allowed ('unitz' was unexpected)"),
    ("study={models: [cfc, transformer]}",
     "config key 'study.models' names 'transformer', which is not defined under 'models'"),
    ("datasets={traffic: {source: {url: 'http://example.org/t.csv.gz'}}}",
     "config key 'datasets.traffic.source.url': 'http://example.org/t.csv.gz' does not match"),
    ("datasets={har: {source: {sha256: abc123}}}", "config key 'datasets.har.source.sha256'"),
    # the file name a URL ends in, decoded, would be ../../x.csv.gz: outside data/raw/ and logs/
    ("datasets={traffic: {source: {url: 'https://example.org/..%2F..%2Fx.csv.gz'}}}",
     "config key 'datasets.traffic.source.url' (its last path component, decoded): '../../x.csv.gz' is not a file "
     "name that stays in its folder"),
    ("study={exclude: [{modle: ltc}]}", "config key 'study.exclude.0': Additional properties are not allowed ('modle' was unexpected)"),
    ("datasets={sine: {params: {n_sequences: many}}}",
     "config key 'datasets.sine.params.n_sequences': 'many' is not of type 'integer'"),
    ("datasets={sine: {params: {n_sequence: 40}}}",
     "config key 'datasets.sine.params': Additional properties are not allowed ('n_sequence' was unexpected)"),
    ("datasets={sine: {params: {target: ahead}}}",
     "config key 'datasets.sine.params.target': 'ahead' is not one of ['double_angle', 'next']"),
    # the closed-loop horizon on a data set whose target is not the next input, before any job runs
    ("evaluation={families: {horizon: {steps: 3, n_sequences: 4, datasets: [sine_forecast, sine]}}}",
     "evaluation.families.horizon.datasets: data set 'sine' cannot take the closed-loop horizon, which needs a sine "
     "data set whose target is the next input (params: {target: next}); its target is 'double_angle'"),
    ("evaluation={families: {horizon: {steps: 3, n_sequences: 4, datasets: [traffic]}}}",
     "data set 'traffic' cannot take the closed-loop horizon"),
    ("evaluation={families: {horizon: {steps: 3, n_sequences: 4, datasets: [sien]}}}",
     "config key 'evaluation.families.horizon.datasets' names 'sien', which is not defined under 'datasets'"),
    ("study={exclude: [{model: [ltc, cfc, lstm, gru, ltc_fast, cfc_fast]}]}",
     "config key 'study': it selects no run; its exclude removes every combination of datasets"),
    ("results={targets: {sien: 0.5}}",
     "config key 'results.targets' names 'sien', which is not defined under 'datasets'"),
    ("results={scaling_baselines: {ddp-cpu-2: cpu1}}",
     "config key 'results.scaling_baselines' (ddp-cpu-2: cpu1) names 'cpu1', which is not defined under 'hardware'"),
    ("results={scaling_baselines: {ddp-cpu-3: cpu}}",
     "config key 'results.scaling_baselines' (ddp-cpu-3) names 'ddp-cpu-3', which is not defined under 'hardware'"),
]


def refusal(override: str) -> str:
    """What the workflow's study check (liquidbench.study.checked_study, as workflow/rules/config.smk
    calls it) says of the smoke study with one --config value, as Snakemake parses it."""
    from snakemake.cli import parse_config

    from liquidbench.study import checked_study

    with pytest.raises(ValueError) as err:
        checked_study([".test/config/config.yaml"], parse_config([override]), "workflow/schemas/config.schema.yaml")
    return str(err.value)


# Refused by the workflow after the study check (a source's file name, the evaluation stage's data
# sets, the study's runs): only through Snakemake.
CHECKED_LATER = ["datasets={traffic: {source: {url: 'https://example.org/..%2F..%2Fx.csv.gz'}}}",
                 "evaluation={families: {horizon: {steps: 3, n_sequences: 4, datasets: [sine_forecast, sine]}}}",
                 "evaluation={families: {horizon: {steps: 3, n_sequences: 4, datasets: [traffic]}}}",
                 "study={exclude: [{model: [ltc, cfc, lstm, gru, ltc_fast, cfc_fast]}]}"]
# One of each kind the study check refuses (a schema problem, a name, a tuning setting), through
# Snakemake too: it stops there, before any job, with the same message.
STOPS_AT_THE_STUDY_CHECK = ["training={epochs: 2.0}", "study={models: [cfc, transformer]}", "tuning={trials: 0}"]
IDS = {override: override.split("=")[0] + str(i) for i, (override, _) in enumerate(BAD_VALUES)}
MESSAGES = dict(BAD_VALUES)


@pytest.mark.parametrize("override", [o for o, _ in BAD_VALUES if o not in CHECKED_LATER], ids=IDS.get)
def test_bad_value_is_named_by_its_key(monkeypatch, override):
    monkeypatch.chdir(REPO)  # the study's paths (manifests) are relative to the repository
    assert MESSAGES[override] in refusal(override)


@pytest.mark.parametrize("override", CHECKED_LATER + STOPS_AT_THE_STUDY_CHECK, ids=IDS.get)
def test_snakemake_refuses_a_bad_value_before_any_job(workflow_copy, override):
    out = failure(dry_run(workflow_copy, "--config", override))
    assert MESSAGES[override] in out and "Job stats" not in out


def test_command_line_values_are_typed(workflow_copy):
    """Nested --config values arrive as strings; numbers must still validate as numbers."""
    proc = dry_run(workflow_copy, "--config", "models={cfc: {units: 4}}", "study={seeds: [7]}", "training={lr: 0.5}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed7" in proc.stdout


def test_configfile_replaces_the_full_study(workflow_copy):
    """A --configfile stands alone: nothing of config/config.yaml leaks into it."""
    smoke = yaml.safe_load((workflow_copy / ".test/config/config.yaml").read_text())
    proc = dry_run(workflow_copy, "--printshellcmds")
    assert proc.returncode == 0
    full_only = set(yaml.safe_load((workflow_copy / "config/config.yaml").read_text())["datasets"]) - set(smoke["datasets"])
    for name in full_only:
        assert f"--dataset {name} " not in proc.stdout
    assert '"lr_decay"' not in proc.stdout or "lr_decay" in smoke["training"]


def test_data_sets_sharing_a_file_must_agree(workflow_copy):
    har = yaml.safe_load((workflow_copy / ".test/config/config.yaml").read_text())["datasets"]["har"]
    other = {**har, "params": {"protocol": "inertial"}, "source": {**har["source"], "sha256": "ab" * 32}}
    out = failure(dry_run(workflow_copy, "--config", f"datasets={{har2: {yaml.safe_dump(other, default_flow_style=True).strip()}}}"))
    assert "config key 'datasets.har2.source': file 'UCI_HAR_synthetic.zip' is also the source of another data set" in out


@pytest.mark.parametrize("source, message", [
    ("{url: 'https://example.org/h.zip'}", "config key 'datasets.h.source': 'sha256' is a required property"),
    ("{url: 'https://example.org/h.zip', manifest: config/sources/none.sha256}",
     "config key 'datasets.h.source.manifest': manifest config/sources/none.sha256 does not exist"),
    ("{url: 'https://example.org/h.zip', manifest: config/sources/uci_har.sha256, sha256: null}",
     "config key 'datasets.h.source': pinned by `manifest` (each member of an archive), it takes no `sha256`"),
])
def test_a_source_is_pinned_by_sha256_or_by_an_existing_manifest(workflow_copy, source, message):
    out = failure(dry_run(workflow_copy, "--config", f"datasets={{h: {{kind: har, params: {{protocol: inertial}}, source: {source}}}}}"))
    assert message in out


def test_data_mirror_may_be_a_directory_or_a_list(workflow_copy):
    for value in ("data_mirror=/srv/mirror", "data_mirror=[/srv/a, /srv/b]"):
        proc = dry_run(workflow_copy, "--config", value)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_json_parameters_with_quotes_reach_the_command_intact(workflow_copy):
    """Rules pass JSON params shell-quoted ({params.x:q}): a value with quotes stays one argument.
    The data set's source file name carries the quotes (its params are checked by the schema)."""
    import json
    import shlex

    name = """it's a "quoted" name.csv.gz"""
    proc = dry_run(workflow_copy, "--printshellcmds", "--forceall", "--config",
                   f"datasets={{traffic: {{source: {{file: {json.dumps(name)}}}}}}}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    download = shlex.split(next(l for l in proc.stdout.splitlines() if "liquidbench download --url" in l
                                and "Traffic_Volume" in l))
    assert download[download.index("--name") + 1] == name
    line = next(l for l in proc.stdout.splitlines() if "liquidbench prepare --dataset traffic " in l)
    argv = shlex.split(line)
    assert argv[argv.index("--raw") + 1] == f"data/raw/{name}"
    assert json.loads(argv[argv.index("--params") + 1]) == {"seq_len": 16, "stride": 128}


def test_yaml_floats_without_a_dot_are_numbers(workflow_copy):
    """YAML 1.1 reads 1e-3 as a string; a config file's 1e-3 is a number all the same."""
    import json

    cfg = yaml.safe_load((workflow_copy / ".test/config/config.yaml").read_text())
    (workflow_copy / "study.yaml").write_text(
        (workflow_copy / ".test/config/config.yaml").read_text().replace("lr: 0.01", "lr: 1e-3"))
    assert cfg["training"]["lr"] == 0.01
    proc = snakemake(workflow_copy, "-n", "-p", "--configfile", "study.yaml", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {t["training"]["lr"] for t in train_commands(proc.stdout).values()} == {0.001}
    assert json.dumps(0.001) in proc.stdout


def test_schema_and_package_agree_on_training_and_hardware_keys():
    """Training and hardware defaults have one home, liquidbench.train.settings; the schema lists
    the same keys and no default of its own."""
    from conftest import REPO
    from liquidbench.train.settings import HARDWARE_DEFAULTS, RESOURCES_DEFAULTS, TRAINING_DEFAULTS

    defs = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["$defs"]
    training = defs["training"]["properties"]
    hardware = defs["hardware"]["properties"]
    resources = hardware["resources"]["properties"]
    assert set(training) == set(TRAINING_DEFAULTS)
    assert set(hardware) - {"resources"} == set(HARDWARE_DEFAULTS)
    assert set(resources) - {"mem_mb", "runtime"} == set(RESOURCES_DEFAULTS)
    for props in (training, hardware, resources):
        assert not [key for key, prop in props.items() if "default" in prop]


def test_schema_and_package_agree_on_sine_parameters():
    from conftest import REPO
    from liquidbench.data.sine import DEFAULTS, TARGETS

    defs = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["$defs"]
    sine = next(c["then"]["properties"]["params"] for c in defs["dataset"]["allOf"]
                if c["if"]["properties"]["kind"].get("const") == "sine")
    assert set(sine["properties"]) == set(DEFAULTS) and sine["additionalProperties"] is False
    assert tuple(sine["properties"]["target"]["enum"]) == TARGETS and DEFAULTS["target"] in TARGETS


def train_commands(stdout: str) -> dict[tuple[str, str], dict]:
    """(dataset, model) -> the training params of its planned train jobs (snakemake -n -p)."""
    import json
    import re

    out = {}
    for line in stdout.splitlines():
        m = re.search(r"liquidbench train .*--dataset (\S+) --model (\S+) .*--model-params '([^']*)' --train-params '([^']*)'", line)
        if m:
            out[(m.group(1), m.group(2))] = {"model": json.loads(m.group(3)), "training": json.loads(m.group(4))}
    return out


def test_training_precedence_global_then_data_set_then_model(workflow_copy):
    proc = dry_run(workflow_copy, "--printshellcmds", "--config", "training={lr: 0.5, epochs: 2}",
                   "datasets={sine: {training: {lr: 0.25, epochs: 3}}}", "models={ltc: {training: {lr: 0.02}}}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = train_commands(proc.stdout)
    assert jobs[("sine", "ltc")]["training"]["lr"] == 0.02 and jobs[("sine", "ltc")]["training"]["epochs"] == 3
    assert jobs[("sine", "cfc")]["training"]["lr"] == 0.25
    assert jobs[("traffic", "ltc")]["training"]["lr"] == 0.02
    assert "training" not in jobs[("sine", "ltc")]["model"]  # the model builder gets its parameters only


def test_paper_study_plans_the_published_table_with_per_model_learning_rates(workflow_copy):
    proc = snakemake(workflow_copy, "-n", "--printshellcmds", "--configfile", "config/paper.yaml", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = train_commands(proc.stdout)
    assert {d for d, _ in jobs} == {"traffic", "traffic_prefix2020", "har561"}
    assert {m: jobs[("traffic", m)]["training"]["lr"] for m in ("ltc", "lstm", "cfc", "gru")} == {
        "ltc": 0.01, "lstm": 0.001, "cfc": 0.001, "gru": 0.001}
    t = jobs[("traffic_prefix2020", "ltc")]["training"]
    assert (t["epochs"], t["batch_size"], t["grad_clip"], t["drop_last"]) == (200, 16, 0, True)
    assert "rule published:" in proc.stdout and "--published studies/paper/results/tables/published.csv" in proc.stdout
