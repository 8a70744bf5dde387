"""The scaling model's table and figure (registry entry ``scaling_model``): predicted DDP speedups
against the measured ones.

``collect`` turns the probes' JSON files (``liquidbench probe-step``: step time against the
per-process batch of one data set x model on one device; ``liquidbench probe-allreduce``: all-reduce
time against message size of one hardware entry) into the ``probes`` table, one row per probe point.
The workflow passes each file with its identity (step: dataset, model, device; all-reduce:
hardware), so nothing here reads meaning from a path.

``build`` fits, per scaling group of the measured ``scaling`` table (data set x model x device x
scaling mode with DDP runs), the compute model of its step probe and the all-reduce model of the
probes of the group's DDP hardware entries (or takes the interconnect the config gives), predicts
speedup, efficiency and knee for widths 1..``widths`` (liquidbench.results.scaling_model, where the
model is derived) and sets the measured speedups beside the predicted ones. A group whose probe is
missing or whose fit is unfit gets one row saying so, never a prediction without its fit.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from . import scaling_model as sm
from .scaling_settings import ScalingModel
from .scaling import hardware_entries
from .stats import estimate_of, ratio
from .tables import NOT_AVAILABLE, compact

# ----------------------------------------------------------------------------------------- probes table

PROBE_COLUMNS = ["kind", "dataset", "model", "device", "hardware", "backend", "world", "nodes", "x", "median_s",
                 "lo_s", "hi_s", "coverage", "samples_s", "gradient_bytes", "n_params", "env_device",
                 "env_device_name", "threads", "file"]
IDENTITY = {"step": ("dataset", "model", "device"), "allreduce": ("hardware",)}
GRID = {"step": "batch", "allreduce": "size_bytes"}  # the grid value's key in a point


def _read_probe(identity, path, kind: str) -> tuple[dict, dict]:
    """(identity, probe JSON) of one file, checked: the identity's keys, the probe's kind, its points."""
    if not isinstance(identity, Mapping):
        raise ValueError(f"{kind} probe {path}: identity {identity!r} (expected a mapping with "
                         f"{', '.join(IDENTITY[kind])})")
    missing = [k for k in IDENTITY[kind] if not isinstance(identity.get(k), str) or not identity.get(k)]
    if missing:
        raise ValueError(f"{kind} probe {path}: identity {dict(identity)} lacks {', '.join(missing)} "
                         f"(expected non-empty names for {', '.join(IDENTITY[kind])})")
    try:
        with open(path) as fh:
            probe = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {kind} probe {path}: {exc}") from exc
    if not isinstance(probe, dict) or probe.get("probe") != kind:
        found = probe.get("probe") if isinstance(probe, dict) else type(probe).__name__
        raise ValueError(f"{path}: expected a {kind} probe (JSON with \"probe\": \"{kind}\", written by "
                         f"liquidbench probe-{'step' if kind == 'step' else 'allreduce'}), got probe {found!r}")
    points = probe.get("points")
    if not isinstance(points, list) or not points:
        raise ValueError(f"{kind} probe {path}: no points (expected a non-empty list of timed points)")
    for i, p in enumerate(points):
        lacks = [k for k in (GRID[kind], "samples_s", "median_s") if not isinstance(p, dict) or k not in p]
        if lacks:
            raise ValueError(f"{kind} probe {path}: point {i} lacks {', '.join(lacks)}")
    needed = ("gradient_bytes",) if kind == "step" else ("world",)
    lacks = [k for k in needed if not isinstance(probe.get(k), (int, float)) or isinstance(probe.get(k), bool)]
    if lacks:
        raise ValueError(f"{kind} probe {path}: lacks {', '.join(lacks)} (expected a number)")
    env = probe.get("env") if isinstance(probe.get("env"), dict) else {}
    if kind == "step" and isinstance(env.get("device"), str) and identity["device"] in ("cpu", "cuda"):
        ran = env["device"].split(":")[0]
        if ran != identity["device"]:
            raise ValueError(f"step probe {path}: it ran on {env['device']}, but is given as the probe of device "
                             f"{identity['device']}")
    return dict(identity), probe


def collect(step: list, allreduce: list) -> pd.DataFrame:
    """The ``probes`` table: one row per point of every probe. ``step``: (identity {dataset, model,
    device}, path) pairs of step probes; ``allreduce``: (identity {hardware}, path) pairs of all-reduce
    probes. A file of another kind, or one identity given twice, is refused naming the file."""
    rows, seen = [], {}
    for kind, files in (("step", step), ("allreduce", allreduce)):
        for item in files:
            try:
                identity, path = item
            except (TypeError, ValueError):
                raise ValueError(f"{kind} probes: {item!r} (expected an (identity, path) pair)") from None
            identity, probe = _read_probe(identity, path, kind)
            key = (kind, *(identity[k] for k in IDENTITY[kind]))
            if key in seen:
                raise ValueError(f"{kind} probe {path}: {'/'.join(key[1:])} is also given by {seen[key]} "
                                 f"(expected one probe each)")
            seen[key] = path
            env = probe.get("env") if isinstance(probe.get("env"), dict) else {}
            base = {
                "kind": kind, "dataset": identity.get("dataset"), "model": identity.get("model"),
                "device": identity.get("device"), "hardware": identity.get("hardware"),
                "backend": probe.get("backend") if kind == "allreduce" else None,
                "world": int(probe["world"]) if kind == "allreduce" else 1,
                "nodes": int(probe.get("nodes") or len(set(probe.get("hosts") or [])) or 1) if kind == "allreduce"
                else 1,
                "gradient_bytes": probe.get("gradient_bytes"), "n_params": probe.get("n_params"),
                "env_device": env.get("device"), "env_device_name": env.get("device_name"),
                "threads": env.get("threads"), "file": str(path),
            }
            for p in probe["points"]:
                rows.append({**base, "x": p[GRID[kind]], "median_s": p["median_s"], "lo_s": p.get("lo_s"),
                             "hi_s": p.get("hi_s"), "coverage": p.get("coverage"),
                             "samples_s": json.dumps([float(v) for v in p["samples_s"]])})
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


# ------------------------------------------------------------------------------------------ the table

GROUP = ["dataset", "model", "device", "scaling"]  # a group of the measured scaling table
# a prediction's group: a scaling group's DDP entries on one node and those across nodes differ in
# their interconnect (loopback or shared memory, or the network), so each has its own all-reduce fit
TABLE_GROUP = GROUP + ["link"]
DISPLAY_WIDTHS = (1, 2, 4, 8, 16, 32, 64)  # besides every measured width
PREDICTED = sm.TABLE_COLUMNS[1:]  # the prediction's columns after width
MEASURED = ["measured_speedup", "measured_speedup_low", "measured_speedup_high", "rel_error", "in_band", "width_note"]
# per group, repeated on each of its rows: the fits, the exposed factor and the knee
GROUP_COLUMNS = ["batch_size", "n_train", "gradient_bytes", "c0", "c0_low", "c0_high", "c1", "c1_low", "c1_high",
                 "compute_r2", "alpha", "alpha_low", "alpha_high", "beta", "beta_low", "beta_high", "form",
                 "allreduce_source", "allreduce_hardware", "exposed", "exposed_source", "knee_threshold",
                 "knee_width", "knee_at", "knee_dominant", "knee_cause", "knee_reason", "fit_ok", "reason"]
RAW_COLUMNS = TABLE_GROUP + ["width", "hardware"] + PREDICTED + MEASURED + GROUP_COLUMNS
DISPLAY_COLUMNS = ["data set", "model", "mode", "n", "hardware", "predicted speedup [low, high]",
                   "measured speedup [low, high]", "error", "dominant term", "knee"]
MODEL_KEYS = ("widths", "exposed", "interconnect", "seed")  # what the model reads of config scaling_model
# the measured speedup the prediction is set against: the model predicts a steady epoch (no warm-up,
# no compilation), so the measurement is the steady epoch time (the epochs after the first, summary
# column steady_epoch_time_s), not the scaling table's training time, which includes the first epoch
MEASURE = "steady_epoch_time_s"


def settings(scaling_model: Mapping | None) -> dict:
    """The model's part of the config section ``scaling_model`` (MODEL_KEYS), checked and with its
    defaults (liquidbench.results.scaling_settings, their one home); the probes' keys are the
    workflow's and are not read here."""
    section = {k: v for k, v in (scaling_model or {}).items() if k in MODEL_KEYS and v is not None}
    checked = ScalingModel.from_section(section)
    return {k: getattr(checked, k) for k in MODEL_KEYS}


