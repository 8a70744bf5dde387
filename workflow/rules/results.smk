# Aggregation: run directories -> tables -> figures. Cheap; runs where Snakemake runs.


localrules:
    aggregate,
    summarize,
    plot,


rule aggregate:
    input:
        run_targets("metrics.json"),
    output:
        runs="results/tables/runs.csv",
        history="results/tables/history.csv",
    log:
        "logs/results/aggregate.log",
    shell:
        "liquidbench aggregate {input} --out-runs {output.runs} --out-history {output.history} > {log} 2>&1"


rule summarize:
    input:
        "results/tables/runs.csv",
    output:
        csv="results/tables/summary.csv",
        md="results/tables/summary.md",
    log:
        "logs/results/summarize.log",
    shell:
        "liquidbench summarize --runs {input} --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


rule plot:
    input:
        summary="results/tables/summary.csv",
        history="results/tables/history.csv",
    output:
        figure_files(),
    params:
        datasets=STUDY["datasets"],
    log:
        "logs/results/plot.log",
    shell:
        "liquidbench plot --summary {input.summary} --history {input.history} "
        "--out-dir results/figures --datasets {params.datasets} > {log} 2>&1"
