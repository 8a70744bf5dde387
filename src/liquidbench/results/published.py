"""Published results against this study's: the ``published`` table and its claims.

The published numbers are data (``results.published.file``, e.g. config/published/ltc_paper.yaml):
per published data set its metric, unit, ``scale`` (liquidbench's metric times ``scale`` is in the
published unit), ``n`` and per published model ``mean`` and ``std``. ``results.published``
maps study data sets and study models to the published ones.

One row per mapped study data set x model (the study's models and the mapped ones) x hardware:
published mean ± std (n), reproduced mean ± std [95 % t interval] (n ok seeds), their difference
and a verdict:

- ``consistent`` when |reproduced - published| <= sigmas x sqrt(s_pub^2 + s_rep^2),
  ``inconsistent`` otherwise (both sides need a std: at least ``min_seeds`` >= 2 ok seeds);
- ``undecidable`` with a published number but fewer ok seeds;
- ``not run`` where the study has no ok run of the combination (not selected, failed or missing);
  its ``runs`` cell gives the reason configured in ``results.published.not_run`` for that data set;
- empty where no number was published for the model (shown for comparison, no verdict).

Each mapped data set also gives a claim "the reproduction agrees with <name> on <data set>",
decided as the claims table decides (verdicts.verdict_of_decisions) over the rows with a published number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd
import yaml

from .tables import NOT_AVAILABLE, estimate, num
from .verdicts import UNDECIDABLE, verdict_of_decisions

METRICS = ("mse", "accuracy")
CONSISTENT, INCONSISTENT, NOT_RUN = "consistent", "inconsistent", "not run"
COLUMNS = [
    "dataset", "protocol", "published_dataset", "model", "published_model", "hardware", "metric", "unit",
    "published_mean", "published_std", "published_n", "reproduced_mean", "reproduced_std", "reproduced_ci_low",
    "reproduced_ci_high", "reproduced_n", "runs", "difference", "tolerance", "sigmas", "verdict", "published_by",
]


def load(path: str | Path) -> dict:
    """The published-results file, checked: every data set needs metric, unit, scale, n and results
    with a numeric mean and std per model."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"published results {path}: cannot read it as YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict) or not data["datasets"]:
        raise ValueError(f"published results {path}: expected a mapping with a non-empty 'datasets' mapping")
    for key in ("name", "citation"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"published results {path}: key '{key}' must be a string")
    for name, ds in data["datasets"].items():
        where = f"published results {path}: datasets.{name}"
        if not isinstance(ds, dict):
            raise ValueError(f"{where}: expected a mapping")
        missing = [k for k in ("metric", "unit", "scale", "n", "results") if k not in ds]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        if ds["metric"] not in METRICS:
            raise ValueError(f"{where}.metric: '{ds['metric']}' is unknown, expected one of {list(METRICS)}")
        if not isinstance(ds["n"], int) or ds["n"] < 1:
            raise ValueError(f"{where}.n: expected a positive integer, got {ds['n']!r}")
        if not isinstance(ds["scale"], (int, float)) or not ds["scale"] > 0:
            raise ValueError(f"{where}.scale: expected a positive number, got {ds['scale']!r}")
        if not isinstance(ds["results"], dict):
            raise ValueError(f"{where}.results: expected a mapping of model -> {{mean, std}}")
        for model, r in ds["results"].items():
            if not (isinstance(r, dict) and all(isinstance(r.get(k), (int, float)) for k in ("mean", "std"))):
                raise ValueError(f"{where}.results.{model}: expected numbers 'mean' and 'std', got {r!r}")
    return data


def protocol_of(entry: dict) -> str:
    """The protocol of a study data set's config entry (traffic, har); the kind for other kinds."""
    from ..data import har, traffic

    params = entry.get("params") or {}
    defaults = {"traffic": traffic.DEFAULTS["protocol"], "har": har.DEFAULT_PROTOCOL}
    return str(params.get("protocol", defaults.get(entry.get("kind"), entry.get("kind", NOT_AVAILABLE))))


def _verdict_of(pub: dict | None, rep: dict, sigmas: float, min_seeds: int) -> tuple[str, float, float]:
    """(verdict, difference, tolerance) of one row."""
    nan = float("nan")
    if rep["n"] == 0:
        return NOT_RUN, nan, nan
    if pub is None:
        return "", nan, nan
    diff = rep["mean"] - pub["mean"]
    if rep["n"] < max(2, min_seeds) or pd.isna(rep["std"]):
        return UNDECIDABLE, diff, nan
    tol = sigmas * math.sqrt(pub["std"] ** 2 + rep["std"] ** 2)
    return (CONSISTENT if abs(diff) <= tol else INCONSISTENT), diff, tol