class _NoPrediction(Exception):
    """A group that cannot be predicted: its reason."""


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([np.nan] * len(frame), index=frame.index, dtype=object)


def _samples(text) -> list[float]:
    return [float(v) for v in (json.loads(text) if isinstance(text, str) else text)]


def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return None


def _allreduce_s(run: dict) -> float | None:
    """The exposed all-reduce per step of a DDP run's comm_probe (flattened or a dict / JSON string)."""
    v = _number(run.get("comm_probe.allreduce_s"))
    if v is not None:
        return v
    probe = run.get("comm_probe")
    if isinstance(probe, str):
        try:
            probe = json.loads(probe)
        except json.JSONDecodeError:
            return None
    return _number(probe.get("allreduce_s")) if isinstance(probe, Mapping) else None


def _one_value(values: pd.Series, what: str, where: str) -> int:
    v = pd.to_numeric(values, errors="coerce").dropna().unique()
    if len(v) != 1:
        raise _NoPrediction(f"{where}: the ok baseline runs give {what} {sorted(v.tolist()) or 'none'} "
                            f"(expected one value)")
    if int(v[0]) != v[0] or v[0] < 1:
        raise _NoPrediction(f"{where}: the baseline runs' {what} is {v[0]} (expected an integer >= 1)")
    return int(v[0])


