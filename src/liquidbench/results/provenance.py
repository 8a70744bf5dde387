"""What the runs ran on: per hardware entry, devices, world sizes, versions, hosts and commits."""

from __future__ import annotations

import pandas as pd

FIELDS = {
    "device": "device",
    "device_name": "device name",
    "world_size": "world size",
    "threads": "threads",
    "scaling": "scaling",
    "env.liquidbench": "liquidbench",
    "env.python": "python",
    "env.torch": "torch",
    "env.ncps": "ncps",
    "env.cuda": "cuda",
    "env.cpu_model": "CPU",
    "env.hostname": "hosts",
    "env.git_commit": "commit",
    "env.ltc_kernel": "fast LTC step",
    "env.cfc_kernel": "fast CfC recurrence",
    "env.tf32": "TF32",
    "env.deterministic": "deterministic algorithms",
    "train_params.optimizer_impl": "Adam and clipping",
}


def _text(value) -> str:
    """A value as text; a whole number read as a float (a column with gaps) without its '.0'."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _values(series: pd.Series) -> str:
    vals = list(dict.fromkeys(_text(v) for v in series.dropna() if _text(v) != ""))
    if len(vals) > 3:
        return ", ".join(vals[:3]) + f" (+{len(vals) - 3})"
    return ", ".join(vals) or "n/a"


def provenance(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per hardware entry: runs by status, seeds, and the distinct values of each field."""
    rows = []
    for hardware, g in runs.groupby("hardware", sort=False):
        row = {"hardware": hardware, "runs": len(g),
               "status": ", ".join(f"{n} {s}" for s, n in g["status"].value_counts().items()),
               "seeds": ", ".join(str(s) for s in sorted(g["seed"].unique()))}
        for col, label in FIELDS.items():
            row[label] = _values(g[col]) if col in g else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


NOTES = "Distinct values over the runs of each hardware entry (from each run's metrics.json)."


def build(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The provenance table (registry entry ``provenance``): raw, display and notes."""
    table = provenance(runs)
    return table, table.fillna("n/a"), NOTES