def published_table(summary: pd.DataFrame, published: dict, datasets: dict[str, str], models: dict[str, str],
                    dataset_config: dict[str, dict], study_models: list[str], sigmas: float = 2.0,
                    min_seeds: int = 2, not_run: dict[str, str] | None = None) -> pd.DataFrame:
    """The comparison table (module docstring). ``datasets``/``models`` map study names to published
    ones; ``dataset_config`` holds the study's data set entries (for their protocol); ``not_run``
    says per study data set why it may have no run (shown in ``runs`` where it has none)."""
    not_run = not_run or {}
    for name in not_run:
        if name not in datasets:
            raise ValueError(f"results.published.not_run names '{name}', which results.published.datasets does not map")
    for name, target in datasets.items():
        if name not in dataset_config:
            raise ValueError(f"results.published.datasets names '{name}', which is not defined under 'datasets'")
        if target not in published["datasets"]:
            raise ValueError(f"results.published.datasets.{name}: '{target}' is not a data set of the published "
                             f"results (they have: {', '.join(published['datasets'])})")
    rows = []
    summary = summary if len(summary) else pd.DataFrame(columns=["dataset", "model", "hardware"])
    for name, target in datasets.items():
        pds = published["datasets"][target]
        scale = float(pds["scale"])
        ours = summary[summary["dataset"] == name]
        names = list(dict.fromkeys([*study_models, *models, *ours["model"]]))
        for model in names:
            pmodel = models.get(model)
            pub = pds["results"].get(pmodel) if pmodel else None
            found = ours[ours["model"] == model].to_dict("records") or [None]
            for r in found:
                n = 0 if r is None or pd.isna(r.get("test_metric_n")) else int(r["test_metric_n"])
                if r is not None and n and isinstance(r.get("metric_name"), str) and r["metric_name"] != pds["metric"]:
                    raise ValueError(f"published results: study data set '{name}' measures {r['metric_name']}, "
                                     f"the published '{target}' {pds['metric']}")
                rep = {"n": n}
                for f in ("mean", "std", "ci_low", "ci_high"):
                    v = float("nan") if r is None or not n else r.get(f"test_metric_{f}", float("nan"))
                    rep[f] = float(v) * scale if not pd.isna(v) else float("nan")
                verdict, diff, tol = _verdict_of(pub, rep, sigmas, min_seeds)
                rows.append({
                    "dataset": name, "protocol": protocol_of(dataset_config[name]), "published_dataset": target,
                    "model": model, "published_model": pmodel if pub is not None else "",
                    "hardware": r["hardware"] if r is not None else "", "metric": pds["metric"], "unit": pds["unit"],
                    "published_mean": pub["mean"] if pub else float("nan"),
                    "published_std": pub["std"] if pub else float("nan"),
                    "published_n": pds["n"] if pub else float("nan"),
                    "reproduced_mean": rep["mean"], "reproduced_std": rep["std"],
                    "reproduced_ci_low": rep["ci_low"], "reproduced_ci_high": rep["ci_high"], "reproduced_n": n,
                    "runs": r["runs"] if r is not None else not_run.get(name, "not in the study"),
                    "difference": diff, "tolerance": tol, "sigmas": sigmas, "verdict": verdict,
                    "published_by": published["name"],
                })
    return pd.DataFrame(rows, columns=COLUMNS)


