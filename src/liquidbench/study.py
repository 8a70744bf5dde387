"""The runs of a study: the product datasets x models x hardware x seeds, less `exclude`.

A study selects names and seeds; every combination is one run. Some combinations are not worth
their cost (LTC on eight GPUs, a second seed of a slow baseline on a large data set): each entry of
``study.exclude`` names one or more of ``dataset``, ``model``, ``hardware``, ``seed`` (a value or a
list of values) and removes every run that matches all of the keys it names. The workflow builds
its training targets from this list, and aggregation counts an expected run without metrics as
missing only if it is on it.
"""

from __future__ import annotations

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