def _compute_fit(probes: pd.DataFrame, dataset: str, model: str, device: str, info: dict):
    step = probes[(probes["kind"] == "step") & (probes["dataset"] == dataset) & (probes["model"] == model)
                  & (probes["device"] == device)] if len(probes) else probes
    where = f"{dataset} / {model} / {device}"
    if not len(step):
        raise _NoPrediction(f"no step probe of data set {dataset}, model {model} on device {device} "
                            f"(expected probes/step/{dataset}/{model}/{device}.json)")
    info["gradient_bytes"] = float(pd.to_numeric(step["gradient_bytes"]).iloc[0])
    try:
        fit = sm.fit_compute([int(b) for b in step["x"]], [_samples(s) for s in step["samples_s"]], where=where)
    except ValueError as exc:
        raise _NoPrediction(str(exc)) from None
    for name in ("c0", "c1"):
        est = getattr(fit, name)
        info.update({name: est.value, f"{name}_low": est.low, f"{name}_high": est.high})
    info["compute_r2"] = fit.r2
    if not fit.ok:
        raise _NoPrediction(f"the compute fit of data set {dataset}, model {model} on device {device} is unfit: "
                            f"{fit.reason}")
    return fit


def _allreduce_fit(probes: pd.DataFrame, device: str, scaling: str, members: list[str], entries: dict,
                   cfg: dict, cache: dict):
    """The group's all-reduce model (cached per device, scaling mode and members): (fit, hardware
    entries whose probes it used, notes) or a _NoPrediction reason."""
    key = (device, scaling, tuple(members))
    if key in cache:
        return cache[key]
    notes = []
    ic = cfg["interconnect"]
    if ic is not None:
        fit = sm.given_allreduce(float(ic["alpha"]), float(ic["beta"]), form=ic.get("form", "ring"),
                                 where="scaling_model.interconnect")
        cache[key] = (fit, [], notes, "")
        return cache[key]
    where = f"{device} {scaling} scaling ({', '.join(members) or 'no DDP entry'})"
    ar = probes[(probes["kind"] == "allreduce") & probes["hardware"].isin(members)] if len(probes) else probes
    have = [m for m in members if m in set(ar["hardware"])]
    reason = ""
    fit = None
    if not members:
        reason = (f"the study's hardware entries have no DDP entry (width > 1) on {device} with {scaling} scaling "
                  f"whose all-reduce could be probed")
    elif not have:
        reason = (f"no all-reduce probe of the DDP hardware entries {', '.join(members) or '(none)'} "
                  f"on {device} ({scaling} scaling; expected probes/allreduce/{{hardware}}.json)")
    else:
        lacking = [m for m in members if m not in have]
        if lacking:
            notes.append(f"all-reduce of {where}: no probe of {', '.join(lacking)}; fitted to {', '.join(have)}")
        for name in have:
            world = int(pd.to_numeric(ar.loc[ar["hardware"] == name, "world"]).iloc[0])
            if world != entries[name].world:
                notes.append(f"all-reduce probe of {name} ran with world {world}, the entry's width is "
                             f"{entries[name].world}: its rows are taken at width {world}")
        rows = [(int(r["world"]), float(r["x"]), _samples(r["samples_s"])) for r in ar.to_dict("records")]
        try:
            fit = sm.fit_allreduce(rows, where=where)
        except ValueError as exc:
            reason = str(exc)
        else:
            notes += [n if "probe of" in n else f"all-reduce of {where}: {n}" for n in fit.notes]
            if not fit.ok:
                reason = f"the all-reduce fit of {where} is unfit: {fit.reason}"
    cache[key] = (fit, have, notes, reason)
    return cache[key]


