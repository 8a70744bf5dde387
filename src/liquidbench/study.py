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
from itertools import product

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


# YAML 1.1 (PyYAML, Snakemake) reads 1e-3 as a string: a float needs a dot (1.0e-3)
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def yaml_numbers(value):
    """Strings written as floats in exponent notation without a dot (``1e-3``) as floats, as YAML 1.2
    reads them; every other value as it is."""
    if isinstance(value, dict):
        return {k: yaml_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [yaml_numbers(v) for v in value]
    if isinstance(value, str) and _EXPONENT_FLOAT.match(value):
        return float(value)
    return value


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


def run_of(config: dict, run: str) -> dict:
    """One run of a study config, ``dataset/model/hardware/seed`` (seed as 0 or seed0), as the
    arguments the train rule passes: names, seed, model, training and hardware settings."""
    parts = run.split("/")
    if len(parts) != 4:
        raise ValueError(f"--run: expected dataset/model/hardware/seed such as sine/cfc/cpu/0, got {run!r}")
    dataset, model, hardware, seed = parts
    seed = seed.removeprefix("seed")
    if not seed.isdigit():
        raise ValueError(f"--run {run!r}: the seed must be a non-negative integer, got {parts[3]!r}")
    for section, name in (("datasets", dataset), ("models", model), ("hardware", hardware)):
        if name not in (config.get(section) or {}):
            raise ValueError(f"--run {run!r}: '{name}' is not defined under '{section}' "
                             f"(defined: {', '.join(sorted(config.get(section) or {})) or 'none'})")
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
    }
