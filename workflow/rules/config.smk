# Loading the study: read the config files again with liquidbench's study reader, type the
# command-line values, then validate against the schema with messages that name the offending key.
# Included first; everything after may trust the config.

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

from liquidbench.image import container_problem
from liquidbench.study import checked_study


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


def reload_config(config, workflow):
    """Snakemake's config replaced, in place (the rules hold this object), by the study of the
    sources config_sources names, read, validated and checked by liquidbench.study.checked_study;
    anything wrong fails with its lines, each naming the config key."""
    schema = workflow.source_path("../schemas/config.schema.yaml")
    try:
        loaded = checked_study(*config_sources(workflow), schema)
    except ValueError as exc:
        raise WorkflowError(str(exc)) from None
    config.clear()
    config.update(loaded)


reload_config(config, workflow)


def check_container(container, workflow):
    """Where jobs run in the image (--sdm apptainer, as the Apptainer and Slurm profiles do), an
    image that cannot be had fails at once with one line naming the command that builds it."""
    settings = workflow.deployment_settings
    if settings is None or DeploymentMethod.APPTAINER not in settings.deployment_method:
        return
    problem = container_problem(str(container))
    if problem:
        raise WorkflowError(problem)
