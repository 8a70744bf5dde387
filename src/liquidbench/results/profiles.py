"""Performance profiles of the study's models (Dolan and Moré 2002; AlgoPerf's ``performance_profile``).

A workload w is a data set x hardware entry of the study. On each workload every model m the study
ran there has a cost c(w, m), lower being better, and its ratio to the best model's cost there:

    r(w, m) = c(w, m) / min over m' of c(w, m')          (>= 1; infinite where m has no cost on w)

The performance profile of model m is the share of its workloads on which it is within a factor tau
of the best model:

    rho_m(tau) = |{w in W_m : r(w, m) <= tau}| / |W_m|,        1 <= tau <= 16

so rho_m(1) is the share of workloads m is best on (tied models all count), and rho_m(16) the
share on which it is at most 16 times worse than the best. Its area over log tau from 1 to 16,
divided by log 16, sums the whole curve up in [0, 1] (1: best on every workload; 0: never within
16x); it is the exact integral of the step function, the mean over w of max(0, 1 - log_16 r(w, m)).

W_m, the workloads of m, are those the study ran m on (summary rows): a combination the study
excludes is no workload of that model, while a run that diverged, failed or is missing is one on
which m has no cost. Two costs give two profiles:

- time: the time to the data set's target validation metric, the central value the time_to_target
  table reports, the geometric mean over the ok seeds that reached the target. A model counts as
  reaching it where at least one ok seed did (the rows keep n_reached of n_ok); where none did, or
  it has no ok run, r is infinite. A workload on which no model reached the target, or whose data
  set has no target, is left out of the time profile (the notes name it).
- metric: the mean test metric over ok seeds (summary table): mse as it is, accuracy as its error
  rate 1 - accuracy, so that r = 2 means twice the best model's error. Where the best cost is 0, r
  is 1 for the models also at 0 and infinite for the others. A model without an ok run there has
  an infinite r; a workload on which no model has an ok run is left out.

The figure draws each profile on the grid tau = 2^(k/16), k = 0..64 (65 points from 1 to 16, 16 a
doubling), plus every workload's ratio, so that each step sits where it belongs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .summary import GROUP, LOWER_IS_BETTER, no_ok_note
from .tables import NOT_AVAILABLE, num

TAU_MAX = 16.0
# the figure's grid: 2^(k/16) for k = 0..64, so 1, 2, 4, 8 and 16 are grid points exactly
TAU_GRID = 2.0 ** (np.arange(65) / 16.0)
# the tau at which the table reports rho
TAUS = (1, 2, 4, 8, 16)
# a ratio within this relative distance of tau counts as within tau: a time is a geometric mean,
# exp(mean log t), so a model exactly 3 times as slow may come out 3.0000000000000004 times
RTOL = 1e-9
PROFILES = ("time", "metric")
NO_TARGET = "no target"  # the time profile's reason to leave out a data set's workloads, as time_to_target says it
KIND_PROFILE, KIND_WORKLOAD = "profile", "workload"
COLUMNS = ["kind", "profile", "model", "dataset", "hardware", "metric_name", "outcome", "n_ok", "n_reached",
           "value", "cost", "best_cost", "best_model", "ratio", "in_profile", "n_workloads",
           *(f"rho_{t}" for t in TAUS), "area"]
NOTES = ("Performance profiles (Dolan and Moré): on each workload (data set / hardware) a model's cost over the "
         "best model's, r = cost / best cost; rho(tau) = share of the model's workloads with r <= tau; area = "
         "area under rho over log tau from 1 to 16, divided by log 16 (1: best everywhere, 0: never within "
         "16x). time: time to target, geometric mean over the ok seeds that reached the target (a model "
         "counts as reaching it where at least one ok seed did; r infinite where none did or no run was ok). "
         "metric: mean test metric over ok seeds, mse as it is, accuracy as the error rate 1 - accuracy "
         "(r = 2: twice the best model's error). A model's workloads are those the study ran it on. "
         "profiles.csv holds every workload's ratio (rows of kind workload) beside each profile's rho at "
         "1, 2, 4, 8 and 16 and its area (rows of kind profile).")


# ---- the profile of one model from its ratios -----------------------------------------------------

def ratios(costs: dict[str, float]) -> dict[str, float]:
    """Each model's cost over the best model's on one workload: infinite for a model without a cost,
    so that it is within no factor of the best; a best cost of 0 (a perfect metric) divides
    nothing: models also at 0 are best (1), the others infinitely worse."""
    finite = {m: c for m, c in costs.items() if c is not None and math.isfinite(c)}
    if not finite:
        return {m: math.inf for m in costs}
    best = min(finite.values())
    out = {}
    for m, c in costs.items():
        if m not in finite:
            out[m] = math.inf
        elif best > 0:
            out[m] = c / best
        else:
            out[m] = 1.0 if c <= 0 else math.inf
    return out


def rho(ratio_values, tau) -> np.ndarray | float:
    """rho(tau): the share of ``ratio_values`` (one per workload) within ``tau`` of the best, for a
    number or an array of tau; NaN without workloads, where a share means nothing."""
    r = np.asarray(list(ratio_values), dtype=float)
    t = np.asarray(tau, dtype=float)
    if not len(r):
        return np.full(t.shape, np.nan) if t.ndim else float("nan")
    within = r[None, :] <= (np.atleast_1d(t) * (1 + RTOL))[:, None]
    shares = within.mean(axis=1)
    return shares if t.ndim else float(shares[0])


def area(ratio_values) -> float:
    """The area under rho over log tau from 1 to TAU_MAX, divided by log TAU_MAX: rho is a step
    function, so the integral is exact, the mean over workloads of max(0, 1 - log r / log TAU_MAX)
    (a workload counts for the part of the log range from its ratio up); NaN without workloads."""
    r = np.asarray(list(ratio_values), dtype=float)
    if not len(r):
        return float("nan")
    with np.errstate(divide="ignore"):
        part = 1.0 - np.log(np.maximum(r, 1.0)) / math.log(TAU_MAX)
    return float(np.clip(part, 0.0, 1.0).mean())


def metric_cost(metric_name, value: float) -> float:
    """The metric as a cost, lower being better and 0 at a perfect model, so that ratios of it mean
    "so many times worse": mse as it is, accuracy (the one higher-is-better metric, whose best is 1)
    as the error rate 1 - accuracy."""
    if value is None or not math.isfinite(value):
        return math.nan
    return 1.0 - value if not LOWER_IS_BETTER.get(metric_name, True) else value


# ---- per workload ---------------------------------------------------------------------------------

def _float(value) -> float:
    value = pd.to_numeric(value, errors="coerce")
    return float(value) if pd.notna(value) else math.nan


def _int(value) -> int:
    value = pd.to_numeric(value, errors="coerce")
    return int(value) if pd.notna(value) else 0


def _name(value):
    return value if isinstance(value, str) else None


def workload_label(dataset: str, hardware: str) -> str:
    return f"{dataset}/{hardware}"


def workload_rows(profile: str, workload: tuple[str, str], entries: list[dict],
                  why: str | None = None) -> tuple[list[dict], str | None]:
    """The rows of one workload of a profile, from each model's ``entries`` (model, metric_name,
    outcome, n_ok, n_reached, value, cost): its ratio and the best model; and why the workload is
    left out of the profile (None when it is in): ``why`` where the caller knows (a data set
    without a target), else where no model has a cost there, since a ratio needs a best."""
    costs = {e["model"]: e["cost"] for e in entries}
    finite = [c for c in costs.values() if math.isfinite(c)]
    if why is None and not finite:
        where = workload_label(*workload)
        why = f"no model reached the target on {where}" if profile == "time" else f"no model has an ok run on {where}"
    r = ratios(costs) if why is None else dict.fromkeys(costs, math.nan)
    best = {"best_cost": min(finite), "best_model": ", ".join(m for m, v in r.items() if v == 1.0)} \
        if why is None else {"best_cost": math.nan, "best_model": None}
    rows = [{"kind": KIND_WORKLOAD, "profile": profile, "dataset": workload[0], "hardware": workload[1], **e,
             **best, "ratio": r[e["model"]], "in_profile": why is None} for e in entries]
    return rows, why


def _workloads(summary: pd.DataFrame):
    """(dataset, hardware) -> the summary rows of the models the study ran there, in table order."""
    if not len(summary) or not set(GROUP) <= set(summary.columns):
        return {}
    return {key: g for key, g in summary.groupby(["dataset", "hardware"], sort=True)}


def metric_entries(group: pd.DataFrame) -> list[dict]:
    """Each model's mean test metric on one workload and its cost (metric_cost)."""
    out = []
    for r in group.to_dict("records"):
        value = _float(r.get("test_metric_mean"))
        name = _name(r.get("metric_name"))
        n_ok = _int(r.get("n_ok"))
        out.append({"model": r["model"], "metric_name": name, "outcome": "ok" if n_ok else "no ok runs",
                    "n_ok": n_ok, "n_reached": math.nan, "value": value, "cost": metric_cost(name, value)})
    return out


