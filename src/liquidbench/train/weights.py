"""A run's kept model: ``{run_dir}/weights.pt``, the best-validation state dict and what rebuilds
the model, written atomically beside metrics.json and read with ``torch.load(weights_only=True)``.

The file holds ``format``, ``build`` (the model entry of the study config, the data set's
``n_features``, ``n_outputs``, ``task`` and ``irregular``, and the run's names and best epoch) and
``state_dict`` (None when no epoch had a finite validation loss: a diverged run keeps no weights).
Only tensors, numbers, strings, lists and dicts, so that the safe unpickler accepts it. Run folders
written before weights were kept have no such file; only the evaluation stage needs it.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ..io import atomic_path

FORMAT = 1
NAME = "weights.pt"


def save(out_dir: str | Path, state_dict: dict | None, model_spec: dict, meta: dict, **run) -> Path:
    """Write the kept weights of a run (``run``: dataset, model, seed, best_epoch ...) atomically."""
    build = {"model_spec": dict(model_spec), "n_features": int(meta["n_features"]),
             "n_outputs": int(meta["n_outputs"]), "task": meta["task"], "irregular": bool(meta["irregular"]),
             "metric": meta["metric"], **run}
    cpu = None if state_dict is None else {k: v.detach().cpu().clone() for k, v in state_dict.items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "build": build, "state_dict": cpu}, buf)
    path = Path(out_dir) / NAME
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def load(run_dir: str | Path) -> dict:
    """The kept weights of a run folder; a folder without them, or another file, is an error naming it."""
    path = Path(run_dir) / NAME
    if not path.is_file():
        raise ValueError(f"run folder {run_dir}: no {NAME} (runs trained before weights were kept have none; "
                         "train the run again to evaluate it)")
    try:
        kept = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises several types for a file that is not ours
        raise ValueError(f"{path}: not a weights file ({exc})") from exc
    if not isinstance(kept, dict) or kept.get("format") != FORMAT or "build" not in kept:
        raise ValueError(f"{path}: expected a weights file of format {FORMAT}")
    return kept


def rebuild(kept: dict) -> torch.nn.Module:
    """The model of a weights file with its kept state loaded (eval mode); None state is an error."""
    from ..models import build_model

    b = kept["build"]
    if kept["state_dict"] is None:
        raise ValueError(f"run {b.get('dataset')}/{b.get('model')}/seed{b.get('seed')}: no weights kept "
                         "(no epoch had a finite validation loss)")
    model = build_model(b["model_spec"], b["n_features"], b["n_outputs"], b["task"], b["irregular"])
    try:
        model.load_state_dict(kept["state_dict"])
    except (RuntimeError, KeyError) as exc:  # missing, unexpected or misshapen tensors
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"run {b.get('dataset')}/{b.get('model')}/seed{b.get('seed')}: the kept weights do not fit "
                         f"the model they record ({b['model_spec']}): {first} (a weights file of another model; "
                         "train this run again)") from None
    return model.eval()
