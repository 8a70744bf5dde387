"""What the workflow layer asks of the package: data sources, launchers and job groups, stale
results, typed settings, and that every table of the registry has its rule in results.smk."""

from __future__ import annotations

import os
import re

import pytest

from conftest import REPO
from liquidbench.data.sources import Source, collect_sources, data_mirrors, source_key
from liquidbench.results.registry import TABLES
from liquidbench.results.stale import remove_stale, stale_outputs
from liquidbench.slurm import SHORT_CPU_GROUP, job_group, launcher
from liquidbench.train.settings import Hardware, Training

URL = "https://example.org/files/Metro%20Traffic.csv.gz"
MANIFEST = "config/sources/uci_har.sha256"  # the real HAR manifest, relative to the repository


# --- sources ---------------------------------------------------------------------------------------

def test_a_file_source_is_named_after_its_url_and_pinned_over_the_file_by_default():
    source = Source.from_entry("d", {"url": URL, "sha256": "ab"})
    assert (source.file_name, source.sha256_of) == ("Metro Traffic.csv.gz", "file")
    assert Source.from_entry("d", {"url": URL, "sha256": "ab", "file": "x.zip"}).file_name == "x.zip"
    assert source_key("traffic", source, str(REPO / "workflow")) == "Metro Traffic.csv.gz"


def test_a_manifest_source_becomes_the_folder_of_its_members(monkeypatch):
    monkeypatch.chdir(REPO)
    source = Source.from_entry("d", {"url": URL, "manifest": MANIFEST, "mirror_names": ["a b.zip", "c.zip"]})
    assert source_key("har", source, str(REPO / "workflow")) == "UCI HAR Dataset"
    assert source.also_names() == "--also-name 'a b.zip' --also-name c.zip"
    with pytest.raises(ValueError, match=r"'datasets.har.source': pinned by `manifest` .* takes no `sha256`"):
        Source.from_entry("har", {"url": URL, "manifest": MANIFEST, "sha256": None})
    with pytest.raises(ValueError, match=r"config key 'datasets.har.source.manifest': "):
        source_key("har", Source.from_entry("d", {"url": URL, "manifest": "no/such.sha256"}), "workflow")


def test_data_sets_sharing_a_source_must_agree_on_it(monkeypatch):
    monkeypatch.chdir(REPO)
    har = {"kind": "har", "source": {"url": URL, "manifest": MANIFEST}}
    sources = collect_sources({"a": har, "b": har, "sine": {"kind": "sine"}}, "workflow")
    assert list(sources) == ["UCI HAR Dataset"] and sources["UCI HAR Dataset"].manifest == MANIFEST
    other = {"kind": "har", "source": {"url": URL.replace("org", "com"), "manifest": MANIFEST}}
    with pytest.raises(ValueError, match=r"'datasets.b.source': file 'UCI HAR Dataset' is also the source of another"):
        collect_sources({"a": har, "b": other}, "workflow")


def test_data_mirror_is_null_one_directory_or_a_list():
    assert (data_mirrors(None), data_mirrors("m"), data_mirrors(["m", "n"])) == ([], ["m"], ["m", "n"])


# --- launchers and groups --------------------------------------------------------------------------

def hardware(**entry) -> Hardware:
    return Hardware.from_entry("h", {"resources": {"cpus_per_task": 4, "mem_mb": 1, "runtime": 1}, **entry})


def test_launcher_of_each_kind_of_entry():
    assert launcher(hardware(device="cpu")) == ""
    one_ddp = launcher(hardware(device="cuda", backend="nccl"))  # ddp-1gpu: DDP with one process
    assert one_ddp == "torchrun --standalone --nnodes=1 --nproc_per_node=1 --no-python"
    two = launcher(hardware(device="cpu", nproc_per_node=2))
    assert two == ("${SLURM_JOB_ID:+srun --nodes=1 --ntasks=1 --ntasks-per-node=1 --cpus-per-task=4 "
                   "--kill-on-bad-exit=1} torchrun --standalone --nnodes=1 --nproc_per_node=2 --no-python")
    nodes = launcher(hardware(device="cuda", nodes=2, nproc_per_node=4))
    assert nodes.startswith("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=4 --kill-on-bad-exit=1 "
                            "torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_id=$SLURM_JOB_ID ")
    assert nodes.endswith(":$((29500 + SLURM_JOB_ID % 1000)) --no-python")


def test_only_one_process_cpu_jobs_are_grouped_and_only_when_asked():
    assert job_group(hardware(device="cpu"), components=4) == SHORT_CPU_GROUP
    assert job_group(hardware(device="cpu"), components=1) is None
    for entry in ({"device": "cpu", "nproc_per_node": 2}, {"device": "cuda"}, {"device": "cpu", "backend": "gloo"}):
        assert job_group(hardware(**entry), components=4) is None, entry