def _exposed(cfg: dict, runs: pd.DataFrame, dataset: str, model: str, members: list[str], entries: dict,
             comm, gradient_bytes: float) -> tuple[float, str]:
    """The exposed factor and where it comes from (module docstring of scaling_model; "measured":
    comm_probe's allreduce_s, what the run's synchronised steps paid over its no_sync steps, over
    the fitted isolated all-reduce at the run's width, median over the runs; above 1 where the step
    pays more than the isolated collective)."""
    if cfg["exposed"] != "measured":
        return float(cfg["exposed"]), "config"
    ddp = runs[(runs["dataset"] == dataset) & (runs["model"] == model) & runs["hardware"].isin(members)
               & (_col(runs, "status") == "ok")]
    ratios = []
    for run in ddp.to_dict("records"):
        s = _allreduce_s(run)
        t = comm.time(entries[run["hardware"]].world, gradient_bytes)
        if s is not None and t > 0:
            ratios.append(s / t)
    if not ratios:
        return 1.0, "measured: no ok DDP run has a comm_probe; 1 (the isolated all-reduce) used"
    factor = float(np.median(ratios))
    return factor, f"measured: median of comm_probe allreduce_s / fitted all-reduce over {len(ratios)} DDP run(s)"


def link_of(hw) -> str:
    """Where a DDP entry's processes talk: ``intra-node`` (one node) or ``inter-node``."""
    return "intra-node" if hw.nodes == 1 else "inter-node"


