# Input functions and helpers shared by the rules. Plain lookups into the validated config;
# everything computational lives in the liquidbench package.

import json
import os
import re

from liquidbench.results import TABLES, figure_stems
from liquidbench.slurm import job_resources
from liquidbench.study import study_runs


def check_study():
    """Every name the study selects must be defined in its section."""
    for section in ("datasets", "models", "hardware"):
        for name in config["study"][section]:
            if name not in config[section]:
                raise ValueError(
                    f"config key 'study.{section}' names '{name}', which is not defined under "
                    f"'{section}' (defined: {', '.join(sorted(config[section])) or 'none'})"
                )
    for name in config["models"]:
        if "/" in name or name != name.strip():
            raise ValueError(f"config key 'models.{name}': a name may not contain '/' or spaces")


check_study()

STUDY = config["study"]
# the product less study.exclude, whose names must be defined (a typo fails here)
RUNS = study_runs(STUDY, {section: list(config[section]) for section in ("datasets", "models", "hardware")})
SPLITS = ["train", "val", "test"]
RUN_DIR = "results/runs/{dataset}/{model}/{hardware}/seed{seed}"


def as_json(obj):
    """A config value as one shell-quoted JSON argument (params that trigger reruns when changed)."""
    return json.dumps(obj, sort_keys=True)


def deep_merge(base, override):
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


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


def collect_sources():
    """Original file name -> source block, over every configured data set with a `source`; data
    sets that share a file (e.g. two HAR protocols) must agree on where it comes from."""
    sources = {}
    for name, dataset in config["datasets"].items():
        source = dataset.get("source")
        if source is None:
            continue
        source = {"sha256_of": "file", **source}
        file = source_file_name(source)
        if file in sources and {k: v for k, v in sources[file].items() if k != "file"} != {
            k: v for k, v in source.items() if k != "file"
        }:
            raise ValueError(
                f"config key 'datasets.{name}.source': file '{file}' is also the source of another data set "
                "with a different url, sha256 or sha256_of; they must agree"
            )
        sources[file] = source
    return sources


SOURCES = collect_sources()
# Mirror directories reach `liquidbench download` (a local rule, run by this process) through the
# environment rather than as a param: where a verified file came from does not change it, so a
# changed data_mirror must rerun nothing.
os.environ["LIQUIDBENCH_DATA_MIRROR"] = os.pathsep.join(data_mirrors())


def raw_file(dataset):
    """Where a real data set's source file is downloaded to."""
    return f"data/raw/{source_file_name(config['datasets'][dataset]['source'])}"


def dataset_files(dataset):
    return [f"data/processed/{dataset}/meta.json"] + [f"data/processed/{dataset}/{s}.npz" for s in SPLITS]


def training_params(wildcards):
    """Training settings of a run: the global ones, over them the data set's, over those the model's."""
    merged = deep_merge(config["training"], config["datasets"][wildcards.dataset].get("training", {}))
    return as_json(deep_merge(merged, config["models"][wildcards.model].get("training", {})))


def model_params(wildcards):
    """A model entry without its `training` (which reaches the job through training_params)."""
    return as_json({k: v for k, v in config["models"][wildcards.model].items() if k != "training"})


def hardware_entry(wildcards):
    return config["hardware"][wildcards.hardware]


