"""Speedup and parallel efficiency of DDP widths against their one-process baseline.

Definitions (docs/statistics.md, "Scaling"):

- The width of a hardware entry is n = nodes x nproc_per_node (its DDP world size).
- A *scaling group* is (device, scaling) over the study's hardware entries whose ``scaling`` is
  ``weak`` or ``strong``.
- The group's baseline T(1) is the one-process entry (n = 1) of the same device and scaling mode;
  if the group has none, the one-process entry of the same device with no scaling mode (a plain
  single-process run is the same computation: with one process weak and strong scaling coincide).
  Among several candidates the first in study order is used. ``baselines`` overrides this per
  hardware entry (config ``results.scaling_baselines``).
- T is the geometric mean training time (``train_time_s``, the sum of epoch times) over ok
  seeds; speedup S(n) = T(1) / T(n), efficiency E(n) = S(n) / n. Their 95 % intervals are t
  intervals on the log scale (stats.ratio: the standard errors of both log means added in
  quadrature, t quantile with min(seeds of T(1), seeds of T(n)) - 1 degrees of freedom), so they stay positive.
- The knee is the largest n with E(n) >= threshold (config results.knee_threshold) among widths with data,
  counting the baseline (E(1) = 1).
"""

from __future__ import annotations


import pandas as pd

from ..train.settings import Hardware
from .scaling_settings import groups, width
from .stats import estimate_of, ratio

MEASURE = "train_time_s"


def hardware_entries(hardware: dict[str, dict]) -> dict[str, Hardware]:
    """The command line's ``--hardware-config`` JSON (entry name -> entry, in study order), read once."""
    for name, entry in hardware.items():
        if not isinstance(entry, dict):
            raise ValueError(f"--hardware-config: entry '{name}': expected a mapping (a hardware entry of the "
                             f"config), got {entry!r}")
    return {name: Hardware.from_entry(name, entry) for name, entry in hardware.items()}


def _gmean(row: dict | None) -> float:
    return row.get(f"{MEASURE}_gmean", float("nan")) if row is not None else float("nan")


def knee(widths: list[int], efficiencies: list[float], threshold: float) -> float:
    """Largest width whose efficiency is >= threshold (NaN efficiencies skipped); NaN if none."""
    ok = [n for n, e in zip(widths, efficiencies) if not pd.isna(e) and e >= threshold]
    return max(ok) if ok else float("nan")


def scaling_table(summary: pd.DataFrame, hardware: dict[str, Hardware], threshold: float,
                  baselines: dict | None = None) -> pd.DataFrame:
    """One row per dataset x model x scaling group x width (the baseline included as n = 1)."""
    index = {(r["dataset"], r["model"], r["hardware"]): r for r in summary.to_dict("records")}
    rows = []
    for g in groups(hardware, baselines):
        for dataset in sorted(summary["dataset"].unique()):
            for model in sorted(summary["model"].unique()):
                group_rows = []
                base_names = sorted({b for b in g["baseline"].values() if b is not None})
                entries = [(b, True) for b in base_names if b not in g["members"]]
                entries += [(m, m in base_names) for m in g["members"]]
                # an entry without a row has no run in the study (study.exclude): no row here either
                entries = [(name, is_base) for name, is_base in entries if (dataset, model, name) in index]
                if not any(name in g["members"] and width(hardware[name]) > 1 for name, _ in entries):
                    continue
                for name, is_base in entries:
                    base = g["baseline"].get(name, name if is_base else None)
                    here, ref = index[(dataset, model, name)], index.get((dataset, model, base))
                    tn, t1 = estimate_of(here, MEASURE), estimate_of(ref, MEASURE)
                    n = width(hardware[name])
                    if base is None:
                        s = ratio({"n": 0}, {"n": 0})
                    elif base == name and tn["n"]:
                        # the baseline against itself: exactly 1, not a ratio of two samples
                        s = {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}
                    else:
                        s = ratio(t1, tn)
                    row = {
                        "dataset": dataset, "model": model, "device": g["device"], "scaling": g["scaling"],
                        "hardware": name, "n": n,
                        "baseline": base if base is not None else "none",
                        "runs": here["runs"],
                        "t1_gmean": _gmean(ref), "tn_gmean": _gmean(here), "t1_seeds": t1["n"], "tn_seeds": tn["n"],
                        "speedup": s["value"], "speedup_ci_low": s["ci_low"], "speedup_ci_high": s["ci_high"],
                        "efficiency": s["value"] / n, "efficiency_ci_low": s["ci_low"] / n,
                        "efficiency_ci_high": s["ci_high"] / n,
                    }
                    group_rows.append(row)
                k = knee([r["n"] for r in group_rows], [r["efficiency"] for r in group_rows], threshold)
                for r in group_rows:
                    r.update(knee_threshold=threshold, knee_n=k)
                rows.extend(group_rows)
    cols = ["dataset", "model", "device", "scaling", "hardware", "n", "baseline", "runs", "t1_gmean", "tn_gmean",
            "t1_seeds", "tn_seeds", "speedup", "speedup_ci_low", "speedup_ci_high", "efficiency",
            "efficiency_ci_low", "efficiency_ci_high", "knee_threshold", "knee_n"]
    return pd.DataFrame(rows, columns=cols)


def display(table: pd.DataFrame) -> pd.DataFrame:
    from .tables import estimate, num

    out = []
    for r in table.to_dict("records"):
        out.append({
            "dataset": r["dataset"], "model": r["model"], "mode": f"{r['device']}/{r['scaling']}",
            "hardware": r["hardware"], "n": int(r["n"]), "baseline": r["baseline"], "runs": r["runs"],
            "T(1) [s]": num(r["t1_gmean"]), "T(n) [s]": num(r["tn_gmean"]),
            "speedup": estimate(r["speedup"], lo=r["speedup_ci_low"], hi=r["speedup_ci_high"]),
            "efficiency": estimate(r["efficiency"], lo=r["efficiency_ci_low"], hi=r["efficiency_ci_high"]),
            "knee": "n/a" if pd.isna(r["knee_n"]) else str(int(r["knee_n"])),
        })
    return pd.DataFrame(out, columns=["dataset", "model", "mode", "hardware", "n", "baseline", "runs", "T(1) [s]",
                                      "T(n) [s]", "speedup", "efficiency", "knee"])


NOTES = ("A row of dashes: the study has no hardware entry with a scaling mode (weak/strong). "
         "speedup = T(1)/T(n) of the geometric mean training time over ok seeds, efficiency = speedup/n; "
         "[95 % t interval on the log scale] from the seeds of both configurations. "
         "knee: largest n whose efficiency is still at or above the threshold. "
         "n/a: a configuration without ok runs.")


def build(summary: pd.DataFrame, hardware: dict, threshold: float, baselines: dict) -> tuple:
    """The scaling table (registry entry ``scaling``): raw, display and notes; ``hardware`` is the
    command line's JSON, read here once (hardware_entries)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"--threshold: the knee threshold is an efficiency in (0, 1], got {threshold}")
    table = scaling_table(summary, hardware_entries(hardware), threshold, baselines)
    return table, display(table), NOTES
