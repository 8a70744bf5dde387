# Input functions and helpers shared by the rules. Plain lookups into the validated config;
# everything computational lives in the liquidbench package.

import json
import re

from liquidbench.slurm import job_resources


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


def dataset_files(dataset):
    return [f"data/processed/{dataset}/meta.json"] + [f"data/processed/{dataset}/{s}.npz" for s in SPLITS]


def training_params(wildcards):
    return as_json(deep_merge(config["training"], config["datasets"][wildcards.dataset].get("training", {})))


def hardware_entry(wildcards):
    return config["hardware"][wildcards.hardware]


def launcher(wildcards):
    """The process launcher for a hardware entry: nothing for one process, torchrun for DDP.

    Inside a Slurm job (SLURM_JOB_ID set) torchrun runs as a job step started by srun, one per
    node, so that it gets the job's CPUs and GPUs on every node and Slurm's signals (--signal,
    time limit, preemption); outside Slurm a single-node run starts torchrun directly.
    """
    hw = hardware_entry(wildcards)
    nproc, nodes = hw["nproc_per_node"], hw["nodes"]
    if nodes * nproc == 1:
        return ""
    step = f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 --cpus-per-task={hw['resources']['cpus_per_task']}"
    if nodes == 1:
        return f"${{SLURM_JOB_ID:+{step}}} torchrun --standalone --nnodes=1 --nproc_per_node={nproc} --no-python"
    # One torchrun per node (srun starts them), rendezvous on the allocation's first node.
    return (
        f"{step} torchrun --nnodes={nodes} --nproc_per_node={nproc} --no-python "
        "--rdzv_backend=c10d --rdzv_id=$SLURM_JOB_ID "
        "--rdzv_endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500"
    )


def train_resource(key):
    """One Slurm resource of a training job (see liquidbench.slurm); None leaves it unset."""
    return lambda w: job_resources(w.hardware, hardware_entry(w))[key]


def run_targets(name="metrics.json"):
    return expand(
        f"{RUN_DIR}/{name}",
        dataset=STUDY["datasets"],
        model=STUDY["models"],
        hardware=STUDY["hardware"],
        seed=STUDY["seeds"],
    )


def results_targets():
    return [
        "results/tables/runs.csv",
        "results/tables/summary.csv",
        "results/tables/summary.md",
    ] + figure_files()


def figure_files():
    stems = ["train_time", "test_metric"] + [f"loss_curves_{d}" for d in STUDY["datasets"]]
    return [f"results/figures/{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]
