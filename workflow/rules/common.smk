# Input functions and helpers shared by the rules. Plain lookups into the validated config;
# everything computational lives in the liquidbench package.

import json
import os
import re
import shlex

from snakemake.logging import logger

from liquidbench.results.registry import SETTINGS, TABLES, figure_inputs, figure_kind, figure_settings, figure_stems
from liquidbench.slurm import job_resources
from liquidbench.study import check_names, check_not_empty, check_results_names, model_of, study_runs, training_of
from liquidbench.train.settings import hardware_settings
from liquidbench.data.sine import target as target_of_sine
from liquidbench.evaluate.settings import horizon_applies

check_names(config)  # names selected by the study are defined
check_results_names(config)  # and those that results.targets and results.scaling_baselines name

STUDY = config["study"]
# every hardware entry with its defaults (liquidbench.train.settings, their one home)
HARDWARE = {name: hardware_settings(name, entry) for name, entry in config["hardware"].items()}
# the product less study.exclude, whose names must be defined (a typo fails here)
RUNS = study_runs(STUDY, {section: list(config[section]) for section in ("datasets", "models", "hardware")})
check_not_empty(RUNS, STUDY)  # an exclude that removes every run fails here, not at aggregation
SPLITS = ["train", "val", "test"]
# Every output of this study lies under its root (config `root`): data/processed/, results/, logs/.
# Studies with different roots never touch each other's outputs; data/raw/ (verified downloads) and
# logs/download/ are shared.
ROOT = config["root"]


def study_path(path):
    """``path`` (relative, e.g. results/tables/x.csv) under this study's root."""
    return os.path.normpath(os.path.join(ROOT, path))


RUN_DIR = study_path("results/runs/{dataset}/{model}/{hardware}/seed{seed}")


def as_json(obj):
    """A config value as JSON, for a param (params trigger reruns when changed) that the rule passes
    shell-quoted ({params.name:q}): a value may contain quotes."""
    return json.dumps(obj, sort_keys=True)


def datasets_of_kind(*kinds):
    """Names of configured data sets of the given kinds, as a wildcard constraint."""
    names = [name for name, d in config["datasets"].items() if d["kind"] in kinds]
    return "|".join(map(re.escape, names)) if names else "(?!)"


def data_mirrors():
    """`data_mirror` as a list of directories (it may be null, one directory or a list)."""
    mirror = config.get("data_mirror")
    return [] if mirror is None else [mirror] if isinstance(mirror, str) else list(mirror)


def source_file_name(source):
    """A source's original file name: `file`, else the URL's last path component, decoded."""
    from urllib.parse import unquote, urlparse

    return source.get("file") or unquote(urlparse(source["url"]).path.rsplit("/", 1)[-1])


