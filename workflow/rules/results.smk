# Aggregation: run directories -> tables (CSV, Markdown, LaTeX) -> figures, all in the report.
# Cheap; runs where Snakemake runs. `snakemake --report ROOT/results/report.html` collects every
# output wrapped in report() with its caption from workflow/report/. The tables and figures are
# those of liquidbench.results.registry: one rule per table, declared in the loop below.


localrules:
    aggregate,
    plot,


rule aggregate:
    input:
        aggregate_inputs,
    output:
        runs=report(
            table_file("runs"),
            caption="../report/runs.rst",
            category="Table data (CSV)",
            labels={"table": "runs"},
        ),
        history=table_file("history"),
    log:
        log_file("results/aggregate.log"),
    params:
        expected=expected_study(),
    shell:
        "liquidbench aggregate {input} --expected {params.expected:q} "
        "--out-runs {output.runs} --out-history {output.history} > {log} 2>&1"


for table_name, table in STUDY_TABLES.items():

    rule:
        name:
            table_rule(table)
        input:
            **table_inputs(table),
        output:
            html=report(
                table_file(table_name, "html"),
                caption=f"../report/{table_name}.rst",
                category="Tables",
                labels={"table": table_name},
            ),
            csv=report(
                table_file(table_name),
                caption=f"../report/{table_name}.rst",
                category="Table data (CSV)",
                labels={"table": table_name},
            ),
            md=table_file(table_name, "md"),
            tex=table_file(table_name, "tex"),
        log:
            log_file(f"results/{table_rule(table)}.log"),
        localrule: True
        params:
            command=table.command,
            args=table_args(table),
        shell:
            "liquidbench {params.command} {params.args} "
            "--out-csv {output.csv:q} --out-md {output.md:q} --out-tex {output.tex:q} "
            "--out-html {output.html:q} > {log:q} 2>&1"


# The study against its reference results (config results.reference): declared only where one is
# configured, so that a study without a reference has no compare job.
if REFERENCE:

    rule compare:
        input:
            **COMPARE_INPUTS,
        output:
            html=report(
                table_file("compare", "html"),
                caption="../report/compare.rst",
                category="Tables",
                labels={"table": "compare"},
            ),
            csv=report(
                table_file("compare"),
                caption="../report/compare.rst",
                category="Table data (CSV)",
                labels={"table": "compare"},
            ),
            md=table_file("compare", "md"),
            tex=table_file("compare", "tex"),
        log:
            log_file("results/compare.log"),
        localrule: True
        params:
            reference=lambda w, input: folder_of_table(input.reference[-1]),
            results=lambda w, input: folder_of_table(input.summary),
            min_seeds=RESULTS["claims"]["min_seeds"],
        shell:
            "liquidbench compare {params.reference:q} {params.results:q} --min-seeds {params.min_seeds} "
            "--out-csv {output.csv:q} --out-md {output.md:q} --out-tex {output.tex:q} "
            "--out-html {output.html:q} > {log:q} 2>&1"


rule plot:
    input:
        **{name: table_file(name) for name in figure_inputs()},
    output:
        figure_outputs(),
    log:
        log_file("results/plot.log"),
    params:
        datasets=STUDY["datasets"],
        out_dir=lambda w, output: os.path.dirname(output[0]),
        settings=setting_args(figure_settings()),
    shell:
        "liquidbench plot "
        + " ".join(f"--{name} {{input.{name}:q}}" for name in figure_inputs())
        + " --out-dir {params.out_dir:q} --datasets {params.datasets} {params.settings} > {log} 2>&1"
