# One training job per (dataset, model, hardware, seed); it keeps the best-validation weights
# (weights.pt, liquidbench.train.weights) for the evaluation stage. Hyper-parameters reach the job as params,
# so that changing one model's settings reruns that model's jobs only. A job stopped by SIGTERM
# (time limit, preemption) leaves {run_dir}/checkpoint.pt; running it again resumes from there.


rule train:
    input:
        train_inputs,
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        telemetry=f"{RUN_DIR}/telemetry.csv",
        weights=f"{RUN_DIR}/weights.pt",
    log:
        f"{RUN_DIR}/train.log",
    wildcard_constraints:
        seed=r"\d+",
    group:
        train_group
    threads: lambda w: HARDWARE[w.hardware].nproc_per_node * HARDWARE[w.hardware].threads
    # Slurm request from the hardware entry (resources per node; one task per DDP rank).
    resources:
        **train_resources(),
    params:
        model=lambda w: as_json(model_of(config, w.model)),
        training=lambda w: as_json(training_of(config, w.dataset, w.model)),
        hardware=lambda w: as_json(HARDWARE[w.hardware].as_dict()),
        launcher=lambda w: launcher(HARDWARE[w.hardware]),
        data=lambda w: processed_dir(w.dataset),
        seed=lambda w: w.seed,
        tuned=tuned_arg,
    # train.log keeps the lines of the earlier segments of a resumed run: Snakemake removes a job's
    # log before it starts, so the log has a second name (a hard link) in the run directory, whose
    # content starts the log of a job that resumes from the checkpoint. Success removes that name.
    shell:
        "d=$(dirname {output.metrics:q}); "
        'if test -e "$d/checkpoint.pt" && test -e "$d/.train.log.all"; then cp "$d/.train.log.all" {log:q}; else : > {log:q}; fi; '
        'ln -f {log:q} "$d/.train.log.all" 2> /dev/null || true; '
        "{params.launcher} liquidbench train --data {params.data:q} "
        "--dataset {wildcards.dataset} --model {wildcards.model} --hardware {wildcards.hardware} "
        "--seed {params.seed} --model-params {params.model:q} --train-params {params.training:q} "
        '--hardware-params {params.hardware:q} {params.tuned} --out "$d" >> {log:q} 2>&1; '
        'rm -f "$d/.train.log.all" "$d/.stale"'
