"""Is a finished run still the study's run? Its metrics.json against the study's settings.

Snakemake notices a changed setting through its own records (``.snakemake/``); where those are
missing (a fresh checkout pointed at finished results on shared scratch, another working folder)
it plans nothing, and the tables of the old setting stay, looking current. A run records the
settings it ran with (metrics.json: ``model_params``, ``train_params``, ``hardware_params``,
``data_params``); :func:`differences` names every one that is not the study's, so that the
workflow trains the run again (workflow/rules/train.smk, ``mark_stale``). A setting a run did not
record (runs from before it was recorded) is not held against it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_path
from .settings import NOT_IN_RESULT

STALE = ".stale"  # the marker's name in a run folder


def _plain(value):
    """JSON's view of a value (tuples as lists, keys as strings), so that equal settings compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _differ(section: str, recorded: dict | None, expected: dict, ignore=()) -> list[str]:
    """The keys both sides have whose values differ (``recorded`` None: nothing recorded)."""
    if recorded is None:
        return []
    recorded, expected = _plain(recorded), _plain(expected)
    return [f"{section}.{k}: {recorded[k]!r} recorded, {expected[k]!r} in the study"
            for k in sorted(set(recorded) & set(expected) - set(ignore)) if recorded[k] != expected[k]]


def _model_keys(recorded: dict | None, expected: dict) -> list[str]:
    """A model key one side has and the other lacks changes the model (model entries have no defaults
    filled in)."""
    if recorded is None:
        return []
    recorded, expected = _plain(recorded), _plain(expected)
    return ([f"model.{k}: {recorded[k]!r} recorded, not in the study" for k in sorted(set(recorded) - set(expected))]
            + [f"model.{k}: not recorded, {expected[k]!r} in the study" for k in sorted(set(expected) - set(recorded))])


def differences(metrics: dict, model: dict, training: dict, hardware: dict, data: dict) -> list[str]:
    """What a run's metrics.json records differently from the study: ``model`` the model entry
    (without its training), ``training`` and ``hardware`` with every default filled in, ``data``
    the data set's parameters as meta.json records them (data.expected_params)."""
    recorded_model = metrics.get("model_params")
    out = _differ("model", recorded_model, model) + _model_keys(recorded_model, model)
    out += _differ("training", metrics.get("train_params"), training)
    out += _differ("hardware", metrics.get("hardware_params"), hardware, ignore=NOT_IN_RESULT)
    out += _differ("data", (metrics.get("data_params") or {}).get("params"), data)
    return out


def stale_reason(run_dir: str | Path, model: dict, training: dict, hardware: dict, data: dict) -> str | None:
    """Why a finished run (its metrics.json) is not the study's run, or None (none finished, or it is)."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no finished run, or one aggregation will name as unreadable
    if not isinstance(metrics, dict):
        return None
    found = differences(metrics, model, training, hardware, data)
    return f"{path} records other settings than the study's: {'; '.join(found)}" if found else None


def mark_stale(runs: dict[str, str | None]) -> list[str]:
    """Make each run folder's stale marker say what ``runs`` ({run folder: why it is stale, or None})
    says under the study as it is now: written (its reason) unless one newer than the run's
    metrics.json is there, removed where the run is not stale (a marker written under a setting tried
    in a dry run, then given up, must not train the run). Returns the reasons newly written."""
    written = []
    for run_dir, reason in runs.items():
        marker, metrics = Path(run_dir) / STALE, Path(run_dir) / "metrics.json"
        if reason is None:
            marker.unlink(missing_ok=True)
        elif not (marker.exists() and marker.stat().st_mtime >= metrics.stat().st_mtime):
            with atomic_path(marker) as tmp:
                tmp.write_text(reason + "\n")
            written.append(reason)
    return written
