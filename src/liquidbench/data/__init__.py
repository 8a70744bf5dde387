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



def expected_params(kind: str, params: dict) -> dict:
    """The parameters (with ``protocol`` where the kind has protocols) that meta.json records for a
    data set of ``kind`` prepared with ``params``: the given ones over the kind's defaults."""
    if kind == "sine":
        return {**sine.DEFAULTS, **params}
    if kind == "traffic":
        return {**traffic.DEFAULTS, **params}
    if kind == "har":
        protocol = params.get("protocol", har.DEFAULT_PROTOCOL)
        return {**har.PROTOCOLS.get(protocol, {}), **params, "protocol": protocol}
    raise ValueError(f"kind '{kind}' is unknown, expected one of {sorted(PREPARERS)}")


__all__ = ["PREPARERS", "TASKS", "expected_params", "load_split", "read_meta", "save_dataset"]