def time_entries(group: pd.DataFrame, targets: pd.DataFrame) -> list[dict]:
    """Each model's time to target on one workload (the time_to_target row of its configuration):
    the geometric mean over the ok seeds that reached it, where at least one did."""
    out = []
    for r in group.to_dict("records"):
        key = (r["dataset"], r["model"], r["hardware"])
        t = targets.loc[key] if key in targets.index else None
        status = _name(t["status"]) if t is not None and "status" in t else None
        n_reached = _int(t["n_reached"]) if t is not None and "n_reached" in t else 0
        value = _float(t["time_gmean"]) if t is not None and "time_gmean" in t else math.nan
        reached = n_reached > 0 and math.isfinite(value)
        out.append({"model": r["model"], "metric_name": _name(r.get("metric_name")),
                    "outcome": status or ("no ok runs" if not _int(r.get("n_ok")) else "not reached"),
                    "n_ok": _int(r.get("n_ok")), "n_reached": n_reached, "value": value,
                    "cost": value if reached else math.nan})
    return out


def _target_index(time_to_target: pd.DataFrame) -> pd.DataFrame:
    """time_to_target by (dataset, model, hardware); an empty frame where the table has no rows."""
    if not len(time_to_target) or not set(GROUP) <= set(time_to_target.columns):
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=GROUP))
    return time_to_target.set_index(GROUP)