def display(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for r in table.to_dict("records"):
        has_pub = not pd.isna(r["published_mean"])
        run = r["verdict"] != NOT_RUN
        out.append({
            "data set": r["dataset"], "protocol": r["protocol"], "model": r["model"],
            "hardware": r["hardware"] or "—",
            "published": (f"{num(r['published_mean'])} ± {num(r['published_std'], 2)} n={int(r['published_n'])}"
                          if has_pub else "—"),
            "reproduced": (estimate(r["reproduced_mean"], r["reproduced_std"], r["reproduced_ci_low"],
                                    r["reproduced_ci_high"], r["reproduced_n"]) if run else NOT_RUN),
            "difference": num(r["difference"], 3) if has_pub and run else "—",
            "allowed": num(r["tolerance"], 3) if not pd.isna(r["tolerance"]) else "—",
            "verdict": r["verdict"] or "—",
            "runs": r["runs"],
        })
    return pd.DataFrame(out, columns=["data set", "protocol", "model", "hardware", "published", "reproduced",
                                      "difference", "allowed", "verdict", "runs"])


def notes(published: dict, sigmas: float) -> str:
    units = "; ".join(f"{k}: {v['unit']}" for k, v in published["datasets"].items())
    return (f"Published: {published['citation'].strip()} Units: {units}. Reproduced: mean ± sample std "
            f"[95 % t interval] n = ok seeds, in the published unit. Verdict: consistent when |difference| <= "
            f"{sigmas:g} x sqrt(s_pub^2 + s_rep^2) (allowed), inconsistent otherwise; undecidable with fewer "
            "than two ok seeds; not run where the study has no ok run; — where nothing was published.")


def claim_rows(table: pd.DataFrame) -> list[dict]:
    """One claim per study data set of the table, in the claims table's columns."""
    rows = []
    for dataset, g in table.groupby("dataset", sort=False):
        g = g[g["published_mean"].notna()]
        results, evidence = [], []
        for r in g.to_dict("records"):
            hardware = r["hardware"] if isinstance(r["hardware"], str) and r["hardware"] else "no run"
            label = f"{r['model']} ({hardware})"
            if r["verdict"] in (CONSISTENT, INCONSISTENT):
                results.append(r["verdict"] == CONSISTENT)
                evidence.append(f"{label}: {num(r['reproduced_mean'])} vs published {num(r['published_mean'])}, "
                                f"difference {num(r['difference'], 3)}, allowed {num(r['tolerance'], 3)}")
            else:
                results.append(None)
                evidence.append(f"{label}: {r['verdict']} ({r['runs']})")
        first = table[table["dataset"] == dataset].iloc[0]
        sigmas = float(first["sigmas"])
        rows.append({
            "claim_id": f"published:{dataset}",
            "claim": (f"The reproduction agrees with {first['published_by']} on {dataset} "
                      f"({first['published_dataset']}, protocol {first['protocol']})"),
            "verdict": verdict_of_decisions(results), "decided": sum(r is not None for r in results),
            "comparisons": len(results),
            "evidence": "; ".join(evidence) if evidence else "no model with a published number",
            "rule": f"|reproduced - published| <= {sigmas:g} x sqrt(s_pub^2 + s_rep^2) for every model with a "
                    "published number (table published)",
        })
    return rows


@dataclass(frozen=True, kw_only=True)
class PublishedSettings:
    """The workflow's setting ``published``: config ``results.published`` (file, datasets, models,
    sigmas, not_run) plus ``min_seeds`` (results.claims), the study's data set entries
    (``dataset_config``) and its models (``study_models``). Read once from the command line's JSON,
    checked, so that a misspelt key is refused instead of read as absent."""

    file: str  # the published numbers (config/published/*.yaml)
    datasets: dict[str, str]  # study data set -> published data set
    models: dict[str, str]  # study model -> published model
    sigmas: float = 2.0
    min_seeds: int = 2
    not_run: dict[str, str] | None = None  # study data set -> why it may have no run
    dataset_config: dict[str, dict] = field(default_factory=dict)
    study_models: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, published: dict) -> PublishedSettings:
        """The setting of a JSON object: 'file' and the mappings 'datasets' and 'models' required, an
        unknown key refused, each naming the key and what was expected."""
        missing = [k for k in ("file", "datasets", "models") if k not in published]
        if missing or not all(isinstance(published.get(k), dict) for k in ("datasets", "models")):
            raise ValueError("--published: expected a mapping with 'file', and mappings 'datasets' and 'models' "
                             f"(study name -> published name); missing or not mappings: "
                             f"{missing or ['datasets/models']}")
        expected = [f.name for f in fields(cls)]
        unknown = [k for k in published if k not in expected]
        if unknown:
            raise ValueError(f"--published: unknown key(s) {unknown}, expected {expected}")
        return cls(**published)


def build(summary: pd.DataFrame, published: dict) -> tuple:
    """The published table (registry entry ``published``): raw, display and notes. ``published`` is
    the command line's JSON of PublishedSettings, checked here once."""
    setting = PublishedSettings.from_dict(published)
    data = load(setting.file)
    table = published_table(summary, data, setting.datasets, setting.models, setting.dataset_config,
                            setting.study_models, sigmas=setting.sigmas, min_seeds=setting.min_seeds,
                            not_run=setting.not_run)
    return table, display(table), notes(data, setting.sigmas)
