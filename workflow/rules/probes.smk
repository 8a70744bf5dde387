# The scaling model's probes (config `scaling_model`, liquidbench.results.scaling_settings): per data
# set x model with DDP runs, the time of one training step against the per-process batch on each
# device (run as that device's one-process baseline entry), and per DDP entry the time of one
# all-reduce against the message size, launched as that entry's runs are. The probe settings reach
# the jobs as params: a changed grid reruns the probes it changes and what follows, never a run.
# The scaling_model table (results.smk) fits and predicts from them. Without the section there are none.

if SCALING_MODEL:

    localrules:
        collect_probes,
        plot_scaling_model,

    rule probe_step:
        """One model's step time against the per-process batch (liquidbench.train.probes.step_probe)."""
        input:
            step_probe_inputs,
        output:
            STEP_PROBE,
        log:
            log_file("probes/step/{dataset}/{model}/{device}.log"),
        wildcard_constraints:
            device="cpu|cuda",
        threads: lambda w: probe_entry(w).threads
        resources:
            **train_resources(lambda w: PROBE_ENTRIES[w.device]),
        params:
            model=lambda w: as_json(model_of(config, w.model)),
            data=lambda w: processed_dir(w.dataset),
            threads=lambda w: probe_entry(w).threads,
            args=step_probe_args,
            repeats=SCALING_MODEL.repeats,
            warmup=SCALING_MODEL.warmup,
            seed=SCALING_MODEL.seed,
        shell:
            "liquidbench probe-step --data {params.data:q} --model-params {params.model:q} {params.args} "
            "--device {wildcards.device} --threads {params.threads} --warmup {params.warmup} "
            "--repeats {params.repeats} --seed {params.seed} --out {output:q} > {log:q} 2>&1"

    rule probe_allreduce:
        """All-reduce time against the message size on one DDP entry's processes (liquidbench.train.probes)."""
        output:
            ALLREDUCE_PROBE,
        log:
            log_file("probes/allreduce/{hardware}.log"),
        threads: lambda w: HARDWARE[w.hardware].nproc_per_node * HARDWARE[w.hardware].threads
        resources:
            **train_resources(),
        params:
            launcher=lambda w: launcher(HARDWARE[w.hardware]),
            backend=lambda w: HARDWARE[w.hardware].backend,
            threads=lambda w: HARDWARE[w.hardware].threads,
            sizes=",".join(map(str, SCALING_MODEL.sizes)),
            repeats=SCALING_MODEL.repeats,
            warmup=SCALING_MODEL.warmup,
        shell:
            "{params.launcher} liquidbench probe-allreduce --backend {params.backend} --sizes {params.sizes} "
            "--threads {params.threads} --warmup {params.warmup} --repeats {params.repeats} "
            "--out {output:q} > {log:q} 2>&1"

    rule collect_probes:
        """Every probe point of the study, one row each (the scaling_model table's input)."""
        input:
            [path for kind in probe_files().values() for _, path in kind],
        output:
            table_file("probes"),
        log:
            log_file("results/collect_probes.log"),
        params:
            index=as_json(probe_files()),
        shell:
            "liquidbench collect-probes --index {params.index:q} --out {output:q} > {log:q} 2>&1"

    rule plot_scaling_model:
        """Predicted speedup to the widest width with its band, the measured points and the knee."""
        input:
            table=table_file("scaling_model"),
        output:
            figure_outputs(SCALING_MODEL_FIGURES),
        log:
            log_file("results/plot_scaling_model.log"),
        params:
            out_dir=lambda w, output: os.path.dirname(output[0]),
        shell:
            "liquidbench plot-scaling-model --table {input.table:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
