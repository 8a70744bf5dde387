# Aggregation: run directories -> tables (CSV, Markdown, LaTeX) -> figures, all in the report.
# Cheap; runs where Snakemake runs. `snakemake --report results/report.html` collects every
# output wrapped in report() with its caption from workflow/report/.


localrules:
    aggregate,
    summarize,
    scaling,
    ratios,
    time_to_target,
    claims,
    published,
    provenance,
    plot,


rule aggregate:
    input:
        aggregate_inputs,
    output:
        runs=report("results/tables/runs.csv", caption="../report/runs.rst", category="Tables", labels={"table": "runs"}),
        history="results/tables/history.csv",
    params:
        expected=expected_study(),
    log:
        "logs/results/aggregate.log",
    shell:
        "liquidbench aggregate {input} --expected '{params.expected}' "
        "--out-runs {output.runs} --out-history {output.history} > {log} 2>&1"


rule summarize:
    input:
        "results/tables/runs.csv",
    output:
        csv=table_csv("summary"),
        md="results/tables/summary.md",
        tex="results/tables/summary.tex",
    log:
        "logs/results/summarize.log",
    shell:
        table_shell("liquidbench summarize --runs {input}")


rule scaling:
    input:
        "results/tables/summary.csv",
    output:
        csv=table_csv("scaling"),
        md="results/tables/scaling.md",
        tex="results/tables/scaling.tex",
    params:
        hardware=study_hardware(),
        threshold=RESULTS["knee_threshold"],
        baselines=as_json(RESULTS["scaling_baselines"]),
    log:
        "logs/results/scaling.log",
    shell:
        table_shell(
            "liquidbench scaling --summary {input} --hardware-config '{params.hardware}' "
            "--threshold {params.threshold} --baselines '{params.baselines}'"
        )


rule ratios:
    input:
        "results/tables/summary.csv",
    output:
        csv=table_csv("ratios"),
        md="results/tables/ratios.md",
        tex="results/tables/ratios.tex",
    params:
        models=model_types(),
    log:
        "logs/results/ratios.log",
    shell:
        table_shell("liquidbench ratios --summary {input} --model-types '{params.models}'")


rule time_to_target:
    input:
        runs="results/tables/runs.csv",
        history="results/tables/history.csv",
    output:
        csv=table_csv("time_to_target"),
        md="results/tables/time_to_target.md",
        tex="results/tables/time_to_target.tex",
    params:
        targets=as_json(RESULTS["targets"]),
    log:
        "logs/results/time_to_target.log",
    shell:
        table_shell(
            "liquidbench time-to-target --runs {input.runs} --history {input.history} --targets '{params.targets}'"
        )


rule claims:
    input:
        summary="results/tables/summary.csv",
        scaling="results/tables/scaling.csv",
        # with results.published: one claim per compared data set
        published=table_files("published", ["csv"]) if RESULTS["published"] else [],
    output:
        csv=table_csv("claims"),
        md="results/tables/claims.md",
        tex="results/tables/claims.tex",
    params:
        models=model_types(),
        settings=as_json(RESULTS["claims"]),
        published=lambda w, input: f"--published {input.published}" if input.published else "",
    log:
        "logs/results/claims.log",
    shell:
        table_shell(
            "liquidbench claims --summary {input.summary} --scaling {input.scaling} "
            "--model-types '{params.models}' --settings '{params.settings}' {params.published}"
        )


if RESULTS["published"]:

    rule published:
        """Published results (results.published.file) against the reproduced ones."""
        input:
            summary="results/tables/summary.csv",
            published=RESULTS["published"]["file"],
        output:
            csv=table_csv("published"),
            md="results/tables/published.md",
            tex="results/tables/published.tex",
        params:
            settings=published_settings(),
            datasets=published_dataset_config(),
            models=STUDY["models"],
        log:
            "logs/results/published.log",
        shell:
            table_shell(
                "liquidbench published --summary {input.summary} --published {input.published:q} "
                "--settings '{params.settings}' --dataset-config '{params.datasets}' --study-models {params.models}"
            )


rule provenance:
    input:
        "results/tables/runs.csv",
    output:
        csv=table_csv("provenance"),
        md="results/tables/provenance.md",
        tex="results/tables/provenance.tex",
    log:
        "logs/results/provenance.log",
    shell:
        table_shell("liquidbench provenance --runs {input}")


rule plot:
    input:
        summary="results/tables/summary.csv",
        history="results/tables/history.csv",
        scaling="results/tables/scaling.csv",
    output:
        figure_outputs(),
    params:
        datasets=STUDY["datasets"],
    log:
        "logs/results/plot.log",
    shell:
        "liquidbench plot --summary {input.summary} --history {input.history} --scaling {input.scaling} "
        "--out-dir results/figures --datasets {params.datasets} > {log} 2>&1"
