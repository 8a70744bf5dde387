# Loading the study: type command-line values, then validate against the schema with messages that
# name the offending key. Included first; everything after may trust the config.

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from liquidbench.image import container_problem
from liquidbench.study import check_evaluation_names, check_names, check_results_names, yaml_numbers


def typed_scalars(value):
    """--config values below the top level arrive as strings (Snakemake parses them with YAML's
    BaseLoader): give numbers, booleans and null their YAML types, leave every other string as is."""
    if isinstance(value, dict):
        return {k: typed_scalars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed_scalars(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, (bool, int, float)):
            return parsed
    return value


def validate_config(config, schema_path):
    """Fail with one line per problem, each naming the config key; then fill schema defaults."""
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            # errors inside if/then/allOf report their deepest cause
            leaf = jsonschema.exceptions.best_match([error] + list(error.context or []))
            key = ".".join(str(p) for p in leaf.absolute_path)
            lines.append(f"config key '{key}': {leaf.message}" if key else f"config: {leaf.message}")
        raise WorkflowError("invalid configuration:\n  " + "\n  ".join(dict.fromkeys(lines)))
    validate(config, schema_path)


# numbers written 1e-3 (a string to YAML 1.1) are numbers (liquidbench.study.yaml_numbers)

config.update(yaml_numbers(typed_scalars(config)))
validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))
# names that tie one section to another are defined: what the study selects, what results.targets,
# results.scaling_baselines and evaluation.families.horizon.datasets name
check_names(config)
check_results_names(config)
check_evaluation_names(config)


def check_container(container, workflow):
    """Where jobs run in the image (--sdm apptainer, as the Apptainer and Slurm profiles do), an
    image that cannot be had fails at once with one line naming the command that builds it."""
    settings = workflow.deployment_settings
    if settings is None or DeploymentMethod.APPTAINER not in settings.deployment_method:
        return
    problem = container_problem(str(container))
    if problem:
        raise WorkflowError(problem)
