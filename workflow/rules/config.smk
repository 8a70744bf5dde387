# Loading the study: read the config files again with liquidbench's study reader, type the
# command-line values, then validate against the schema with messages that name the offending key.
# Included first; everything after may trust the config.

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from liquidbench.image import container_problem
from liquidbench.study import (
    check_evaluation_names,
    check_names,
    check_results_names,
    check_scaling_model,
    check_tuning,
    config_errors,
    study_config,
)


def config_sources(workflow):
    """The config files in the order Snakemake merges them (the Snakefile's `configfile:`, unless
    --replace-workflow-config, then each --configfile) and the --config values.

    Why read the files again: Snakemake reads them with PyYAML (YAML 1.1), where 1e-3 is a string,
    and gives --config values below the top level as strings. Typing every string of the merged
    config would also turn a quoted "2020" or "on" of a study file into a number or a boolean. So
    each file is read by liquidbench.study.load_study (quoted values stay strings, 1e-3 is a float,
    aliases that expand too far are refused before anything walks them), and only the command-line
    values are typed; later files and --config override earlier ones, as in Snakemake."""
    settings = workflow.config_settings
    from_command_line = [str(path) for path in settings.configfiles]
    # workflow.configfiles: the --configfile paths, then those the Snakefile's `configfile:` added
    from_snakefile = (
        []
        if settings.replace_workflow_config
        else [str(path) for path in workflow.configfiles[len(from_command_line) :]]
    )
    return from_snakefile + from_command_line, settings.config


def validate_config(config, schema_path):
    """Fail with one line per problem, each naming the config key (integers must be ints: 2.0 is
    refused, liquidbench.study.strict_validator); then fill schema defaults, which changes no value
    that is given."""
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    lines = config_errors(config, schema)
    if lines:
        raise WorkflowError("invalid configuration:\n  " + "\n  ".join(lines))
    validate(config, schema_path)


def reload_config(config, workflow):
    """Snakemake's config replaced, in place (the rules hold this object), by the same sources read
    as config_sources says; a file that cannot be read so fails with one line naming it."""
    try:
        loaded = study_config(*config_sources(workflow))
    except ValueError as exc:
        raise WorkflowError(str(exc)) from None
    config.clear()
    config.update(loaded)


reload_config(config, workflow)
validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))
# names that tie one section to another are defined: what the study selects, what results.targets,
# results.scaling_baselines and evaluation.families.horizon.datasets name
check_names(config)
check_results_names(config)
check_evaluation_names(config)
try:  # the tuning section's names, ranges and budget (liquidbench.tune.space), the scaling model's
    # probe settings (liquidbench.results.scaling_settings), before any job
    check_tuning(config)
    check_scaling_model(config)
except ValueError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None


def check_container(container, workflow):
    """Where jobs run in the image (--sdm apptainer, as the Apptainer and Slurm profiles do), an
    image that cannot be had fails at once with one line naming the command that builds it."""
    settings = workflow.deployment_settings
    if settings is None or DeploymentMethod.APPTAINER not in settings.deployment_method:
        return
    problem = container_problem(str(container))
    if problem:
        raise WorkflowError(problem)
