"""Checkpoints: ``{run_dir}/checkpoint.pt``, written atomically, read with ``weights_only=True``.

Everything in a checkpoint is a tensor, a number, a string, a list or a dict, so that the safe
unpickler of ``torch.load(weights_only=True)`` accepts it; random number generator states (torch,
CUDA, numpy, Python) are stored as tensors. A checkpoint carries the fingerprint of the run's
arguments; one with another fingerprint is not resumed from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path

log = logging.getLogger("liquidbench.train")
FORMAT = 1
NAME = "checkpoint.pt"


def fingerprint(**parts) -> str:
    """sha256 of the run's arguments (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def rng_state(device: torch.device) -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_state[0]),
        "python_state": torch.tensor(py_state[1], dtype=torch.int64),
        "python_gauss": py_state[2],
    }


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(int(v) for v in state["python_state"]), state["python_gauss"]))


def save(run_dir: str | Path, state: dict) -> Path:
    path = Path(run_dir) / NAME
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def load(run_dir: str | Path, expected_fingerprint: str) -> dict | None:
    """The checkpoint of this run, or None (none, unreadable, or another run's: logged)."""
    path = Path(run_dir) / NAME
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: start fresh, say why
        log.warning("checkpoint %s cannot be read (%s): starting fresh", path, exc)
        return None
    if state.get("format") != FORMAT:
        log.warning("checkpoint %s has format %s, expected %s: starting fresh", path, state.get("format"), FORMAT)
        return None
    if state.get("fingerprint") != expected_fingerprint:
        log.warning("checkpoint %s belongs to other run arguments (fingerprint %.12s, this run %.12s): "
                    "starting fresh", path, state.get("fingerprint"), expected_fingerprint)
        return None
    return state


def remove(run_dir: str | Path) -> None:
    (Path(run_dir) / NAME).unlink(missing_ok=True)