def manifest_path(path):
    """A source manifest as given (relative to the working directory), else in the workflow's folder."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    in_workflow = os.path.join(workflow.basedir, path)
    return in_workflow if os.path.exists(in_workflow) else path


def source_key(name, source):
    """What a source becomes under data/raw/: its file, or for a source pinned by a manifest the
    folder of its verified members (the manifest's top folder, e.g. `UCI HAR Dataset`)."""
    from liquidbench.data.manifest import ManifestError, manifest_root

    if "manifest" not in source:
        return source_file_name(source)
    if "sha256" in source or "sha256_of" in source:
        raise ValueError(
            f"config key 'datasets.{name}.source': pinned by `manifest` (each member of an archive), it takes "
            "no `sha256` or `sha256_of` (those pin one file)"
        )
    try:
        return manifest_root(manifest_path(source["manifest"]))
    except ManifestError as exc:
        raise ValueError(f"config key 'datasets.{name}.source.manifest': {exc}") from None


def collect_sources():
    """data/raw/ name -> source block, over every configured data set with a `source`; data sets
    that share a source (e.g. two HAR protocols) must agree on where it comes from."""
    sources = {}
    for name, dataset in config["datasets"].items():
        source = dataset.get("source")
        if source is None:
            continue
        if "manifest" not in source:
            source = {"sha256_of": "file", **source}
        key = source_key(name, source)
        if key in sources and {k: v for k, v in sources[key].items() if k != "file"} != {
            k: v for k, v in source.items() if k != "file"
        }:
            raise ValueError(
                f"config key 'datasets.{name}.source': file '{key}' is also the source of another data set "
                "with a different url, sha256, sha256_of, manifest or mirror_names; they must agree"
            )
        sources[key] = source
    return sources


SOURCES = collect_sources()
FILE_SOURCES = [key for key, source in SOURCES.items() if "manifest" not in source]
MEMBER_SOURCES = [key for key, source in SOURCES.items() if "manifest" in source]
# Mirror directories reach `liquidbench download` (a local rule, run by this process) through the
# environment rather than as a param: where a verified file came from does not change it, so a
# changed data_mirror must rerun nothing.
os.environ["LIQUIDBENCH_DATA_MIRROR"] = os.pathsep.join(data_mirrors())


def raw_file(dataset):
    """Where a real data set's source is downloaded to: a file, or the folder of verified members."""
    return f"data/raw/{source_key(dataset, config['datasets'][dataset]['source'])}"


def any_of(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(map(re.escape, names)) or "(?!)"


def also_names(source):
    """--also-name options: other names under which a mirror may hold the archive (re-packed copies)."""
    import shlex

    return " ".join(f"--also-name {shlex.quote(n)}" for n in source.get("mirror_names", []))


def dataset_files(dataset):
    folder = processed_dir(dataset)
    return [f"{folder}/meta.json"] + [f"{folder}/{s}.npz" for s in SPLITS]


def processed_dir(dataset):
    """Where this study's prepared data set lies."""
    return study_path(f"data/processed/{dataset}")


def log_file(path):
    """A log of this study's jobs (logs/ under its root)."""
    return study_path(f"logs/{path}")


def training_params(wildcards):
    return as_json(training_of(config, wildcards.dataset, wildcards.model))


def hardware_entry(wildcards):
    return HARDWARE[wildcards.hardware]


def launcher(wildcards):
    """The process launcher for a hardware entry: nothing for one plain process, torchrun for DDP
    (an entry with a backend is DDP even with one process, e.g. ddp-1gpu).

    One node: torchrun --standalone starts nproc_per_node ranks; inside a Slurm job (SLURM_JOB_ID
    set) a multi-process torchrun runs as a job step started by srun, so that it gets the job's CPUs
    and GPUs and Slurm's signals (--signal, time limit, preemption). Several nodes (the job carries
    `mpi`, so the job script runs the command itself): srun starts one torchrun per node, which meet
    by c10d rendezvous on the allocation's first node, on a port derived from the job id. A rank
    that fails ends the step on every node (--kill-on-bad-exit). The node list comes from squeue:
    snakemake-executor-plugin-slurm-jobstep runs the command with SLURM_JOB_ID but without
    SLURM_JOB_NODELIST.
    """
    hw = hardware_entry(wildcards)
    nproc, nodes = hw["nproc_per_node"], hw["nodes"]
    if nodes * nproc == 1 and hw.get("backend") is None:
        return ""
    step = (
        f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 "
        f"--cpus-per-task={hw['resources']['cpus_per_task']} --kill-on-bad-exit=1"
    )
    if nodes == 1:
        torchrun = f"torchrun --standalone --nnodes=1 --nproc_per_node={nproc} --no-python"
        # one process: Slurm already runs the whole command as a one-task step
        return torchrun if nproc == 1 else f"${{SLURM_JOB_ID:+{step}}} {torchrun}"
    return (
        f"{step} torchrun --nnodes={nodes} --nproc_per_node={nproc} "
        "--rdzv_backend=c10d --rdzv_id=$SLURM_JOB_ID "
        '--rdzv_endpoint=$(scontrol show hostnames "$(squeue -h -j $SLURM_JOB_ID -o %N)" | head -n 1):$((29500 + SLURM_JOB_ID % 1000)) '
        "--no-python"
    )


# Job grouping for Slurm (opt in): `--group-components cpu-short=N` puts up to N one-process CPU
# training jobs into one Slurm job (README, "Grouping short CPU jobs"). Multi-process and GPU jobs
# are never grouped: each needs its own allocation and launcher.
SHORT_CPU_GROUP = "cpu-short"


def train_group(wildcards):
    """The job group of a training job: SHORT_CPU_GROUP for a one-process CPU entry when grouping
    was asked for (more than one component per group), else none."""
    hw = hardware_entry(wildcards)
    one_cpu_process = hw["device"] == "cpu" and hw["nodes"] * hw["nproc_per_node"] == 1 and hw.get("backend") is None
    wanted = workflow.group_settings.group_components.get(SHORT_CPU_GROUP, 1) > 1
    return SHORT_CPU_GROUP if one_cpu_process and wanted else None


def train_resource(key):
    """One Slurm resource of a training job (see liquidbench.slurm); None leaves it unset."""
    return lambda w: job_resources(w.hardware, hardware_entry(w))[key]


def run_targets(name="metrics.json"):
    return [f"{RUN_DIR}/{name}".format(dataset=d, model=m, hardware=h, seed=seed) for d, m, h, seed in RUNS]


# The `results` section, every default filled in by the schema's validation.
RESULTS = config["results"]


def expected_study():
    """The study's product as JSON for `liquidbench aggregate --expected` (missing runs are shown)."""
    return as_json({k: STUDY[k] for k in ("datasets", "models", "hardware", "seeds", "exclude") if k in STUDY})


def expected_runs():
    """Every run's metrics.json; with results.allow_missing only those that exist (after
    `snakemake --keep-going` left failed runs behind), the rest then appear as missing."""
    targets = run_targets("metrics.json")
    if RESULTS["allow_missing"]:
        return [t for t in targets if os.path.exists(t)]
    return targets


def aggregate_inputs(wildcards):
    return expected_runs()


def model_type(spec):
    """A model's type, or {type, impl} for an implementation other than the reference ncps."""
    impl = spec.get("impl", "ncps")
    return spec["type"] if impl == "ncps" else {"type": spec["type"], "impl": impl}


def published_setting():
    """results.published for the published table: its file, name maps and sigmas, the claims'
    min_seeds, and the study's data set entries (their protocols) and models."""
    pub = RESULTS.get("published")
    if not pub:
        return None
    datasets = {name: config["datasets"][name] for name in pub["datasets"] if name in config["datasets"]}
    return {
        **pub,
        "min_seeds": RESULTS["claims"]["min_seeds"],
        "dataset_config": datasets,
        "study_models": STUDY["models"],
    }


# The tables of this study: a table with `when` only where that key of config `results` (or a
# top-level section of that name, such as `evaluation`) is set.
STUDY_TABLES = {name: t for name, t in TABLES.items() if not t.when or RESULTS.get(t.when) or config.get(t.when)}


def table_inputs(table):
    """A table's input tables by name: its own and those of its optional ones the study writes."""
    names = list(table.inputs) + [name for name in table.optional if name in STUDY_TABLES]
    files = {name: table_file(name) for name in names}
    if "published" in table.settings:  # the published numbers: a changed file redoes the table
        files["published_file"] = RESULTS["published"]["file"]
    return files


# What each setting of a table or figure (liquidbench.results.registry.SETTINGS) is in this study.
TABLE_SETTINGS = {
    "hardware": as_json({name: HARDWARE[name] for name in STUDY["hardware"]}),
    "threshold": RESULTS["knee_threshold"],
    "baselines": as_json(RESULTS["scaling_baselines"]),
    "model_types": as_json({name: model_type(config["models"][name]) for name in STUDY["models"]}),
    "targets": as_json(RESULTS["targets"]),
    "settings": as_json(RESULTS["claims"]),
    "published": as_json(published_setting()),
}


def table_rule(table):
    """Name of the job writing a table, after its subcommand (summarize, time_to_target, ...)."""
    return table.command.replace("-", "_")


def table_file(name, ext="csv"):
    return study_path(f"results/tables/{name}.{ext}")


def table_args(table):
    """The table's inputs and settings as shell-quoted arguments of its subcommand. A rule's shell
    command is evaluated again when its job runs, after the loop that declares the table rules has
    moved on: so the command is the same for every table and this string reaches it as a param."""
    args = [f"--{name} {path}" for name, path in table_inputs(table).items() if name != "published_file"]
    return " ".join(args + [setting_args(table.settings)])


def setting_args(keys):
    """Settings of a table or figure as shell-quoted command-line arguments."""
    return " ".join(f"{SETTINGS[key].flag} {shlex.quote(str(TABLE_SETTINGS[key]))}" for key in keys)


# every table is written in these formats (the table rule's outputs)
TABLE_FORMATS = ("csv", "md", "tex", "html")


# The reference results this study is compared with (config results.reference, README "Comparing
# with a reference"); without one there is no compare job.
REFERENCE = RESULTS["reference"]


def compare_inputs():
    """What the compare job reads: the reference folder's files and this study's compared tables. A
    configured reference that is not a reference or results folder (or of another format) fails at
    start, naming the config key."""
    from liquidbench.results.reference import COMPARED_TABLES, side_files

    try:
        files = side_files(REFERENCE)
    except ValueError as exc:
        raise ValueError(f"config key 'results.reference': {exc}") from None
    return {"reference": files, **{name: table_file(name) for name in COMPARED_TABLES}}


COMPARE_INPUTS = compare_inputs() if REFERENCE else {}


def folder_of_table(path):
    """The results or reference folder a table lies in (FOLDER/tables/NAME.csv)."""
    return os.path.dirname(os.path.dirname(path))


def compare_files():
    """The compare table in every format (none without a reference)."""
    return [table_file("compare", ext) for ext in TABLE_FORMATS] if REFERENCE else []


def figure_files():
    return [f"{figure_dir()}/{stem}.{ext}" for stem in figure_stems(STUDY["datasets"]) for ext in ("png", "pdf")]


def figure_dir():
    return study_path("results/figures")


def results_targets():
    """The targets of `all`. The runs are targets themselves, not only inputs of the tables;
    Snakemake (>= 7.7) does not rebuild a missing intermediate file whose downstream outputs exist
    and are up to date, so a deleted or purged run directory would otherwise never be trained again."""
    tables = [table_file(name, ext) for name in STUDY_TABLES for ext in TABLE_FORMATS]
    return expected_runs() + [table_file("runs"), table_file("history")] + tables + compare_files() + figure_files()


def figure_outputs():
    """Every figure; the PNGs go into the report with the caption of their kind."""
    out = []
    for stem in figure_stems(STUDY["datasets"]):
        png = f"{figure_dir()}/{stem}.png"
        caption = f"../report/fig_{figure_kind(stem)}.rst"
        out.append(report(png, caption=caption, category="Figures", labels={"figure": stem}))
        out.append(f"{figure_dir()}/{stem}.pdf")
    return out


# The evaluation stage (workflow/rules/evaluate.smk): the `evaluation` section, its defaults filled
# in by the schema's validation; absent, the study has no evaluation stage.
EVALUATION = config.get("evaluation")
# the sine task's extra test sets, beside (not inside) the prepared data set's folder: `prepare`
# replaces that folder as a whole, which would take a file of another rule with it
EVALUATION_FILE = study_path("data/processed/{dataset}.evaluation.npz")


def sine_target(name):
    """The target of data set `name` if it is a sine data set (liquidbench.data.sine), else None."""
    entry = config["datasets"][name]
    return target_of_sine(entry.get("params") or {}) if entry["kind"] == "sine" else None


def horizon_datasets():
    """The data sets the closed-loop horizon runs on (liquidbench.evaluate.settings.horizon_applies:
    those `evaluation.families.horizon.datasets` lists, else every forecasting sine data set). A
    listed data set that is not defined, or cannot take the horizon, fails here, before any job."""
    grid = EVALUATION["families"].get("horizon") if EVALUATION else None
    if not grid:
        return set()
    for name in grid.get("datasets", []):
        if name not in config["datasets"]:
            raise ValueError(
                f"config key 'evaluation.families.horizon.datasets' names '{name}', which is not "
                f"defined under 'datasets' (defined: {', '.join(sorted(config['datasets']))})"
            )
    return {name for name in config["datasets"] if horizon_applies(grid, name, sine_target(name))}


HORIZON_DATASETS = horizon_datasets()


def evaluation_sets_settings(dataset):
    """What a sine data set's evaluation sets depend on: the seed, the shift grid, and the horizon
    grid where the horizon runs on it; so that a changed noise or drop grid prepares nothing again."""
    families = {k: v for k, v in EVALUATION["families"].items() if k == "shift"}
    if dataset in HORIZON_DATASETS:
        families["horizon"] = {k: v for k, v in EVALUATION["families"]["horizon"].items() if k != "datasets"}
    return as_json({**EVALUATION, "families": families})


def evaluation_inputs(wildcards):
    """An evaluation job's inputs: the run's metrics and kept weights, its data set, and for a sine
    data set with shift configured, or the horizon running on it, its evaluation sets."""
    run = RUN_DIR.format(**wildcards)
    files = {"metrics": f"{run}/metrics.json", "weights": f"{run}/weights.pt", "data": dataset_files(wildcards.dataset)}
    if needs_evaluation_sets(wildcards.dataset):
        files["extra"] = EVALUATION_FILE.format(dataset=wildcards.dataset)
    return files


def needs_evaluation_sets(dataset):
    shift = "shift" in EVALUATION["families"]
    return config["datasets"][dataset]["kind"] == "sine" and (shift or dataset in HORIZON_DATASETS)


def evaluation_runs():
    """Every run's evaluation.json (with results.allow_missing, those of runs that left metrics)."""
    return [m.replace("metrics.json", "evaluation.json") for m in expected_runs()]


def evaluation_figure_outputs():
    from liquidbench.results.registry import EVALUATION_FIGURES

    out = []
    for stem in EVALUATION_FIGURES:
        png, caption = f"{figure_dir()}/{stem}.png", f"../report/fig_{stem}.rst"
        out.append(report(png, caption=caption, category="Figures", labels={"figure": stem}))
        out.append(f"{figure_dir()}/{stem}.pdf")
    return out


def evaluation_targets():
    """The evaluation stage's targets of `all`: every run's evaluation and the figures (its tables
    are among the study's tables); none without an `evaluation` section."""
    if not EVALUATION:
        return []
    from liquidbench.results.registry import EVALUATION_FIGURES

    return evaluation_runs() + evaluation_figure_files()


def evaluation_figure_files():
    """The evaluation stage's figures (none without an `evaluation` section)."""
    if not EVALUATION:
        return []
    from liquidbench.results.registry import EVALUATION_FIGURES

    return [f"{figure_dir()}/{stem}.{ext}" for stem in EVALUATION_FIGURES for ext in ("png", "pdf")]


def result_steps():
    """(outputs, inputs) of every step from the runs to the figures: aggregation, each table, the figures."""
    steps = [([table_file("runs"), table_file("history")], expected_runs())]
    for name, table in STUDY_TABLES.items():
        steps.append(([table_file(name, ext) for ext in TABLE_FORMATS], list(table_inputs(table).values())))
    steps.append((figure_files(), [table_file(name) for name in figure_inputs()]))
    if REFERENCE:
        files = [f for value in COMPARE_INPUTS.values() for f in ([value] if isinstance(value, str) else value)]
        steps.append((compare_files(), files))
    if EVALUATION:
        steps.append(([table_file("evaluation"), table_file("evaluation_runs")], evaluation_runs()))
        steps.append((evaluation_figure_files(), [table_file("evaluation")]))
    return steps


def stale_results():
    """Tables and figures that no longer follow from what they are made of: one of their inputs is
    missing, newer than they are, or stale itself (a failed job's outputs are removed by Snakemake)."""
    stale, changed = set(), True
    steps = result_steps()
    while changed:
        changed = False
        for outputs, inputs in steps:
            if set(outputs) <= stale:
                continue
            present = [o for o in outputs if os.path.exists(o)]
            oldest = min((os.path.getmtime(o) for o in present), default=None)
            if (
                len(present) < len(outputs)
                or any(i in stale or not os.path.exists(i) for i in inputs)
                or any(os.path.getmtime(i) > oldest for i in inputs)
            ):
                stale.update(outputs)
                changed = True
    return sorted(stale)


def remove_stale_results():
    """After a failed step, no table or figure that depends on it is left looking current."""
    removed = [path for path in stale_results() if os.path.exists(path)]
    for path in removed:
        os.remove(path)
    if removed:
        logger.warning(
            "removed %d table(s) and figure(s) that depend on a failed or missing step: %s"
            % (len(removed), ", ".join(removed))
        )