def datasets_with_target(time_to_target: pd.DataFrame) -> set[str]:
    """The data sets the study set a target for (config results.targets)."""
    if not len(time_to_target) or "target" not in time_to_target:
        return set()
    has = pd.to_numeric(time_to_target["target"], errors="coerce").notna()
    return set(time_to_target.loc[has, "dataset"])


def profile_workloads(summary: pd.DataFrame, time_to_target: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """Every workload row of both profiles, and the notes on the workloads left out of one (a data
    set without a target once, not once per hardware entry)."""
    targets, with_target = _target_index(time_to_target), datasets_with_target(time_to_target)
    rows, notes, untargeted = [], [], []
    for workload, group in _workloads(summary).items():
        for profile in PROFILES:
            if profile == "time":
                entries, why = time_entries(group, targets), None if workload[0] in with_target else NO_TARGET
            else:
                entries, why = metric_entries(group), None
            found, why = workload_rows(profile, workload, entries, why)
            rows += found
            if why == NO_TARGET:
                untargeted.append(workload[0])
            elif why:
                notes.append(f"{profile} profile: {why}, left out.")
    notes += [f"time profile: no target for data set {dataset} (config results.targets), its workloads left out."
              for dataset in dict.fromkeys(untargeted)]
    return rows, notes


# ---- per model ------------------------------------------------------------------------------------

def model_profile(profile: str, model: str, workloads: list[dict]) -> dict:
    """One model's profile row: its number of workloads, rho at TAUS and the area."""
    r = [w["ratio"] for w in workloads]
    return {"kind": KIND_PROFILE, "profile": profile, "model": model, "n_workloads": len(r),
            **{f"rho_{t}": rho(r, t) for t in TAUS}, "area": area(r)}


def profile_rows(rows: list[dict], models: list[str]) -> list[dict]:
    """A profile row for every model and profile, over the workloads of that profile it ran on."""
    out = []
    for profile in PROFILES:
        for model in models:
            mine = [w for w in rows if w["profile"] == profile and w["model"] == model and w["in_profile"]]
            out.append(model_profile(profile, model, mine))
    return out


def partly_reached(rows: list[dict]) -> str | None:
    """A note naming the configurations whose time counts though not every ok seed reached the target."""
    some = [f"{w['model']} on {workload_label(w['dataset'], w['hardware'])} ({w['n_reached']} of {w['n_ok']} ok seeds)"
            for w in rows if w["profile"] == "time" and w["in_profile"] and w["outcome"] == "reached by some"]
    return f"time profile: reached by some seeds only, timed over those: {'; '.join(some)}." if some else None


def profiles_table(summary: pd.DataFrame, time_to_target: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The raw table (COLUMNS: the profile rows first, then every workload's row) and the notes on
    what the profiles leave out."""
    rows, notes = profile_workloads(summary, time_to_target)
    models = list(dict.fromkeys(summary["model"])) if len(summary) and "model" in summary else []
    some = partly_reached(rows)
    rows.sort(key=lambda w: PROFILES.index(w["profile"]))  # stable: by workload and model within a profile
    table = pd.DataFrame(profile_rows(rows, models) + rows, columns=COLUMNS)
    # counts stay integers in the CSV where the other kind of row leaves them empty
    table = table.astype({c: "Int64" for c in ("n_ok", "n_reached", "n_workloads")} | {"in_profile": "boolean"})
    return table, notes + ([some] if some else [])


def counted(table: pd.DataFrame, profile: str | None = None) -> pd.DataFrame:
    """The workload rows that enter a profile (all profiles without ``profile``), from the table as
    built or as read back from its CSV (in_profile then reads True, False or empty)."""
    if not len(table):
        return table
    rows = table[(table["kind"] == KIND_WORKLOAD) & (table["in_profile"].astype(str) == "True")]
    return rows if profile is None else rows[rows["profile"] == profile]


# ---- display and build ----------------------------------------------------------------------------

def ratio_text(row: dict) -> str:
    """One workload's ratio in a cell: the factor, or why there is none."""
    r = row["ratio"]
    if pd.notna(r) and math.isfinite(r):
        return num(r, 3)
    if row["profile"] == "time":
        return row["outcome"] if row["outcome"] in ("not reached", "no ok runs") else "not reached"
    return "no ok runs"


def display(table: pd.DataFrame) -> pd.DataFrame:
    """One row per profile and model: rho at TAUS, the area, and each workload's ratio in one cell."""
    workloads = counted(table)
    out = []
    for r in table[table["kind"] == KIND_PROFILE].to_dict("records"):
        mine = workloads[(workloads["profile"] == r["profile"]) & (workloads["model"] == r["model"])]
        cells = "; ".join(f"{workload_label(w['dataset'], w['hardware'])} {ratio_text(w)}"
                          for w in mine.to_dict("records"))
        out.append({"profile": r["profile"], "model": r["model"], "workloads": str(int(r["n_workloads"])),
                    **{f"rho({t})": num(r[f"rho_{t}"], 3) for t in TAUS}, "area": num(r["area"], 3),
                    "ratio to the best per workload": cells or NOT_AVAILABLE})
    columns = ["profile", "model", "workloads", *(f"rho({t})" for t in TAUS), "area", "ratio to the best per workload"]
    return pd.DataFrame(out, columns=columns)


def build(summary: pd.DataFrame, time_to_target: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The profiles table (registry entry ``profiles``): raw, display and notes."""
    table, left_out = profiles_table(summary, time_to_target)
    notes = " ".join(filter(None, (no_ok_note(summary), NOTES)))
    if left_out:
        notes += "\n\n" + "\n".join(f"- {n}" for n in left_out)
    return table, display(table), notes


# ---- the figure -----------------------------------------------------------------------------------

TITLES = {"time": "time to target", "metric": "test metric (mse; accuracy as error rate 1 - accuracy)"}
EMPTY = {"time": "no workload on which a model reached its data set's target",
         "metric": "no workload on which a model has an ok run"}
LINESTYLES = ("-", "--", "-.", ":")


def curve(ratio_values) -> tuple[np.ndarray, np.ndarray]:
    """(tau, rho) of a profile on TAU_GRID and at each ratio within it, for a step line."""
    r = np.asarray(list(ratio_values), dtype=float)
    inside = r[np.isfinite(r) & (r >= 1) & (r <= TAU_MAX)]
    tau = np.unique(np.concatenate([TAU_GRID, inside]))
    return tau, rho(r, tau)


def _panel(ax, table: pd.DataFrame, profile: str, models: list[str], why: str) -> None:
    """One profile: a step line per model over its workloads, log tau from 1 to TAU_MAX."""
    from .figures import no_data

    rows = counted(table, profile)
    if not len(rows):
        no_data(ax, why)
        ax.set_title(TITLES[profile])
        return
    for i, model in enumerate(models):
        r = pd.to_numeric(rows.loc[rows["model"] == model, "ratio"], errors="coerce").to_numpy(float)
        if not len(r):
            continue
        tau, share = curve(r)
        # line styles apart from colours: models with the same profile draw the same line
        ax.step(tau, share, where="post", color=f"C{i % 10}", ls=LINESTYLES[i % len(LINESTYLES)], lw=1.5,
                label=model)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, TAU_MAX)
    ax.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau: factor of the best model on the workload (log scale)")
    ax.set_ylabel("share of workloads within tau")
    ax.set_title(TITLES[profile])


def performance_profile(profiles: pd.DataFrame, summary: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Both profiles side by side, a step line per model with its area in the legend; a profile
    without workloads gets an empty panel saying why (no ok runs, or no target reached)."""
    import matplotlib.pyplot as plt

    from .figures import STYLE, figure, save, why_empty

    kinds = profiles["kind"] if "kind" in profiles else pd.Series(dtype=object)
    models = list(dict.fromkeys(profiles.loc[kinds == KIND_PROFILE, "model"])) if len(profiles) else []
    with plt.rc_context(STYLE):
        fig, axes = figure(1, 2)
        for ax, profile in zip(axes[0], PROFILES):
            _panel(ax, profiles, profile, models, why_empty(summary, EMPTY[profile]))
        handles = {}  # one legend for both panels: a model has the same line in each
        for ax in axes[0]:
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
        if handles:
            fig.legend(handles.values(), handles.keys(), loc="outside right upper", title="model")
        fig.suptitle("Performance profiles: share of workloads on which a model is within tau x the best",
                     x=0.02, ha="left")
        return save(fig, stem)
