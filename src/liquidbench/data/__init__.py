"""Data sets. Each module exposes ``prepare(params, out_dir, **sources)``; the registry maps a
config ``kind`` to it. Adding a data set is one module and one entry here."""

from __future__ import annotations

from . import har, sine, traffic
from .store import TASKS, load_split, read_meta, save_dataset

PREPARERS = {
    "sine": sine.prepare,
    "traffic": traffic.prepare,
    "har": har.prepare,
}

__all__ = ["PREPARERS", "TASKS", "load_split", "read_meta", "save_dataset"]
