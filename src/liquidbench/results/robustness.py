"""The evaluation stage's tables, figures and claims (registry entries ``robustness``, ``memory``,
``robustness_claims``; figures of ``EVALUATION_FIGURES``).

``collect`` turns every run's evaluation.json (liquidbench.evaluate) into two tables: one row per
run x family x level (``evaluation.csv``) and one row per run with its memory figures
(``evaluation_runs.csv``). A run's *degradation* at a level is its metric's change from its own
clean test metric, relative to it, signed so that positive is worse: (m - clean) / clean for MSE,
(clean - m) / clean for accuracy. For the horizon (closed-loop, on forecasting sine data sets:
liquidbench.evaluate.horizon), a run's figure at level H is the mean squared error over horizon
steps 1..H.

Claims: each comparison (estimate, 95 % interval, n per side, null value) is decided by the
study's one rule (results/verdicts.py, as every claim of the claims table): a row's verdict is
``true``/``false`` only when the interval excludes the null, ``not significant at 95 %`` when it
contains it, ``undecidable`` with fewer than ``min_seeds`` runs on a side; the claim's verdict
follows from its rows by the same rule.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_json
from .compare import split_types
from .metrics_schema import KEYS
from .stats import describe, ratio, t_quantile
from .summary import METRIC_BOUNDS
from .tables import estimate, num
from .verdicts import FALSE, NOT_SIGNIFICANT, TRUE, UNDECIDABLE, ClaimsSettings, Comparison, verdict

LIQUID, BASELINE = ("ltc", "cfc"), ("lstm", "gru")
# the columns of the two tables collect() writes, also when no run was evaluated: a reader of an
# empty table still finds its header (an empty CSV without one cannot be read)
ROW_COLUMNS = KEYS + ["metric_name", "family", "level", "step", "metric", "n", "degradation"]
RUN_COLUMNS = KEYS + ["n_params", "activation_bytes", "activation_batch", "activation_seq_len",
                      "activation_bytes_per_step", "skipped"]
NOTHING_EVALUATED = ("No run of this study was evaluated: only runs that ended ok are (a diverged or failed run "
                     "has no weights worth testing); the summary table counts the runs by status.")


def run_status(path: str | Path, evaluation: dict) -> str:
    """The status of the run an evaluation.json belongs to. Its own metrics.json, beside it, decides:
    a run that diverged after a good epoch keeps that epoch's weights, and an evaluation written
    before the evaluation stage read the run's status tested them; such figures must not count as an
    ok run's. Without a metrics.json beside it (a file moved elsewhere), the evaluation's own status."""
    metrics = Path(path).parent / "metrics.json"
    if metrics.is_file():
        return read_json(metrics).get("status", "missing")
    return evaluation.get("status", "missing")


def with_columns(records: list[dict], columns: list[str]) -> pd.DataFrame:
    """A frame of ``records`` that has at least ``columns`` (in that order, other keys after them)."""
    frame = pd.DataFrame(records)
    return frame.reindex(columns=columns + [c for c in frame.columns if c not in columns])


def collect(paths: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluation rows, evaluation runs) from evaluation.json files, of the runs that ended ok only;
    both tables have their columns even when no run did."""
    rows, runs = [], []
    for path in paths:
        ev = read_json(path)
        if ev.get("status") != "ok" or run_status(path, ev) != "ok":  # diverged, failed: no rows
            continue
        key = {k: ev[k] for k in KEYS}
        clean = next(r["metric"] for r in ev["rows"] if r["family"] == "clean")
        sign = -1.0 if ev["metric_name"] == "accuracy" else 1.0
        for r in ev["rows"]:
            degradation = sign * (r["metric"] - clean) / clean if clean else float("nan")
            rows.append({**key, "metric_name": ev["metric_name"], "family": r["family"], "level": r["level"],
                         "step": r.get("step"), "metric": r["metric"], "n": r["n"], "degradation": degradation})
        runs.append({**key, **ev["memory"], "skipped": "; ".join(f"{k}: {v}" for k, v in ev["skipped"].items())})
    return pd.DataFrame(rows, columns=ROW_COLUMNS), with_columns(runs, RUN_COLUMNS)


