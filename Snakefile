# liquidbench: training efficiency and scalability of liquid neural networks (LTC, CfC) against
# LSTM and GRU, over data sets x models x hardware configurations x seeds.
#
#   snakemake --cores 2 --configfile config/local.yaml        # the local CPU study (make run)
#   snakemake --profile slurm                                 # the full study on a Slurm cluster
#
# Rules only orchestrate: each calls one `liquidbench` subcommand. See README.md.

from snakemake.utils import min_version

min_version("9.0")


# The full study unless the command line names its own file(s) (--configfile), which then stand
# alone instead of being merged over the full study. --config overrides apply in both cases.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/config.smk"  # --config typing and schema validation


# snakemake --report results/report.html: every table and figure with its caption.
report: "workflow/report/workflow.rst"


# The image every job runs in when Snakemake is started with --sdm apptainer (README:
# Containers). Set before the includes: a rule takes the global container when it is declared.
if config.get("container"):

    container: config["container"]


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/results.smk"


rule all:
    default_target: True
    input:
        results_targets(),
