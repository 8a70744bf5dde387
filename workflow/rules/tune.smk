# The tuning stage (config `tuning`, liquidbench.tune): per data set x tuned model x hardware,
# `tuning.trials` training jobs at the trial points of a seeded quasi-random sequence, each at the
# tuning budget and scored on the validation split only; select_trials picks the best and the
# study's runs of that model train at its setting (rule train, --tuned). A trial's settings reach
# its job as params: a changed search space or trial count reruns the trials it changes, the
# selections and the runs after them, never another model's. Without `tuning` there are none.

if TUNING:

    localrules:
        select_trials,
        collect_trials,
        plot_tuning,

    # a trial is a training job: the train rule's command, resources and grouping, another folder
    use rule train as tune_trial with:
        input:
            trial_inputs,
        output:
            metrics=f"{TRIAL_DIR}/metrics.json",
            history=f"{TRIAL_DIR}/history.csv",
            telemetry=f"{TRIAL_DIR}/telemetry.csv",
            weights=f"{TRIAL_DIR}/weights.pt",
        log:
            f"{TRIAL_DIR}/train.log",
        wildcard_constraints:
            trial=r"\d+",
        group:
            trial_group
        params:
            model=lambda w: as_json(trial_run(w)[0]),
            training=lambda w: as_json(trial_run(w)[1]),
            hardware=lambda w: as_json(HARDWARE[w.hardware].as_dict()),
            launcher=lambda w: launcher(HARDWARE[w.hardware]),
            data=lambda w: processed_dir(w.dataset),
            seed=TUNING.seed,
            tuned="",

    rule select_trials:
        """The best trial of a data set x model x hardware by validation metric (ties: training
        time), and every trial's summary (liquidbench.tune.select)."""
        input:
            trial_files,
        output:
            SELECTED,
        log:
            log_file("tuning/{dataset}/{model}/{hardware}.log"),
        params:
            points=lambda w: as_json(trial_points_of(w)),
        shell:
            "liquidbench select-trials {input:q} --points {params.points:q} --out {output:q} > {log:q} 2>&1"

    rule collect_trials:
        """Every trial of the study, one row each, from the selections (the tuning tables' input)."""
        input:
            [SELECTED.format(dataset=d, model=m, hardware=h) for d, m, h in tuned_workloads()],
        output:
            table_file("trials"),
        log:
            log_file("results/collect_trials.log"),
        shell:
            "liquidbench collect-trials {input:q} --out {output:q} > {log:q} 2>&1"

    rule plot_tuning:
        """Validation metric against each searched value, per model (liquidbench.tune)."""
        input:
            trials=table_file("trials"),
        output:
            figure_outputs(TUNING_FIGURES),
        log:
            log_file("results/plot_tuning.log"),
        params:
            out_dir=lambda w, output: os.path.dirname(output[0]),
        shell:
            "liquidbench plot-tuning --trials {input.trials:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