def steady_speedups(scaling: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The scaling table with its speedup and interval recomputed from the steady epoch time (MEASURE)
    of each row's entry and of its baseline (the scaling table's choice of baseline is kept): the
    ratio of geometric means over seeds with the log-scale t interval (stats.ratio); a baseline row
    is exactly 1. A row whose entry or baseline has no steady epoch time gets NaN (not compared)."""
    index = {(r["dataset"], r["model"], r["hardware"]): r for r in summary.to_dict("records")} \
        if {"dataset", "model", "hardware"} <= set(summary.columns) else {}
    out = []
    for r in scaling.to_dict("records"):
        here = index.get((r["dataset"], r["model"], r["hardware"]))
        base = r.get("baseline")
        tn = estimate_of(here, MEASURE)
        if base == r["hardware"]:  # the baseline against itself: exactly 1 where it has a steady time
            s = {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0} if tn["n"] else ratio(tn, tn)
        else:
            s = ratio(estimate_of(index.get((r["dataset"], r["model"], base)), MEASURE), tn)
        out.append({**r, "speedup": s["value"], "speedup_ci_low": s["ci_low"], "speedup_ci_high": s["ci_high"]})
    return pd.DataFrame(out, columns=list(scaling.columns))


def _group(key: tuple, g: pd.DataFrame, probes: pd.DataFrame, runs: pd.DataFrame, entries: dict, cfg: dict,
           threshold: float, cache: dict, members: list[str]) -> tuple[list[dict], list[str]]:
    """The rows of one prediction group (widths 1..max, or one row saying why there is no
    prediction); ``members``: its DDP entries (one link)."""
    dataset, model, device, scaling, link = key
    label = f"{dataset} / {model} / {device} {scaling} {link}"
    info = {c: np.nan for c in GROUP_COLUMNS}
    info.update(knee_threshold=threshold, fit_ok=False, reason="")
    notes: list[str] = []
    try:
        compute = _compute_fit(probes, dataset, model, device, info)
        notes += compute.notes
        comm, used, ar_notes, reason = _allreduce_fit(probes, device, scaling, members, entries, cfg, cache)
        notes += ar_notes
        if reason:
            raise _NoPrediction(f"data set {dataset}, model {model}: {reason}")
        ab = comm.model
        info.update(alpha=ab.alpha.value, alpha_low=ab.alpha.low, alpha_high=ab.alpha.high, beta=ab.beta.value,
                    beta_low=ab.beta.low, beta_high=ab.beta.high, form=comm.form, allreduce_source=comm.source,
                    allreduce_hardware=", ".join(used) if used else "given (scaling_model.interconnect)")
        base_names = {b for b in g.loc[g["n"] > 1, "baseline"] if isinstance(b, str) and b != "none"}
        base_names |= {h for h in g.loc[g["n"] == 1, "hardware"] if isinstance(h, str)}
        if not base_names:
            raise _NoPrediction(f"{label}: no one-process baseline entry (expected a width-1 entry of device "
                                f"{device}, see the scaling table)")
        base = runs[(runs["dataset"] == dataset) & (runs["model"] == model) & runs["hardware"].isin(base_names)
                    & (_col(runs, "status") == "ok")]
        if not len(base):
            raise _NoPrediction(f"{label}: no ok run of the baseline {', '.join(sorted(base_names))} (batch size "
                                f"and training samples per epoch come from it)")
        info["batch_size"] = batch = _one_value(_col(base, "train_params.batch_size"), "batch size", label)
        info["n_train"] = n_train = _one_value(_col(base, "samples_per_epoch"), "samples per epoch", label)
        exposed, source = _exposed(cfg, runs, dataset, model, members, entries, comm, info["gradient_bytes"])
        info.update(exposed=exposed, exposed_source=source)
        measured = g[pd.to_numeric(g["speedup"], errors="coerce") > 0]
        widths = sorted(set(range(1, cfg["widths"] + 1)) | {int(n) for n in measured["n"]})
        try:
            pred = sm.predict(compute, comm, batch_size=batch, n_train=n_train,
                              gradient_bytes=info["gradient_bytes"], scaling=scaling, widths=widths,
                              threshold=threshold, exposed=exposed, seed=cfg["seed"])
        except ValueError as exc:
            raise _NoPrediction(f"{label}: {exc}") from None
    except _NoPrediction as exc:
        info["reason"] = str(exc)
        return [{**dict(zip(TABLE_GROUP, key)), **info}], notes
    table = pred.table.set_index("width")
    predicted = set(table.index)
    notes += [f"{label}: {n}" for n in pred.notes if not n.startswith(("all-reduce:", "strong scaling: widths"))]
    if len(predicted) < len(widths):
        notes.append(f"{label}: strong scaling: {len(widths) - len(predicted)} of the widths 1..{max(widths)} not "
                     f"predicted (they do not divide the global batch {batch}); predicted {sorted(predicted)}")
    unpredicted = measured[~measured["n"].astype(int).isin(predicted)]
    if len(unpredicted):
        notes.append(f"{label}: measured widths {sorted(unpredicted['n'].astype(int))} not predicted (they do not "
                     f"divide the batch size {batch})")
    cmp = sm.compare(pred, measured[measured["n"].astype(int).isin(predicted)]).set_index("width")
    names = {int(n): h for n, h in zip(g["n"], g["hardware"])}
    k = pred.knee
    info.update(knee_width=k.width, knee_at=k.at, knee_dominant=k.dominant, knee_cause=k.cause,
                knee_reason=k.reason, fit_ok=True)
    rows = []
    for w in widths:
        row = {**dict(zip(TABLE_GROUP, key)), "width": w, "hardware": names.get(w, np.nan)}
        if w in predicted:
            row.update(table.loc[w, PREDICTED].to_dict())
            row["width_note"] = ""
        else:
            row.update({c: np.nan for c in PREDICTED})
            row["dominant"] = ""
            row["width_note"] = (f"not predicted: strong scaling splits the global batch {batch}, which {w} "
                                 f"does not divide")
        if w in cmp.index:
            c = cmp.loc[w]
            row.update(measured_speedup=c["measured"], measured_speedup_low=c["measured_low"],
                       measured_speedup_high=c["measured_high"], rel_error=c["rel_error"], in_band=bool(c["in_band"]))
        else:
            row.update(measured_speedup=np.nan, measured_speedup_low=np.nan, measured_speedup_high=np.nan,
                       rel_error=np.nan, in_band=None)
        rows.append({**row, **info})
    return rows, notes


def _display(raw: pd.DataFrame) -> pd.DataFrame:
    out = []
    for _, g in raw.groupby(TABLE_GROUP, sort=False, dropna=False):
        first = g.iloc[0]
        base = {"data set": first["dataset"], "model": first["model"],
                "mode": f"{first['device']}/{first['scaling']}, {first['link']}"}
        if not bool(first["fit_ok"]):
            out.append({**base, "n": NOT_AVAILABLE, "hardware": "", "predicted speedup [low, high]": NOT_AVAILABLE,
                        "measured speedup [low, high]": "", "error": "", "dominant term": "",
                        "knee": f"no prediction: {first['reason']}"})
            continue
        keep = g[(g["width"].isin(DISPLAY_WIDTHS) & g["speedup"].notna()) | g["measured_speedup"].notna()]
        for i, r in enumerate(keep.to_dict("records")):
            if pd.isna(r["rel_error"]):
                error = ""
            else:
                inside = r["in_band"] in (True, "True")  # a bool, or its text in a table read back from CSV
                error = f"{100 * r['rel_error']:+.1f} % ({'inside' if inside else 'outside'} the band)"
            hardware = r["hardware"] if isinstance(r["hardware"], str) else ""
            out.append({**base, "n": int(r["width"]), "hardware": hardware,
                        "predicted speedup [low, high]": compact(r["speedup"], r["speedup_low"], r["speedup_high"],
                                                                 digits=3),
                        "measured speedup [low, high]": compact(r["measured_speedup"], r["measured_speedup_low"],
                                                                r["measured_speedup_high"], digits=3)
                        if pd.notna(r["measured_speedup"]) else "",
                        "error": error, "dominant term": r["dominant"] or NOT_AVAILABLE,
                        "knee": f"knee n = {int(r['knee_width'])}: {r['knee_reason']}" if i == 0 else ""})
    return pd.DataFrame(out, columns=DISPLAY_COLUMNS)


MODEL_NOTE = ("Predicted speedup: the DDP scaling model of liquidbench.results.scaling_model, a step time "
              "t_c(b) = c0 + c1 b fitted to the step probe (b: per-process batch) plus the exposed factor times an "
              "alpha-beta all-reduce of the gradient fitted to the all-reduce probes; speedup = epoch(1)/epoch(n), "
              "[95 % Monte Carlo band over the fits' intervals]. Measured speedup: the ratio of the steady epoch "
              "times (epochs after the first: the model predicts no warm-up) of the scaling table's baseline and "
              "of the width, geometric means over seeds [95 % log-scale t interval]; the scaling table's speedup "
              "uses the whole training time, first epoch included. error = (predicted - measured) / measured; inside the band: the measured value "
              "lies in the predicted 95 % band. dominant term: the larger of compute and exposed all-reduce in a "
              "step. knee: the largest n whose predicted efficiency is still at or above the threshold, and what "
              "loses efficiency there.")


def _notes(raw: pd.DataFrame, cfg: dict, fit_notes: list[str]) -> str:
    parts = [MODEL_NOTE]
    ok = raw[raw["fit_ok"].astype(bool)].drop_duplicates(TABLE_GROUP) if len(raw) else raw
    if cfg["interconnect"] is not None:
        ic = cfg["interconnect"]
        parts.append(f"All-reduce: given by the config (scaling_model.interconnect: alpha {ic['alpha']:g} s, beta "
                     f"{ic['beta']:g} s/byte, {ic.get('form', 'ring')} form), not fitted.")
    elif len(ok):
        forms = ok.drop_duplicates(["device", "scaling", "link"])
        parts.append("All-reduce: fitted to the probes; form used: " + "; ".join(
            f"{r['device']}/{r['scaling']} {r['link']}: {r['form']}" for r in forms.to_dict("records"))
            + " (the lower residual sum of squares of ring and tree; one measured width: ring).")
    if cfg["exposed"] == "measured":
        fallback = ok[ok["exposed_source"].astype(str).str.contains("no ok DDP run")] if len(ok) else ok
        without = ", ".join("/".join(map(str, k)) for k in fallback[TABLE_GROUP].itertuples(index=False))
        parts.append("Exposed factor of the all-reduce (what a step pays for it over the isolated all-reduce): "
                     "measured per group (DDP runs' comm_probe allreduce_s, synchronised over no_sync steps, over "
                     "the fitted all-reduce at their width, median; column exposed)"
                     + (f"; without a comm_probe, 1 (the isolated all-reduce) for {without}" if without else "") + ".")
    else:
        parts.append(f"Exposed factor of the all-reduce: {cfg['exposed']:g} (config scaling_model.exposed).")
    failed = raw[~raw["fit_ok"].astype(bool)] if len(raw) else raw
    if len(failed):
        parts.append(f"{len(failed)} group(s) without a prediction (probe missing or fit unfit): see their rows.")
    if not len(raw):
        parts.append("No scaling group with DDP runs: nothing to predict.")
    fit_notes = list(dict.fromkeys(fit_notes))
    if fit_notes:
        parts.append("Fit notes: " + "; ".join(fit_notes) + ".")
    return " ".join(parts)


def build(probes: pd.DataFrame, runs: pd.DataFrame, scaling: pd.DataFrame, summary: pd.DataFrame, *,
          hardware: dict, threshold: float, scaling_model: dict) -> tuple:
    """The scaling_model table (registry entry ``scaling_model``): raw (one row per scaling group and
    width 1..widths, or one row per group without a prediction), display and notes. ``scaling``: the
    scaling table (its groups, widths and baselines); ``summary``: the summary over seeds (the measured
    steady epoch times, steady_speedups); ``hardware``: the study's hardware entries (the command
    line's JSON); ``scaling_model``: the config section {widths, exposed, interconnect, seed}."""
    if not 0 < threshold <= 1:
        raise ValueError(f"--threshold: the knee threshold is an efficiency in (0, 1], got {threshold}")
    cfg = settings(scaling_model)
    entries = hardware_entries(hardware)
    probes = probes if len(probes) else pd.DataFrame(columns=PROBE_COLUMNS)
    if "hardware" not in runs:
        runs = pd.DataFrame(columns=["dataset", "model", "hardware", "status"])
    rows, notes, cache = [], [], {}
    if len(scaling):
        scaling = steady_speedups(scaling.assign(n=pd.to_numeric(scaling["n"]).astype(int)), summary)
        for key, g in scaling.groupby(GROUP, sort=False):
            if not (g["n"] > 1).any():
                continue
            device, scaling = key[2], key[3]
            measured = {link_of(entries[h]) for h in g.loc[g["n"] > 1, "hardware"] if h in entries}
            for link in sorted(measured):
                members = [name for name, hw in entries.items() if hw.device == device and hw.scaling == scaling
                           and hw.world > 1 and link_of(hw) == link]
                sub = g[(g["n"] == 1) | g["hardware"].isin(members)]
                group_rows, group_notes = _group((*key, link), sub, probes, runs, entries, cfg, threshold, cache,
                                                 members)
                rows += group_rows
                notes += group_notes
    raw = pd.DataFrame(rows, columns=RAW_COLUMNS)
    return raw, _display(raw), _notes(raw, cfg, notes)


