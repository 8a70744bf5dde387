"""The Slurm request of a training job, from its hardware entry.

A hardware entry's ``resources`` are per node: ``cpus_per_task`` CPUs, ``mem_mb`` memory and
``gpus`` GPUs on each of ``nodes`` nodes, for ``runtime`` minutes. One DDP rank is one Slurm task,
so a configuration with ``nproc_per_node`` ranks on ``nodes`` nodes is one job of
``nodes x nproc_per_node`` tasks, each with ``cpus_per_task / nproc_per_node`` CPUs.

The keys returned are the resources snakemake-executor-plugin-slurm understands; a value of None
means "not set" (Snakemake drops it):

- ``nodes`` -> ``--nodes``; ``mem_mb`` -> ``--mem`` (per node); ``runtime`` -> ``--time``
- ``cpus_per_task`` -> ``--cpus-per-task`` (per rank)
- ``tasks`` / ``tasks_per_node`` -> ``--ntasks`` / ``--ntasks-per-node``
- ``gres`` -> ``--gres=gpu:N`` (GPUs per node); ``gpus`` the job's GPUs in all
- ``mpi``: set for multi-process jobs, so that the plugin runs the command in the batch step
  instead of wrapping it in a one-task ``srun``; the rule's launcher starts its own job step
  (``srun ... torchrun``, see ``launcher()`` in workflow/rules/common.smk).
"""

from __future__ import annotations

from .train.settings import hardware_settings

KEYS = ("nodes", "tasks", "tasks_per_node", "tasks_per_gpu", "cpus_per_task", "mem_mb", "runtime",
        "gpus", "gres", "mpi")


def job_resources(name: str, hw: dict) -> dict:
    """Slurm resources for one run on hardware entry ``name`` (validated config)."""
    hw = hardware_settings(name, hw)
    res = hw["resources"]
    nodes = hw["nodes"]
    nproc = hw["nproc_per_node"]
    cpus_node = res["cpus_per_task"]
    gpus_node = res["gpus"]
    if cpus_node % nproc:
        raise ValueError(
            f"hardware '{name}': resources.cpus_per_task ({cpus_node}, CPUs per node) must be a "
            f"multiple of nproc_per_node ({nproc}) so that each rank gets the same CPUs"
        )
    if hw["device"] == "cuda" and gpus_node < nproc:
        raise ValueError(
            f"hardware '{name}': device cuda with nproc_per_node {nproc} needs resources.gpus >= "
            f"{nproc} (GPUs per node), got {gpus_node}"
        )
    out = dict.fromkeys(KEYS)
    out.update(
        nodes=nodes,
        cpus_per_task=cpus_node // nproc,
        mem_mb=res["mem_mb"],
        runtime=res["runtime"],
        gpus=gpus_node * nodes,
        gres=f"gpu:{gpus_node}" if gpus_node else None,
    )
    if nodes * nproc > 1:
        out["mpi"] = "srun"
        if nproc > 1:
            out["tasks_per_node"] = nproc
        else:
            # One rank per node: --ntasks=nodes. The plugin would turn `tasks` into
            # --ntasks-per-gpu for GPU jobs; 0 keeps it from doing so.
            out["tasks"] = nodes
            out["tasks_per_gpu"] = 0
    return out

