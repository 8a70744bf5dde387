"""The runs of a study: the product datasets x models x hardware x seeds, less `exclude`.

A study selects names and seeds; every combination is one run. Some combinations are not worth
their cost (LTC on eight GPUs, a second seed of a slow baseline on a large data set): each entry of
``study.exclude`` names one or more of ``dataset``, ``model``, ``hardware``, ``seed`` (a value or a
list of values) and removes every run that matches all of the keys it names. The workflow builds
its training targets from this list, and aggregation counts an expected run without metrics as
missing only if it is on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import product
from pathlib import Path

import yaml

# exclude key -> the study section it draws from
SECTIONS = {"dataset": "datasets", "model": "models", "hardware": "hardware", "seed": "seeds"}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def check_exclude(study: dict, defined: dict | None = None) -> list[dict]:
    """``study.exclude`` as a list of {key: [values]}; an unknown key or an empty entry is an
    error. With ``defined`` (section -> the names a config defines, for "datasets", "models" and
    "hardware"), a name that is not defined is an error too: a typo would silently exclude nothing.
    A name defined but not selected is fine, so narrowing a study with --config keeps its
    exclusions valid; for the same reason names are not checked against the selection."""
    entries = []
    for i, entry in enumerate(study.get("exclude") or []):
        where = f"study.exclude[{i}]"
        if not isinstance(entry, dict) or not entry:
            raise ValueError(f"config key '{where}': expected a mapping with one or more of {', '.join(SECTIONS)}")
        checked = {}
        for key, value in entry.items():
            if key not in SECTIONS:
                raise ValueError(f"config key '{where}.{key}': unknown key, expected one of {', '.join(SECTIONS)}")
            values = _as_list(value)
            if key == "seed":
                if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
                    raise ValueError(f"config key '{where}.seed': expected a seed or a list of seeds (integers >= 0)")
            elif defined is not None:
                names = defined[SECTIONS[key]]
                for v in values:
                    if v not in names:
                        raise ValueError(f"config key '{where}.{key}' names {v!r}, which is not defined under "
                                         f"'{SECTIONS[key]}' ({', '.join(map(str, names))})")
            checked[key] = values
        entries.append(checked)
    return entries


def study_runs(study: dict, defined: dict | None = None) -> list[tuple[str, str, str, int]]:
    """Every (dataset, model, hardware, seed) the study runs, in study order (``defined``: see
    check_exclude)."""
    try:
        axes = [study[SECTIONS[key]] for key in SECTIONS]
    except KeyError as exc:
        raise ValueError(f"study: missing key {exc}; expected datasets, models, hardware and seeds") from exc
    exclude = check_exclude(study, defined)
    runs = []
    for dataset, model, hardware, seed in product(*axes):
        run = {"dataset": dataset, "model": model, "hardware": hardware, "seed": int(seed)}
        if not any(all(run[k] in values for k, values in entry.items()) for entry in exclude):
            runs.append((dataset, model, hardware, int(seed)))
    return runs


def check_names(config: dict) -> None:
    """Every name the study selects must be defined in its section; model names make directories."""
    for section in ("datasets", "models", "hardware"):
        for name in config["study"][section]:
            if name not in config[section]:
                raise ValueError(
                    f"config key 'study.{section}' names '{name}', which is not defined under "
                    f"'{section}' (defined: {', '.join(sorted(config[section])) or 'none'})"
                )
    for name in config["models"]:
        if "/" in name or name != name.strip():
            raise ValueError(f"config key 'models.{name}': a name may not contain '/' or spaces")


def check_results_names(config: dict) -> None:
    """Names under ``results`` that tie settings to entries must be defined: a target of a data set
    that no entry defines, or a scaling baseline of an undefined hardware entry, would do nothing."""
    results = config.get("results") or {}
    for name in results.get("targets") or {}:
        if name not in config["datasets"]:
            raise ValueError(f"config key 'results.targets' names '{name}', which is not defined under 'datasets' "
                             f"(defined: {', '.join(sorted(config['datasets']))})")
    for ddp, base in (results.get("scaling_baselines") or {}).items():
        for key, name in ((ddp, ddp), (f"{ddp}: {base}", base)):
            if name not in config["hardware"]:
                raise ValueError(f"config key 'results.scaling_baselines' ({key}) names '{name}', which is not "
                                 f"defined under 'hardware' (defined: {', '.join(sorted(config['hardware']))})")


def check_not_empty(runs: list, study: dict) -> None:
    """A study whose exclude removes every run is refused before anything runs."""
    if not runs:
        raise ValueError(
            "config key 'study': it selects no run; its exclude removes every combination of "
            f"datasets {study['datasets']}, models {study['models']}, hardware {study['hardware']} and "
            f"seeds {study['seeds']}; expected at least one run"
        )


# Study files are read as Snakemake reads them (PyYAML: YAML 1.1), with one change: a float in
# exponent notation without a dot or a signed exponent (1e-3, 2E5), a string to YAML 1.1, is a
# float, as in YAML 1.2. The resolver applies to plain scalars only, so a quoted "1e-3" stays a string.
_EXPONENT_FLOAT = re.compile(r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")

# What a study file may expand to through YAML aliases (*name), counted as values (each scalar,
# list and mapping): a study file holds a few hundred (the shipped ones: under 300), so this
# refuses only aliases nested inside aliases (a "billion laughs" file) and costs nothing to check.
MAX_VALUES = 100_000


class StudyLoader(yaml.SafeLoader):
    """PyYAML's safe YAML 1.1, except that 1e-3 is a float (see _EXPONENT_FLOAT)."""


StudyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def check_expanded_size(value, where: str, limit: int = MAX_VALUES) -> int:
    """The number of values ``value`` holds once its aliases are written out, refused above
    ``limit`` or where an alias contains itself. PyYAML builds an alias as a shared reference, so
    loading is cheap, but anything that walks or copies the tree (typing, validation, merging)
    pays for every copy: 9 levels of 9 aliases are 9**9 values. Counting with the size of each
    list and mapping remembered by identity visits each of them once, however often it is shared."""
    sizes: dict[int, int] = {}
    walking: set[int] = set()

    def size(node) -> int:
        if not isinstance(node, (Mapping, list, tuple)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in walking:
            raise ValueError(f"{where}: a YAML alias (*name) refers to a value that contains it, which never ends; "
                             "write the values out instead")
        walking.add(key)
        total = 1 + sum(size(child) for child in (node.values() if isinstance(node, Mapping) else node))
        walking.discard(key)
        if total > limit:
            raise ValueError(f"{where}: its YAML aliases (*name) expand to more than {limit:,} values (aliases "
                             "nested inside aliases multiply); write the values out or use fewer aliases")
        sizes[key] = total
        return total

    try:
        return size(value)
    except RecursionError:
        raise ValueError(f"{where}: nested too deeply; a study file is a few levels of mappings and lists") from None


def load_study(path, label: str | None = None) -> dict:
    """A study file (YAML or JSON, as Snakemake takes them) as a mapping, read with StudyLoader and
    refused if its aliases expand too far (check_expanded_size) before anything walks it. The one
    reader of study files: the workflow (rules/config.smk) and `liquidbench train/compare --config`.
    ``label`` names the file in messages (default: "config file PATH")."""
    label = label or f"config file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{label}: cannot read it ({exc.strerror or exc})") from None
    try:  # JSON first, as Snakemake does; YAML otherwise
        study = json.loads(text)
    except ValueError:
        try:
            study = yaml.load(text, Loader=StudyLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            raise ValueError(f"{label}: not valid YAML ({exc})") from None
        except RecursionError:
            raise ValueError(f"{label}: nested too deeply; a study file is a few levels of mappings and lists") from None
    if not isinstance(study, dict):
        raise ValueError(f"{label}: expected a study file (a mapping of keys to values), got {type(study).__name__}")
    if study.get("__use_yte__"):  # Snakemake would render it; its values could not be read as written
        raise ValueError(f"{label}: YTE templates (__use_yte__: true) are not taken; render it first "
                         f"(yte --template {path} --output study.yaml) and give the result")
    check_expanded_size(study, label)
    return study


def typed_scalars(value):
    """Command-line values (--config) with their YAML types. Snakemake parses the values below the
    top level with YAML's BaseLoader, which leaves every scalar a string: here each string that
    reads as a number, boolean or null (1e-3 included, as in a study file) becomes one; every other
    string stays as it is. Only for the command line: a study file keeps its own types, so that a
    quoted "2020" there stays a string."""
    if isinstance(value, Mapping):
        return {k: typed_scalars(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed_scalars(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.load(value, Loader=StudyLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, (bool, int, float)):
            return parsed
    return value


def study_config(files, overrides) -> dict:
    """The config Snakemake would build from config ``files`` (the Snakefile's, then each
    --configfile, in order) and the command-line ``overrides`` (--config), each later one merged
    over the earlier key by key as Snakemake's update_config does; the files read by load_study,
    the overrides typed by typed_scalars."""
    config: dict = {}
    for path in files:
        config = deep_merge(config, load_study(path))
    check_expanded_size(overrides, "--config")
    return deep_merge(config, typed_scalars(overrides))


def checked_study(files, overrides, schema_path) -> dict:
    """The study the workflow runs (workflow/rules/config.smk calls it before any rule): the config
    ``files`` and --config ``overrides`` read as study_config reads them; every schema problem
    refused, one line each naming its config key (integers must be ints: 2.0 is refused,
    strict_validator); the schema's defaults filled in (Snakemake's validate, which changes no value
    that is given); then the names that tie one section to another, the tuning section and the
    scaling model's settings checked. Anything wrong raises ValueError saying what."""
    from snakemake.utils import validate

    config = study_config(files, overrides)
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    lines = config_errors(config, schema)
    if lines:
        raise ValueError("invalid configuration:\n  " + "\n  ".join(lines))
    validate(config, str(schema_path))
    # names that tie one section to another are defined: what the study selects, what
    # results.targets, results.scaling_baselines and evaluation.families.horizon.datasets name
    check_names(config)
    check_results_names(config)
    check_evaluation_names(config)
    try:  # the tuning section's names, ranges and budget (liquidbench.tune.space), the scaling
        # model's probe settings (liquidbench.results.scaling_settings)
        check_tuning(config)
        check_scaling_model(config)
    except ValueError as exc:
        raise ValueError(f"invalid configuration: {exc}") from None
    return config


def strict_validator(schema: dict):
    """A JSON Schema validator for ``schema`` whose `integer` is an int only: JSON Schema counts 2.0
    as an integer, but a run given `epochs: 2.0` fails in every job; refused here, at plan time."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def config_errors(config: dict, schema: dict) -> list[str]:
    """Every schema problem of ``config``, one line each naming its config key."""
    import jsonschema

    errors = sorted(strict_validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    lines = []
    for error in errors:
        # errors inside if/then/allOf report their deepest cause
        leaf = jsonschema.exceptions.best_match([error] + list(error.context or []))
        key = ".".join(str(p) for p in leaf.absolute_path)
        lines.append(f"config key '{key}': {leaf.message}" if key else f"config: {leaf.message}")
    return list(dict.fromkeys(lines))


def deep_merge(base: dict, override: dict | None) -> dict:
    """``override`` over ``base``, mappings merged key by key."""
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def training_of(config: dict, dataset: str, model: str) -> dict:
    """A run's training settings: the study's, over them its data set's own ``training``, over
    those its model's (so that, e.g., LTC can train at another learning rate than the rest)."""
    merged = deep_merge(config.get("training") or {}, config["datasets"][dataset].get("training", {}))
    return deep_merge(merged, config["models"][model].get("training", {}))


def model_of(config: dict, model: str) -> dict:
    """A model entry without its ``training`` (which reaches a run through training_of)."""
    return {k: v for k, v in config["models"][model].items() if k != "training"}


# a name the study selects (the schema's $defs/names): one folder of a run's path
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def run_of(config: dict, run: str) -> dict:
    """One run of a study config, ``dataset/model/hardware/seed`` (seed as 0 or seed0), as the
    arguments the train rule passes: names, seed, model, training and hardware settings. The names
    and the seed must be ones the study selects (``study``): they become the run's folder, and a
    study file given to `liquidbench train` is not checked against the schema as the workflow's is."""
    parts = run.split("/")
    if len(parts) != 4:
        raise ValueError(f"--run: expected dataset/model/hardware/seed such as sine/cfc/cpu/0, got {run!r}")
    dataset, model, hardware, seed = parts
    seed = seed.removeprefix("seed")
    if not (seed.isascii() and seed.isdigit()):
        raise ValueError(f"--run {run!r}: the seed must be a non-negative integer, got {parts[3]!r}")
    study = config.get("study") if isinstance(config.get("study"), dict) else {}
    for section, name in (("datasets", dataset), ("models", model), ("hardware", hardware)):
        if name not in (config.get(section) or {}):
            raise ValueError(f"--run {run!r}: '{name}' is not defined under '{section}' "
                             f"(defined: {', '.join(sorted(config.get(section) or {})) or 'none'})")
        selected = study.get(section) or []
        if name not in selected:
            raise ValueError(f"--run {run!r}: '{name}' is not one of the {section} the study selects "
                             f"(study.{section}: {', '.join(map(str, selected)) or 'none'}); expected one of those")
        if not _NAME.fullmatch(name):  # the schema's `names`, which this file has not been checked against
            raise ValueError(f"--run {run!r}: '{name}' is not a name a study may select: expected letters, digits, "
                             "'_', '.' and '-', beginning with a letter or digit")
    seeds = [s for s in study.get("seeds") or [] if isinstance(s, int) and not isinstance(s, bool)]
    if int(seed) not in seeds:
        raise ValueError(f"--run {run!r}: seed {int(seed)} is not one of the study's seeds "
                         f"(study.seeds: {', '.join(map(str, seeds)) or 'none'}); expected one of those")
    return {"dataset": dataset, "model": model, "hardware": hardware, "seed": int(seed),
            "model_spec": model_of(config, model), "train_params": training_of(config, dataset, model),
            "hardware_spec": config["hardware"][hardware]}


def check_evaluation_names(config: dict) -> None:
    """A data set that `evaluation.families.horizon.datasets` names must be defined."""
    grid = ((config.get("evaluation") or {}).get("families") or {}).get("horizon") or {}
    for name in grid.get("datasets") or []:
        if name not in config["datasets"]:
            raise ValueError(
                f"config key 'evaluation.families.horizon.datasets' names '{name}', which is not "
                f"defined under 'datasets' (defined: {', '.join(sorted(config['datasets']))})"
            )


def model_type(spec: dict):
    """A model entry's type, or {type, impl} for an implementation other than the reference ncps."""
    impl = spec.get("impl", "ncps")
    return spec["type"] if impl == "ncps" else {"type": spec["type"], "impl": impl}


def as_json(obj) -> str:
    """A config value as JSON with sorted keys: what the workflow passes as a param (a changed param
    reruns its jobs; the same value always reads the same) and what a table setting's flag takes."""
    return json.dumps(obj, sort_keys=True)


def table_settings(config: dict, hardware: dict) -> dict:
    """What each setting of a table or figure (liquidbench.results.registry.SETTINGS) is in a
    validated study (``hardware``: its entries with their defaults, as mappings), as the value its
    command-line flag takes: JSON, or a number."""
    study, results = config["study"], config["results"]
    published = results.get("published")
    if published:  # its file, name maps and sigmas; the claims' min_seeds; the study's data set entries and models
        entries = {n: config["datasets"][n] for n in published["datasets"] if n in config["datasets"]}
        published = {**published, "min_seeds": results["claims"]["min_seeds"], "study_models": study["models"],
                     "dataset_config": entries}

    return {
        "hardware": as_json({name: hardware[name] for name in study["hardware"]}),
        "threshold": results["knee_threshold"],
        "baselines": as_json(results["scaling_baselines"]),
        "model_types": as_json({name: model_type(config["models"][name]) for name in study["models"]}),
        "targets": as_json(results["targets"]),
        "settings": as_json(results["claims"]),
        "published": as_json(published or None),
        "scaling_model": as_json(scaling_model_settings(config.get("scaling_model"))),
    }


def scaling_model_settings(section: dict | None) -> dict | None:
    """What the scaling_model table takes of the `scaling_model` section, checked, defaults filled in."""
    if section is None:
        return None
    from .results.scaling_settings import ScalingModel

    sm = ScalingModel.from_section(section)
    return {"widths": sm.widths, "exposed": sm.exposed, "interconnect": sm.interconnect, "seed": sm.seed}


def check_tuning(config: dict) -> None:
    """A study's `tuning` section, when it has one, means what it says before any job runs: names,
    ranges and the trial count (liquidbench.tune.space), and a budget no tuned run's epochs fall below."""
    if not config.get("tuning"):
        return
    from .train.settings import Training
    from .tune.space import Tuning

    tuning = Tuning.from_settings(config["tuning"], config["models"], config["study"]["models"], config["hardware"])
    selected = study_runs(config["study"])
    tuning.check_budget({(d, m): Training.from_params(training_of(config, d, m)).epochs
                         for d, m, _, _ in selected if tuning.tunes(m)})


def check_scaling_model(config: dict) -> None:
    """A study's `scaling_model` section, when it has one, before any job runs: its keys and values
    (liquidbench.results.scaling_settings), and a step-probe grid no higher than the batch of any
    data set x model it probes."""
    if config.get("scaling_model") is None:
        return
    from .results.scaling_settings import ScalingModel, probe_plan
    from .train.settings import Hardware, Training

    sm = ScalingModel.from_section(config["scaling_model"])
    hardware = {name: Hardware.from_entry(name, config["hardware"][name]) for name in config["study"]["hardware"]}
    _, step, _ = probe_plan(study_runs(config["study"]), hardware, config["results"].get("scaling_baselines"))
    for dataset, model, _ in step:
        sm.grid(Training.from_params(training_of(config, dataset, model)).batch_size,
                f"data set '{dataset}', model '{model}'")