# --- typed settings --------------------------------------------------------------------------------

def test_settings_are_built_once_with_their_defaults_and_name_a_bad_key():
    training = Training.from_params({"lr": 0.01})
    assert (training.lr, training.epochs, training.optimizer_impl) == (0.01, 10, "fused")
    assert list(training.as_dict()) == ["epochs", "batch_size", "eval_batch_size", "lr", "lr_decay", "grad_clip",
                                        "weight_decay", "drop_last", "optimizer_impl", "divergence_factor"]
    with pytest.raises(ValueError, match=r"training: unknown parameter\(s\) \['lr_rate'\]"):
        Training.from_params({"lr_rate": 0.01})
    with pytest.raises(ValueError, match=r"training: epochs must be an integer >= 1, got 0"):
        Training.from_params({"epochs": 0})
    with pytest.raises(ValueError, match=r"training: lr must be a number > 0, got '1e-3' \(a quoted number is a string"):
        Training.from_params({"lr": "1e-3"})
    hw = Hardware.from_entry("ddp", {"device": "cpu", "nproc_per_node": 2, "resources": {"mem_mb": 5, "runtime": 1}})
    assert (hw.world, hw.timeout_s, hw.resources.cpus_per_task) == (2, 300, 1)
    assert hw.as_dict()["resources"] == {"cpus_per_task": 1, "gpus": 0, "mem_mb": 5, "runtime": 1}
    with pytest.raises(ValueError, match=r"hardware 'x': unknown key\(s\) \['gpus'\]"):
        Hardware.from_entry("x", {"device": "cuda", "gpus": 1})
    with pytest.raises(ValueError, match=r"hardware 'x': resources: unknown key\(s\) \['cpus'\]"):
        Hardware.from_entry("x", {"device": "cpu", "resources": {"cpus": 1}})
    with pytest.raises(ValueError, match=r"hardware 'x': threads must be an integer >= 1, got True"):
        Hardware.from_entry("x", {"device": "cpu", "threads": True})


# --- stale results ---------------------------------------------------------------------------------

def test_stale_outputs_follow_the_steps_after_a_changed_or_missing_input(tmp_path):
    def make(name, mtime):
        path = tmp_path / name
        path.write_text(name)
        os.utime(path, (mtime, mtime))
        return str(path)

    runs, table, summary, figure = make("runs", 1), make("table", 2), make("summary", 3), make("figure", 4)
    steps = [([table], [runs]), ([summary], [table]), ([figure], [summary])]
    assert stale_outputs(steps) == []
    os.utime(runs, (10, 10))  # a run changed after the table was made: everything after it is stale
    assert stale_outputs(steps) == sorted([table, summary, figure])
    os.utime(runs, (1, 1))
    os.remove(table)  # a failed step's output is gone: what follows from it is stale, the rest stays
    assert remove_stale(steps) == sorted([summary, figure])
    assert os.path.exists(runs) and not any(os.path.exists(p) for p in (summary, figure))


# --- the table registry and the rules --------------------------------------------------------------

def test_every_table_has_its_rule_declared_by_name_in_results_smk():
    """Each TABLES entry has one rule in workflow/rules/results.smk, named after its subcommand and
    built from that table's entry, running where Snakemake runs; a table the registry writes only
    `when` a key is set is declared only then."""
    declared, rule, condition = {}, None, None  # rule -> (table, the `if` it is declared under)
    local = set()  # `use rule ... with:` resets localrule: each table rule must say it
    for line in (REPO / "workflow/rules/results.smk").read_text().splitlines():
        if line and not line[0].isspace():  # a top-level statement ends the `if` block before it
            condition = None
        if m := re.match(r'if "(\w+)" in STUDY_TABLES:', line):
            condition = m.group(1)
        if m := re.match(r"\s*(?:rule (\w+):|use rule \w+ as (\w+) with:)", line):
            rule = m.group(1) or m.group(2)
        for name in re.findall(r'table_(?:inputs|outputs|params)\("(\w+)"\)', line):
            assert declared.setdefault(rule, (name, condition)) == (name, condition), rule
        if "localrule: True" in line:
            local.add(rule)
    assert {rule: name for rule, (name, _) in declared.items()} == {
        t.command.replace("-", "_"): name for name, t in TABLES.items()}
    for rule, (name, condition) in declared.items():
        assert condition == (name if TABLES[name].when else None), rule
    assert set(declared) <= local
