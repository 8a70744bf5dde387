"""A tuning selection as the training of a tuned run reads it: ``selected.json`` of a data set x
model x hardware (written by ``liquidbench select-trials``).

The file holds ``status`` (``selected``, or ``no trial ok`` with a ``reason``), the selected
``trial`` and its ``point`` (the searched values), ``apply`` (those values split into the model
entry's keys and the training settings' keys) and every trial's summary (``trials``: point,
status, validation metric, training time). A run trained from it records the selection in its
metrics.json (``tuned``): which trial, which point, from which file.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_selection(path: str | Path) -> dict:
    """selected.json, checked to be a selection; a ValueError naming the file otherwise."""
    path = Path(path)
    try:
        selection = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--tuned {path}: cannot read a tuning selection ({exc}); run the tuning stage first "
                         "(snakemake ... --until select_trials)") from None
    if not isinstance(selection, dict) or selection.get("status") not in ("selected", "no trial ok"):
        raise ValueError(f"--tuned {path}: not a tuning selection (expected the status 'selected' or 'no trial ok')")
    if selection["status"] == "selected" and not isinstance(selection.get("apply"), dict):
        raise ValueError(f"--tuned {path}: a selection without the settings it applies ('apply')")
    return selection


def apply_selection(model_spec: dict, training: dict, selection: dict) -> tuple[dict, dict]:
    """A run's model entry and training settings with the selected values over them (its own epochs
    and every setting not searched kept); unchanged where nothing was selected."""
    if selection.get("status") != "selected":
        return dict(model_spec), dict(training)
    apply = selection["apply"]
    return {**model_spec, **apply.get("model", {})}, {**training, **apply.get("training", {})}


def provenance(selection: dict, path: str | Path) -> dict:
    """What a run records of the selection it was trained from (metrics.json ``tuned``): the file,
    the data set x model x hardware whose trials made it (another model's or hardware entry's where
    the study's tuning.share says so), and what was selected."""
    return {"file": str(path), "model": selection.get("model"), "hardware": selection.get("hardware"),
            "status": selection.get("status"), "trial": selection.get("trial"),
            "point": selection.get("point"), "reason": selection.get("reason"),
            "n_trials": selection.get("n_trials"), "trial_epochs": selection.get("trial_epochs")}
