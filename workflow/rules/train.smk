# One training job per (dataset, model, hardware, seed). Hyper-parameters reach the job as params,
# so that changing one model's settings reruns that model's jobs only. A job stopped by SIGTERM
# (time limit, preemption) leaves {run_dir}/checkpoint.pt; running it again resumes from there.


rule train:
    input:
        lambda w: dataset_files(w.dataset),
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        telemetry=f"{RUN_DIR}/telemetry.csv",
    log:
        f"{RUN_DIR}/train.log",
    params:
        model=lambda w: as_json(config["models"][w.model]),
        training=training_params,
        hardware=lambda w: as_json(hardware_entry(w)),
        launcher=launcher,
    wildcard_constraints:
        seed=r"\d+",
    threads: lambda w: hardware_entry(w)["nproc_per_node"] * hardware_entry(w)["threads"]
    resources:
        mem_mb=lambda w: hardware_entry(w)["resources"]["mem_mb"],
        runtime=lambda w: hardware_entry(w)["resources"]["runtime"],
        cpus_per_task=lambda w: hardware_entry(w)["resources"]["cpus_per_task"],
        gpus=lambda w: hardware_entry(w)["resources"]["gpus"] * hardware_entry(w)["nodes"],
        nodes=lambda w: hardware_entry(w)["nodes"],
        # multi-node: the job script runs the command (srun inside starts one torchrun per node)
        mpi=lambda w: multinode(w, "srun"),
        tasks=lambda w: multinode(w, hardware_entry(w)["nodes"]),
    shell:
        "{params.launcher} liquidbench train --data data/processed/{wildcards.dataset} "
        "--dataset {wildcards.dataset} --model {wildcards.model} --hardware {wildcards.hardware} "
        "--seed {wildcards.seed} --model-params '{params.model}' --train-params '{params.training}' "
        "--hardware-params '{params.hardware}' --out $(dirname {output.metrics}) > {log} 2>&1"