def ok_runs_only(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` (keyed by run) whose run ended ok in the runs table: a second guard, so
    that an evaluation written before its run was found diverged never enters a statistic."""
    if "status" not in runs or not len(frame) or not set(KEYS) <= set(frame.columns):
        return frame
    ok = runs.loc[runs["status"] == "ok", KEYS].drop_duplicates()
    keep = pd.MultiIndex.from_frame(frame[KEYS].astype({"seed": int})).isin(
        pd.MultiIndex.from_frame(ok.astype({"seed": int})))
    return frame[keep]


def per_run(evaluation: pd.DataFrame) -> pd.DataFrame:
    """One row per run x family x level; horizon steps 1..H collapse into level H (their mean)."""
    ev = evaluation
    plain = ev[ev["family"] != "horizon"]
    hz = ev[(ev["family"] == "horizon") & (ev["level"] > 0)]
    if len(hz):
        cols = KEYS + ["metric_name"]
        agg = hz.groupby(cols, as_index=False).agg(metric=("metric", "mean"), level=("level", "max"), n=("n", "first"))
        clean = plain[plain["family"] == "clean"].set_index(KEYS)["metric"]
        agg["family"] = "horizon"
        sign = np.where(agg["metric_name"] == "accuracy", -1.0, 1.0)
        c = clean.reindex(pd.MultiIndex.from_frame(agg[KEYS])).to_numpy()
        agg["degradation"] = sign * (agg["metric"] - c) / c
        plain = pd.concat([plain, agg], ignore_index=True)
    return plain


def build_robustness(evaluation: pd.DataFrame) -> tuple:
    """Metric per data set x model x hardware x family x level over seeds: mean, 95 % interval, n,
    and the relative degradation from the clean metric (mean and interval)."""
    out = []
    for (ds, model, hw, fam, level), g in per_run(evaluation).groupby(["dataset", "model", "hardware", "family",
                                                                       "level"], sort=True):
        m, d = describe(g["metric"], bounds=METRIC_BOUNDS.get(g["metric_name"].iloc[0])), describe(g["degradation"])
        out.append({"dataset": ds, "model": model, "hardware": hw, "family": fam, "level": level,
                    "metric_name": g["metric_name"].iloc[0], "metric_mean": m["mean"], "metric_ci_low": m["ci_low"],
                    "metric_ci_high": m["ci_high"], "n": m["n"], "degradation_mean": d["mean"],
                    "degradation_ci_low": d["ci_low"], "degradation_ci_high": d["ci_high"]})
    raw = pd.DataFrame(out, columns=["dataset", "model", "hardware", "family", "level", "metric_name", "metric_mean",
                                     "metric_ci_low", "metric_ci_high", "n", "degradation_mean", "degradation_ci_low",
                                     "degradation_ci_high"])
    display = pd.DataFrame({
        "data set": raw.get("dataset", []), "model": raw.get("model", []), "hardware": raw.get("hardware", []),
        "perturbation": [f"{f} {num(lv, 3)}" for f, lv in zip(raw.get("family", []), raw.get("level", []))],
        "metric": [f"{mn} " + estimate(r["metric_mean"], lo=r["metric_ci_low"], hi=r["metric_ci_high"], n=r["n"])
                   for mn, r in zip(raw.get("metric_name", []), raw.to_dict("records"))],
        "degradation": [estimate(r["degradation_mean"], lo=r["degradation_ci_low"], hi=r["degradation_ci_high"])
                        for r in raw.to_dict("records")],
    })
    notes = ("mean [95 % t interval] over seeds; degradation: change from the run's clean test metric, relative "
             "to it, positive = worse; horizon H: mean squared error over closed-loop horizon steps 1..H")
    return raw, display, _empty_says_why(raw, notes)


def _empty_says_why(raw: pd.DataFrame, notes: str) -> str:
    """``notes``, led by NOTHING_EVALUATED where the table has no row, so that an empty table reads
    as an outcome of the study (every run diverged or failed) rather than as a fault."""
    return notes if len(raw) else f"{NOTHING_EVALUATED} {notes}"


def build_memory(runs: pd.DataFrame, evaluation_runs: pd.DataFrame) -> tuple:
    """Per data set x model x hardware: parameters, peak host RSS, peak GPU memory where a GPU ran,
    and the activation memory a training step keeps per sequence step (means over runs)."""
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    gpu_col = "telemetry.gpu.torch_max_memory_allocated_mb"
    keys = ["dataset", "model", "hardware"]
    has_rss = len(ok) and "peak_host_rss_mb" in ok
    rss = ok.groupby(keys)["peak_host_rss_mb"].mean() if has_rss else pd.Series(dtype=float)
    gpu = ok.groupby(keys)[gpu_col].mean() if gpu_col in ok and len(ok) else pd.Series(dtype=float)
    evaluated = ok_runs_only(evaluation_runs, runs)
    out = []
    for key, g in (evaluated.groupby(keys, sort=True) if len(evaluated) else []):
        out.append({**dict(zip(keys, key)), "n_params": int(g["n_params"].iloc[0]),
                    "peak_host_rss_mb": rss.get(key, float("nan")), "peak_gpu_mb": gpu.get(key, float("nan")),
                    "activation_bytes_per_step": float(g["activation_bytes_per_step"].mean()), "n": len(g)})
    raw = pd.DataFrame(out, columns=keys + ["n_params", "peak_host_rss_mb", "peak_gpu_mb", "activation_bytes_per_step",
                                            "n"])
    display = pd.DataFrame({
        "data set": raw["dataset"], "model": raw["model"], "hardware": raw["hardware"],
        "parameters": raw["n_params"].map(str), "peak RSS (MB)": raw["peak_host_rss_mb"].map(num),
        "peak GPU (MB)": raw["peak_gpu_mb"].map(num),
        "activations per step (KiB)": (raw["activation_bytes_per_step"] / 1024).map(num), "runs": raw["n"].map(str),
    })
    notes = ("activations per step: bytes autograd keeps for the backward of one training forward (saved-tensor "
             "hooks, parameters left out) / (batch x sequence length); peak GPU only where a GPU ran; ok runs only")
    return raw, display, _empty_says_why(raw, notes)


# ---- claims ----------------------------------------------------------------------------------

CLAIMS = {
    "noise_robust": "LTC and CfC degrade less under input noise than LSTM and GRU",
    "shift_robust": "Liquid models degrade less than LSTM and GRU on the shifted sine test",
    "horizon_cfc_gru": "CfC accumulates less error over the long horizon than GRU",
    "fewer_params": "CfC and LTC use fewer parameters than LSTM and GRU at the study's sizes",
}


def difference(a, b) -> dict:
    """mean(a) - mean(b), with the t interval of se = sqrt(s_a^2/n_a + s_b^2/n_b) on min(n_a, n_b) - 1
    degrees of freedom (conservative, as stats.ratio); null 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {"estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_a": len(a), "n_b": len(b),
           "null": 0.0}
    if len(a) and len(b):
        out["estimate"] = float(a.mean() - b.mean())
    if min(len(a), len(b)) >= 2:
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        half = t_quantile(0.975, min(len(a), len(b)) - 1) * se
        out.update(ci_low=out["estimate"] - half, ci_high=out["estimate"] + half)
    return out


def log_ratio(a, b) -> dict:
    """Ratio of geometric means of a and b with the log-scale t interval (stats.ratio); null 1."""
    def est(v):
        v = np.asarray(v, float)
        v = v[np.isfinite(v) & (v > 0)]
        logs = np.log(v)
        return {"n": len(v), "log_mean": float(logs.mean()) if len(v) else float("nan"),
                "log_se": float(logs.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")}

    ea, eb = est(a), est(b)
    r = ratio(ea, eb)
    return {"estimate": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n_a": ea["n"], "n_b": eb["n"],
            "null": 1.0}


# a comparison's outcome (verdicts.Comparison.outcome) as the verdict of its row in the table
ROW_VERDICT = {"supports": TRUE, "contradicts": FALSE, "not significant": NOT_SIGNIFICANT,
               "too few seeds": UNDECIDABLE}
OUTCOME = {v: k for k, v in ROW_VERDICT.items()}


def decide(c: dict, min_seeds: int) -> str:
    """The verdict of one comparison whose claim holds when the estimate lies below the null: the
    study's one rule (results/verdicts.py)."""
    comparison = Comparison(name="", quantity="", estimate=c["estimate"], low=c["ci_low"], high=c["ci_high"],
                            n=(c["n_a"], c["n_b"]), null=c["null"], direction="less")
    return ROW_VERDICT[comparison.outcome(min_seeds)]


def _groups(types: dict, frame: pd.DataFrame, kinds) -> list[str]:
    return [m for m in sorted(frame["model"].unique()) if types.get(m) in kinds]


def comparisons(evaluation: pd.DataFrame, evaluation_runs: pd.DataFrame, model_types: dict, min_seeds: int) -> list:
    types, _ = split_types(model_types)
    runs = per_run(evaluation) if len(evaluation) else evaluation
    out = []

    def add(claim, name, c):
        out.append({"claim_id": claim, "comparison": name, **c, "verdict": decide(c, min_seeds)})

    # noise and shift: pooled liquid runs against pooled baseline runs, at the largest level
    for claim, family in (("noise_robust", "noise"), ("shift_robust", "shift")):
        fam = runs[runs["family"] == family] if len(runs) else runs
        for (ds, hw), g in (fam.groupby(["dataset", "hardware"]) if len(fam) else []):
            top = g[g["level"] == g["level"].max()]
            liquid, base = _groups(types, top, LIQUID), _groups(types, top, BASELINE)
            if not liquid or not base:
                continue
            a = top[top["model"].isin(liquid)]["degradation"]
            b = top[top["model"].isin(base)]["degradation"]
            add(claim, f"{ds}/{hw} {family} {num(top['level'].iloc[0], 3)}: {'+'.join(liquid)} - {'+'.join(base)} "
                       "degradation", difference(a, b))
    # horizon: each CfC model against each GRU model, mean error over the horizon
    hz = runs[runs["family"] == "horizon"] if len(runs) else runs
    for (ds, hw), g in (hz.groupby(["dataset", "hardware"]) if len(hz) else []):
        for c in _groups(types, g, ("cfc",)):
            for r in _groups(types, g, ("gru",)):
                add("horizon_cfc_gru", f"{ds}/{hw} {c} / {r} closed-loop horizon MSE",
                    log_ratio(g[g["model"] == c]["metric"], g[g["model"] == r]["metric"]))
    # parameters: each liquid model against each baseline, per data set
    er = evaluation_runs
    for (ds, hw), g in (er.groupby(["dataset", "hardware"]) if len(er) else []):
        for liquid in _groups(types, g, LIQUID):
            for base in _groups(types, g, BASELINE):
                add("fewer_params", f"{ds}/{hw} {liquid} / {base} parameters",
                    log_ratio(g[g["model"] == liquid]["n_params"], g[g["model"] == base]["n_params"]))
    return out


def build_claims(evaluation: pd.DataFrame, evaluation_runs: pd.DataFrame, summary: pd.DataFrame, model_types: dict,
                 settings: dict) -> tuple:
    """The comparisons behind the evaluation claims (registry entry ``robustness_claims``); ``settings``
    is the command line's JSON (config results.claims), checked here once. In a study that tunes, on
    the tuned runs (claims.views: a fixed twin of a tuned model is left out), as every claim."""
    from .claims import views

    k = ClaimsSettings.from_dict(settings).min_seeds
    checked, _ = views(summary, model_types)
    keep = lambda df: df[df["model"].isin(checked)] if len(df) and "model" in df else df  # noqa: E731
    evaluation, evaluation_runs = keep(evaluation), keep(evaluation_runs)
    cols = ["claim_id", "comparison", "estimate", "ci_low", "ci_high", "n_a", "n_b", "null", "verdict"]
    raw = pd.DataFrame(comparisons(evaluation, evaluation_runs, model_types, k), columns=cols)
    display = pd.DataFrame({
        "claim": raw["claim_id"], "comparison": raw["comparison"],
        "estimate": [f"{num(e)} [{num(lo, 3)}, {num(hi, 3)}]" for e, lo, hi in
                     zip(raw["estimate"], raw["ci_low"], raw["ci_high"])],
        "n": [f"{a}, {b}" for a, b in zip(raw["n_a"], raw["n_b"])], "null": raw["null"].map(num),
        "verdict": raw["verdict"],
    })
    notes = (f"true/false only when the 95 % interval excludes the null (a ratio's 1, a difference's 0); "
             f"undecidable with fewer than {k} runs a side")
    return raw, display, _empty_says_why(raw, notes)


RULES = {
    "noise_robust": "per data set x hardware at the largest noise level: mean relative degradation of the LTC and "
                    "CfC runs minus that of the LSTM and GRU runs, 95 % t interval; true when it lies below 0",
    "shift_robust": "per sine data set x hardware at the largest shift level: as noise_robust",
    "horizon_cfc_gru": "per forecasting sine data set x hardware, each CfC against each GRU model: ratio of "
                       "geometric mean closed-loop horizon MSE (steps 1..H, each prediction fed back as the next "
                       "input), log-scale 95 % interval; true when it lies below 1",
    "fewer_params": "per data set x hardware, each LTC/CfC against each LSTM/GRU model: parameter ratio; true "
                    "when it lies below 1",
}


def claim_rows(table: pd.DataFrame) -> list[dict]:
    """One claims-table row per evaluation claim, from the ``robustness_claims`` comparisons."""
    rows = []
    for claim, text in CLAIMS.items():
        g = table[table["claim_id"] == claim]
        claim_verdict = verdict([OUTCOME[v] for v in g["verdict"]])
        evidence = "; ".join(f"{r['comparison']} {num(r['estimate'])} [{num(r['ci_low'], 3)}, {num(r['ci_high'], 3)}] "
                             f"n={r['n_a']},{r['n_b']}: {r['verdict']}" for r in g.to_dict("records"))
        rows.append({"claim_id": claim, "claim": text, "verdict": claim_verdict,
                     "decided": int(g["verdict"].isin(["true", "false"]).sum()), "comparisons": len(g),
                     "evidence": evidence or "no comparison possible in this study", "rule": RULES[claim]})
    return rows


# ---- figures ---------------------------------------------------------------------------------

def family_figure(family: str):
    def draw(evaluation: pd.DataFrame, stem) -> list[Path]:
        from .figures import figure, no_data, save

        runs = per_run(evaluation) if len(evaluation) else evaluation
        fam = runs[runs["family"] == family] if len(runs) else runs
        datasets = sorted(fam["dataset"].unique()) if len(fam) else []
        fig, axes = figure(len(datasets) or 1, 1)
        if not datasets:
            no_data(axes[0][0], f"no {family} evaluation in this study:\nnot configured, or no ok run to evaluate")
        for ax, ds in zip(axes[:, 0], datasets):
            g = fam[fam["dataset"] == ds]
            for (model, hw), m in g.groupby(["model", "hardware"]):
                stats = [(lv, describe(x["metric"], bounds=METRIC_BOUNDS.get(x["metric_name"].iloc[0])))
                         for lv, x in m.groupby("level")]
                lv = [s[0] for s in stats]
                ax.plot(lv, [s[1]["mean"] for s in stats], marker="o", label=f"{model} ({hw})")
                ax.fill_between(lv, [s[1]["ci_low"] for s in stats], [s[1]["ci_high"] for s in stats], alpha=0.2)
            ax.set_title(f"{ds}: {family}")
            ax.set_xlabel("level" if family != "horizon" else "horizon step")
            ax.set_ylabel(g["metric_name"].iloc[0])
            ax.legend()
        return save(fig, stem)

    return draw


def horizon_curves(evaluation: pd.DataFrame, stem) -> list[Path]:
    """Closed-loop squared error per horizon step, one line per model with its 95 % band."""
    from .figures import figure, no_data, save

    hz = evaluation[(evaluation["family"] == "horizon") & (evaluation["level"] > 0)] if len(evaluation) else evaluation
    datasets = sorted(hz["dataset"].unique()) if len(hz) else []
    fig, axes = figure(len(datasets) or 1, 1)
    if not datasets:
        no_data(axes[0][0], "no horizon evaluation in this study (forecasting sine data sets only):\n"
                            "not configured, or no ok run to evaluate")
    for ax, ds in zip(axes[:, 0], datasets):
        for (model, hw), m in hz[hz["dataset"] == ds].groupby(["model", "hardware"]):
            stats = [(s, describe(x["metric"], bounds=METRIC_BOUNDS["mse"])) for s, x in m.groupby("step")]
            steps = [s[0] for s in stats]
            ax.plot(steps, [s[1]["mean"] for s in stats], label=f"{model} ({hw})")
            ax.fill_between(steps, [s[1]["ci_low"] for s in stats], [s[1]["ci_high"] for s in stats], alpha=0.2)
        ax.set_title(f"{ds}: closed-loop squared error past the trained length")
        ax.set_xlabel("horizon step")
        ax.set_ylabel("mse")
        ax.legend()
    return save(fig, stem)


noise_figure = family_figure("noise")
drop_figure = family_figure("drop")
shift_figure = family_figure("shift")
