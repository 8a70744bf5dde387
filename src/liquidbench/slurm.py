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
  (``srun ... torchrun``, see ``launcher`` below).
"""

from __future__ import annotations

from .train.settings import Hardware

KEYS = ("nodes", "tasks", "tasks_per_node", "tasks_per_gpu", "cpus_per_task", "mem_mb", "runtime",
        "gpus", "gres", "mpi")
# `--group-components cpu-short=N` puts up to N one-process CPU training jobs into one Slurm job
# (docs/cluster.md, "Grouping short CPU jobs"). Multi-process and GPU jobs are never grouped: each needs its
# own allocation and launcher.
SHORT_CPU_GROUP = "cpu-short"
# the tuning stage's trials group apart: a trial feeds its selection, which feeds the runs, so one
# group holding both would depend on itself (--group-components cpu-short-trials=N)
SHORT_CPU_TRIALS = "cpu-short-trials"


def job_resources(hw: Hardware) -> dict:
    """Slurm resources for one run on hardware entry ``hw`` (its resources given)."""
    res = hw.resources
    if res is None:
        raise ValueError(f"hardware '{hw.name}': resources (mem_mb, runtime) are needed for a Slurm request")
    nodes, nproc = hw.nodes, hw.nproc_per_node
    if res.cpus_per_task % nproc:
        raise ValueError(
            f"hardware '{hw.name}': resources.cpus_per_task ({res.cpus_per_task}, CPUs per node) must be a "
            f"multiple of nproc_per_node ({nproc}) so that each rank gets the same CPUs"
        )
    if hw.device == "cuda" and res.gpus < nproc:
        raise ValueError(
            f"hardware '{hw.name}': device cuda with nproc_per_node {nproc} needs resources.gpus >= "
            f"{nproc} (GPUs per node), got {res.gpus}"
        )
    out = dict.fromkeys(KEYS)
    out.update(
        nodes=nodes,
        cpus_per_task=res.cpus_per_task // nproc,
        mem_mb=res.mem_mb,
        runtime=res.runtime,
        gpus=res.gpus * nodes,
        gres=f"gpu:{res.gpus}" if res.gpus else None,
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


def launcher(hw: Hardware) -> str:
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
    nproc, nodes = hw.nproc_per_node, hw.nodes
    if nodes * nproc == 1 and hw.backend is None:
        return ""
    cpus = hw.resources.cpus_per_task if hw.resources is not None else 1
    step = (
        f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 "
        f"--cpus-per-task={cpus} --kill-on-bad-exit=1"
    )
    if nodes == 1:
        torchrun = f"torchrun --standalone --nnodes=1 --nproc_per_node={nproc} --no-python"
        # one process: Slurm already runs the whole command as a one-task step
        return torchrun if nproc == 1 else f"${{SLURM_JOB_ID:+{step}}} {torchrun}"
    return (
        f"{step} torchrun --nnodes={nodes} --nproc_per_node={nproc} "
        "--rdzv_backend=c10d --rdzv_id=$SLURM_JOB_ID "
        '--rdzv_endpoint=$(scontrol show hostnames "$(squeue -h -j $SLURM_JOB_ID -o %N)" | head -n 1)'
        ":$((29500 + SLURM_JOB_ID % 1000)) "
        "--no-python"
    )


def job_group(hw: Hardware, components: int, name: str = SHORT_CPU_GROUP) -> str | None:
    """The job group of a training job: ``name`` (SHORT_CPU_GROUP, or SHORT_CPU_TRIALS for tuning
    trials) for a one-process CPU entry when grouping was asked for (``components``, the group's
    --group-components, above 1), else none."""
    one_cpu_process = hw.device == "cpu" and hw.world == 1 and hw.backend is None
    return name if one_cpu_process and components > 1 else None
