# The evaluation stage (config `evaluation`): every run's kept weights tested under the study's
# perturbations, never retrained (liquidbench.evaluate). The grids reach the jobs as params, so a
# changed grid reruns the evaluation jobs and the tables after them only; training jobs do not
# depend on anything here. Without an `evaluation` section the study has none of these jobs.

if EVALUATION:

    localrules:
        collect_evaluation,
        plot_evaluation,

    rule prepare_evaluation_sets:
        """The sine task's extra test sets: a shifted distribution per shift level and, for a
        forecasting data set the horizon runs on, long sequences for the closed loop, seeded by
        evaluation.seed (liquidbench.data.sine.evaluation_sets)."""
        output:
            EVALUATION_FILE,
        log:
            log_file("prepare/{dataset}-evaluation.log"),
        wildcard_constraints:
            dataset=datasets_of_kind("sine"),
        params:
            params=data_params,
            settings=evaluation_sets_settings,
        shell:
            "liquidbench prepare-eval --params {params.params:q} --settings {params.settings:q} "
            "--out {output:q} > {log:q} 2>&1"

    rule evaluate:
        """One run under every configured perturbation family, and its memory figures."""
        input:
            unpack(evaluation_inputs),
        output:
            f"{RUN_DIR}/evaluation.json",
        log:
            f"{RUN_DIR}/evaluate.log",
        wildcard_constraints:
            seed=r"\d+",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            data=lambda w: processed_dir(w.dataset),
            settings=as_json(EVALUATION),
            extra=lambda w, input: f"--extra {shlex.quote(input.extra)}" if "extra" in input.keys() else "",
        shell:
            'liquidbench evaluate --run-dir "$(dirname {input.metrics:q})" --data {params.data:q} '
            "--settings {params.settings:q} {params.extra} --out {output:q} > {log:q} 2>&1"

    rule collect_evaluation:
        input:
            expected_runs("evaluation.json"),
        output:
            rows=table_file("evaluation"),
            runs=table_file("evaluation_runs"),
        log:
            log_file("results/collect_evaluation.log"),
        shell:
            "liquidbench collect-evaluation {input:q} --out-rows {output.rows:q} --out-runs {output.runs:q} > {log:q} 2>&1"

    rule plot_evaluation:
        input:
            evaluation=table_file("evaluation"),
        output:
            figure_outputs(EVALUATION_FIGURES),
        log:
            log_file("results/plot_evaluation.log"),
        params:
            out_dir=lambda w, output: os.path.dirname(output[0]),
        shell:
            "liquidbench plot-evaluation --evaluation {input.evaluation:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
