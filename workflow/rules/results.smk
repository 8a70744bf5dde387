# Aggregation: run directories -> tables (CSV, Markdown, LaTeX) -> figures, all in the report.
# Cheap; runs where Snakemake runs. `snakemake --report ROOT/results/report.html` collects every
# output wrapped in report() with its caption from workflow/report/. The tables and figures are
# those of liquidbench.results.registry: one rule per table, declared below.


localrules:
    aggregate,
    plot,


rule aggregate:
    input:
        lambda w: expected_runs(),
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
        # the study's product: missing runs are shown
        expected=as_json({k: STUDY[k] for k in ("datasets", "models", "hardware", "seeds", "exclude") if k in STUDY}),
    shell:
        "liquidbench aggregate {input:q} --expected {params.expected:q} "
        "--out-runs {output.runs:q} --out-history {output.history:q} > {log:q} 2>&1"


# One rule per table of liquidbench.results.registry.TABLES, named after its subcommand: each runs
# `liquidbench SUBCOMMAND` on its input tables with its settings (common.smk: table_inputs,
# table_outputs, table_params); tests/test_workflow_layer.py checks that these rules and the registry
# agree. Each runs where Snakemake runs; `use rule ... with:` resets `localrule`, so each says it again.
rule summarize:
    input:
        **table_inputs("summary"),
    output:
        **table_outputs("summary"),
    log:
        log_file("results/summarize.log"),
    localrule: True
    params:
        **table_params("summary"),
    shell:
        "liquidbench {params.command} {params.args} "
        "--out-csv {output.csv:q} --out-md {output.md:q} --out-tex {output.tex:q} "
        "--out-html {output.html:q} > {log:q} 2>&1"


use rule summarize as headline with:
    input:
        **table_inputs("headline"),
    output:
        **table_outputs("headline"),
    log:
        log_file("results/headline.log"),
    localrule: True
    params:
        **table_params("headline"),


use rule summarize as scaling with:
    input:
        **table_inputs("scaling"),
    output:
        **table_outputs("scaling"),
    log:
        log_file("results/scaling.log"),
    localrule: True
    params:
        **table_params("scaling"),


use rule summarize as ratios with:
    input:
        **table_inputs("ratios"),
    output:
        **table_outputs("ratios"),
    log:
        log_file("results/ratios.log"),
    localrule: True
    params:
        **table_params("ratios"),


use rule summarize as time_to_target with:
    input:
        **table_inputs("time_to_target"),
    output:
        **table_outputs("time_to_target"),
    log:
        log_file("results/time_to_target.log"),
    localrule: True
    params:
        **table_params("time_to_target"),


use rule summarize as profiles with:
    input:
        **table_inputs("profiles"),
    output:
        **table_outputs("profiles"),
    log:
        log_file("results/profiles.log"),
    localrule: True
    params:
        **table_params("profiles"),


if "tuning" in STUDY_TABLES:

    use rule summarize as tuning with:
        input:
            **table_inputs("tuning"),
        output:
            **table_outputs("tuning"),
        log:
            log_file("results/tuning.log"),
        localrule: True
        params:
            **table_params("tuning"),


if "tuned" in STUDY_TABLES:

    use rule summarize as tuned with:
        input:
            **table_inputs("tuned"),
        output:
            **table_outputs("tuned"),
        log:
            log_file("results/tuned.log"),
        localrule: True
        params:
            **table_params("tuned"),


use rule summarize as claims with:
    input:
        **table_inputs("claims"),
    output:
        **table_outputs("claims"),
    log:
        log_file("results/claims.log"),
    localrule: True
    params:
        **table_params("claims"),


if "published" in STUDY_TABLES:

    use rule summarize as published with:
        input:
            **table_inputs("published"),
        output:
            **table_outputs("published"),
        log:
            log_file("results/published.log"),
        localrule: True
        params:
            **table_params("published"),


use rule summarize as provenance with:
    input:
        **table_inputs("provenance"),
    output:
        **table_outputs("provenance"),
    log:
        log_file("results/provenance.log"),
    localrule: True
    params:
        **table_params("provenance"),


if "robustness" in STUDY_TABLES:

    use rule summarize as robustness with:
        input:
            **table_inputs("robustness"),
        output:
            **table_outputs("robustness"),
        log:
            log_file("results/robustness.log"),
        localrule: True
        params:
            **table_params("robustness"),


if "memory" in STUDY_TABLES:

    use rule summarize as memory with:
        input:
            **table_inputs("memory"),
        output:
            **table_outputs("memory"),
        log:
            log_file("results/memory.log"),
        localrule: True
        params:
            **table_params("memory"),


if "robustness_claims" in STUDY_TABLES:

    use rule summarize as robustness_claims with:
        input:
            **table_inputs("robustness_claims"),
        output:
            **table_outputs("robustness_claims"),
        log:
            log_file("results/robustness_claims.log"),
        localrule: True
        params:
            **table_params("robustness_claims"),


# The study against its reference results (config results.reference): declared only where one is
# configured, so that a study without a reference has no compare job.
if REFERENCE:

    rule compare:
        input:
            **compare_inputs(),
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
            # the folders the tables lie in (FOLDER/tables/NAME.csv)
            reference=lambda w, input: os.path.dirname(os.path.dirname(input.reference[-1])),
            results=lambda w, input: os.path.dirname(os.path.dirname(input.summary)),
            min_seeds=RESULTS["claims"]["min_seeds"],
        shell:
            "liquidbench compare {params.reference:q} {params.results:q} --min-seeds {params.min_seeds} "
            "--out-csv {output.csv:q} --out-md {output.md:q} --out-tex {output.tex:q} "
            "--out-html {output.html:q} > {log:q} 2>&1"


rule plot:
    input:
        **{name: table_file(name) for name in figure_inputs()},
    output:
        figure_outputs(figure_stems(STUDY["datasets"]), figure_kind),
    log:
        log_file("results/plot.log"),
    params:
        datasets=STUDY["datasets"],
        out_dir=lambda w, output: os.path.dirname(output[0]),
        settings=setting_args(figure_settings(), TABLE_SETTINGS),
    shell:
        "liquidbench plot "
        + " ".join(f"--{name} {{input.{name}:q}}" for name in figure_inputs())
        + " --out-dir {params.out_dir:q} --datasets {params.datasets:q} {params.settings} > {log:q} 2>&1"


if "scaling_model" in STUDY_TABLES:

    use rule summarize as scaling_model with:
        input:
            **table_inputs("scaling_model"),
        output:
            **table_outputs("scaling_model"),
        log:
            log_file("results/scaling_model.log"),
        localrule: True
        params:
            **table_params("scaling_model"),