# ----------------------------------------------------------------------------------------- the figure

MAX_PANELS = 12  # more groups than this: one panel per data set x scaling group, a line per model
TICKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _curve(ax, g: pd.DataFrame, colour: str, model: str | None) -> None:
    """One group's predicted band and line, measured points and knee on ``ax``; with ``model`` (a
    panel of several models) one legend entry per model."""
    first = g.iloc[0]
    knee = f"knee n={int(first['knee_width'])} ({first['knee_dominant']}: {first['knee_cause']})"
    p = g[g["speedup"].notna()].sort_values("width")
    ax.fill_between(p["width"], p["speedup_low"], p["speedup_high"], color=colour, alpha=0.2, lw=0)
    ax.plot(p["width"], p["speedup"], color=colour, lw=1.2,
            label=f"{model}, {knee}" if model else "predicted (95 % band)")
    m = g[g["measured_speedup"].notna()].sort_values("width")
    if len(m):
        err = np.vstack([np.nan_to_num(m["measured_speedup"] - m["measured_speedup_low"]),
                         np.nan_to_num(m["measured_speedup_high"] - m["measured_speedup"])])
        ax.errorbar(m["width"], m["measured_speedup"], yerr=np.clip(err, 0, None), fmt="o", ms=4, capsize=2,
                    color=colour, mec="black", mew=0.5, label=None if model else "measured (95 % CI)")
    ax.axvline(first["knee_width"], color=colour, ls=":", lw=1.2, label=None if model else knee)