def launcher(wildcards):
    """The process launcher for a hardware entry: nothing for one plain process, torchrun for DDP
    (an entry with a backend is DDP even with one process, e.g. ddp-1gpu).

    One node: torchrun --standalone starts nproc_per_node ranks; inside a Slurm job (SLURM_JOB_ID
    set) a multi-process torchrun runs as a job step started by srun, so that it gets the job's CPUs
    and GPUs and Slurm's signals (--signal, time limit, preemption). Several nodes (the job carries
    `mpi`, so the job script runs the command itself): srun starts one torchrun per node, which meet
    by c10d rendezvous on the allocation's first node, on a port derived from the job id. A rank
    that fails ends the step on every node (--kill-on-bad-exit).
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
        "--rdzv_endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):$((29500 + SLURM_JOB_ID % 1000)) "
        "--no-python"
    )


def train_resource(key):
    """One Slurm resource of a training job (see liquidbench.slurm); None leaves it unset."""
    return lambda w: job_resources(w.hardware, hardware_entry(w))[key]


def run_targets(name="metrics.json"):
    return [
        f"{RUN_DIR}/{name}".format(dataset=d, model=m, hardware=h, seed=seed) for d, m, h, seed in RUNS
    ]


# Defaults of the `results` section (workflow/schemas/config.schema.yaml documents each key).
RESULTS_DEFAULTS = {
    "knee_threshold": 0.7,
    "targets": {},
    "scaling_baselines": {},
    "claims": {"min_seeds": 2, "metric_tolerance_std": 1.0, "speedup_min": 1.0},
    "allow_missing": False,
    "published": None,
}
RESULTS = deep_merge(RESULTS_DEFAULTS, config.get("results") or {})


def expected_study():
    """The study's product as JSON for `liquidbench aggregate --expected` (missing runs are shown)."""
    return as_json({k: STUDY[k] for k in ("datasets", "models", "hardware", "seeds", "exclude") if k in STUDY})


def aggregate_inputs(wildcards):
    """Every run's metrics.json; with results.allow_missing only those that exist (after
    `snakemake --keep-going` left failed runs behind), the rest then appear as missing."""
    targets = run_targets("metrics.json")
    if RESULTS["allow_missing"]:
        return [t for t in targets if os.path.exists(t)]
    return targets


def study_hardware():
    return as_json({name: config["hardware"][name] for name in STUDY["hardware"]})


def model_types():
    return as_json({name: config["models"][name]["type"] for name in STUDY["models"]})


def table_files(name, exts=("csv", "md", "tex")):
    return [f"results/tables/{name}.{ext}" for ext in exts]


def result_tables():
    """Every table of the study: the fixed ones, and `published` where results.published is set."""
    return TABLES + (["published"] if RESULTS["published"] else [])


def results_targets():
    return (
        ["results/tables/runs.csv", "results/tables/history.csv"]
        + [f for t in result_tables() for f in table_files(t)]
        + figure_files()
    )


def published_settings():
    """results.published for `liquidbench published`: the name maps, sigmas and the claims' min_seeds."""
    pub = RESULTS["published"]
    return as_json({"datasets": pub["datasets"], "models": pub["models"], "sigmas": pub.get("sigmas", 2),
                    "min_seeds": RESULTS["claims"]["min_seeds"]})


def published_dataset_config():
    return as_json({name: config["datasets"][name] for name in RESULTS["published"]["datasets"] if name in config["datasets"]})


def figure_files():
    return [f"results/figures/{stem}.{ext}" for stem in figure_stems(STUDY["datasets"]) for ext in ("png", "pdf")]


def table_csv(name):
    """A table's CSV, in the report with the caption workflow/report/{name}.rst."""
    return report(f"results/tables/{name}.csv", caption=f"../report/{name}.rst", category="Tables", labels={"table": name})


def table_shell(cmd):
    """A table subcommand with the rule's three outputs and its log."""
    return f"{cmd} --out-csv {{output.csv}} --out-md {{output.md}} --out-tex {{output.tex}} > {{log}} 2>&1"


def figure_outputs():
    """Every figure; the PNGs go into the report with the caption of their kind."""
    out = []
    for stem in figure_stems(STUDY["datasets"]):
        kind = "loss_curves" if stem.startswith("loss_curves_") else stem
        png = f"results/figures/{stem}.png"
        out.append(report(png, caption=f"../report/fig_{kind}.rst", category="Figures", labels={"figure": stem}))
        out.append(f"results/figures/{stem}.pdf")
    return out