def figure(table: pd.DataFrame, stem) -> list[Path]:
    """Predicted speedup against width (log2 axes) with its 95 % band, the measured speedups with their
    intervals, the ideal S = n and the knee; one panel per group (a panel per data set x scaling group
    with a colour per model when there are more than MAX_PANELS groups)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    from .figures import STYLE, legend_outside, no_data, save
    from .figures import figure as panels

    with plt.rc_context(STYLE):
        if not len(table):
            fig, axes = panels(1, 1)
            no_data(axes[0][0], "no scaling group with DDP runs to predict")
            return save(fig, stem)
        groups = list(table.groupby(TABLE_GROUP, sort=False, dropna=False))
        if len(groups) <= MAX_PANELS:
            layout = [(f"{d} / {m} / {dev} {s}, {link}", [(None, g)]) for (d, m, dev, s, link), g in groups]
        else:
            by: dict = {}
            for (d, m, dev, s, link), g in groups:
                by.setdefault((d, dev, s, link), []).append((m, g))
            layout = [(f"{d} / {dev} {s}, {link}", curves) for (d, dev, s, link), curves in by.items()]
        many = len(groups) > MAX_PANELS  # a legend beside each panel: one column of panels
        cols = 1 if len(layout) == 1 or many else 2 if len(layout) <= 4 else 3
        rows = math.ceil(len(layout) / cols)
        fig, axes = panels(rows, cols)
        flat = axes.ravel()
        for ax in flat[len(layout):]:
            ax.set_axis_off()
        for ax, (title, curves) in zip(flat, layout):
            ok = [(label, g) for label, g in curves if bool(g.iloc[0]["fit_ok"])]
            failed = [(label, g) for label, g in curves if not bool(g.iloc[0]["fit_ok"])]
            ax.set_title(title)
            if not ok:
                why = failed[0][1].iloc[0]["reason"] if len(failed) == 1 else \
                    f"no prediction for {', '.join(str(lab) for lab, _ in failed)} (see the table)"
                no_data(ax, textwrap.fill(f"no prediction: {why}", 50))
                continue
            top = int(max(g["width"].max() for _, g in ok))
            for i, (label, g) in enumerate(ok):
                _curve(ax, g, f"C{i % 10}", label)
            ax.plot([1, top], [1, top], "k--", lw=1, label="ideal S = n")
            if len(ok) > 1:  # a model's measured points: its colour, black edge
                ax.errorbar([], [], yerr=[], fmt="o", ms=4, color="0.6", mec="black", mew=0.5,
                            label="measured (95 % CI); dotted: knee")
            if failed:
                ax.text(0.02, 0.02, textwrap.fill("no prediction: " + ", ".join(str(lab) for lab, _ in failed), 40),
                        transform=ax.transAxes, fontsize=6, color="C3", va="bottom")
            ax.set_xscale("log", base=2)
            values = pd.to_numeric(pd.concat([g[c] for _, g in ok for c in (
                "speedup_low", "speedup_high", "measured_speedup_low", "measured_speedup_high")]), errors="coerce")
            values = values[values > 0]
            if len(values):  # the data, not the ideal line, sets the height: the ideal runs off the top
                ax.set_yscale("log", base=2)
                ax.set_ylim(min(1.0, values.min()) / 1.2, max(2.0, 1.5 * values.max()))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_locator(LogLocator(base=2, subs=(1.5,)))
                ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlim(0.9, top * 1.1)  # a knee at 1 or at the top stays visible
            ticks = [t for t in TICKS if t <= top]
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_xlabel("DDP processes n (log2)")
            ax.set_ylabel("speedup epoch(1)/epoch(n)")
            if many:
                legend_outside(ax, fontsize=6, title="model, knee")
            else:
                ax.legend(fontsize=6, loc="best")
        return save(fig, stem)
