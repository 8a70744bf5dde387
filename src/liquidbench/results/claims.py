"""The thesis's statements checked on the data at hand, each with a verdict and its numbers.

A verdict is ``true``, ``false`` or ``undecidable``. A comparison is *decided* when both sides
have at least ``min_seeds`` ok runs. A claim is false as soon as one decided comparison
contradicts it, true when every comparison it covers is decided and agrees, and undecidable
otherwise (no comparison at all, or some without enough data) — the table says which.
"""

from __future__ import annotations

import math

import pandas as pd

from .compare import split_types
from .tables import num

# The settings of config results.claims (defaults in the config schema).
SETTINGS = ("min_seeds", "metric_tolerance_std", "speedup_min")

CLAIMS = {
    "cfc_faster": "CfC trains faster than LTC in every configuration",
    "cfc_accuracy": "CfC accuracy is comparable to or better than LTC's (within one std)",
    "order_both_impls": "The CfC vs LTC ordering of training time holds under both implementations",
    "ddp_faster": "DDP reduces training time",
    "best_at_2": "The best gain is at 2 GPUs",
}


def _verdict(results: list[bool | None]) -> str:
    if any(r is False for r in results):
        return "false"
    if results and all(r is True for r in results):
        return "true"
    return "undecidable"


def _row(key: str, results: list[bool | None], evidence: list[str], rule: str) -> dict:
    decided = sum(r is not None for r in results)
    return {"claim_id": key, "claim": CLAIMS[key], "verdict": _verdict(results),
            "decided": decided, "comparisons": len(results),
            "evidence": "; ".join(evidence) if evidence else "no comparison possible in this study",
            "rule": rule}


def _pairs(summary: pd.DataFrame, model_types: dict, impl: str | None = None):
    """(name, CfC row, LTC row) per data set x hardware for every CfC x LTC pair of one
    implementation (``impl``; None: each implementation's pairs)."""
    types, impls = split_types(model_types)
    index = {(r["dataset"], r["model"], r["hardware"]): r for r in summary.to_dict("records")}
    cfcs = [m for m, t in types.items() if t == "cfc"]
    ltcs = [m for m, t in types.items() if t == "ltc"]
    for dataset in sorted(summary["dataset"].unique()):
        for hardware in sorted(summary["hardware"].unique()):
            for c in cfcs:
                for l in ltcs:
                    if impls[c] != impls[l] or impl not in (None, impls[c]):
                        continue
                    a, b = index.get((dataset, c, hardware)), index.get((dataset, l, hardware))
                    if a is not None and b is not None:
                        yield f"{dataset}/{hardware} {c} vs {l}", a, b


def _n(row, measure):
    v = row.get(f"{measure}_n", 0)
    return 0 if pd.isna(v) else int(v)


def check_claims(summary: pd.DataFrame, scaling: pd.DataFrame, model_types: dict[str, str],
                 settings: dict) -> pd.DataFrame:
    missing = [key for key in SETTINGS if key not in settings]
    if missing:
        raise ValueError(f"claims settings: missing {missing}, expected {list(SETTINGS)}")
    s = settings
    k = s["min_seeds"]
    rows = []

    def cfc_vs_ltc(measure, judge):
        """Each CfC x LTC pair with at least k ok seeds on both sides: judge(a, b) -> (ok, evidence)."""
        res, ev = [], []
        for name, a, b in _pairs(summary, model_types):
            if min(_n(a, measure), _n(b, measure)) < k:
                res.append(None)
                ev.append(f"{name}: too few ok seeds ({_n(a, measure)}, {_n(b, measure)} < {k})")
                continue
            ok, text = judge(a, b)
            res.append(bool(ok))
            ev.append(f"{name}: {text}")
        return res, ev

    # 1. CfC faster than LTC: geometric mean training time lower in every dataset x hardware (the
    # centre of the time intervals in the tables, and the ratio of the ratios table).
    def faster(a, b):
        ta, tb = a["train_time_s_gmean"], b["train_time_s_gmean"]
        return ta < tb, f"{num(ta)} s vs {num(tb)} s (ratio {num(ta / tb, 3)})"

    res, ev = cfc_vs_ltc("train_time_s", faster)
    rows.append(_row("cfc_faster", res, ev, f"geometric mean train_time_s of CfC < LTC on every data set x "
                                           f"hardware (>= {k} ok seeds each)"))

    # 2. CfC metric comparable or better: not worse than LTC by more than tol x pooled std.
    tol = s["metric_tolerance_std"]

    def comparable(a, b):
        ma, mb = a["test_metric_mean"], b["test_metric_mean"]
        pooled = math.sqrt((a["test_metric_std"] ** 2 + b["test_metric_std"] ** 2) / 2)
        worse_by = (mb - ma) if a.get("metric_name") == "accuracy" else (ma - mb)
        return worse_by <= tol * pooled, (f"{a.get('metric_name')} {num(ma)} vs {num(mb)}, "
                                          f"CfC worse by {num(worse_by, 3)}, allowed {num(tol * pooled, 3)}")

    res, ev = cfc_vs_ltc("test_metric", comparable)
    rows.append(_row("cfc_accuracy", res, ev, f"CfC test metric worse than LTC's by at most {tol:g} x pooled std "
                                             f"sqrt((s_cfc^2 + s_ltc^2)/2) (>= {k} ok seeds each)"))

    # 2b. The CfC-vs-LTC ordering of training time is the same under ncps and the fast implementation.
    res, ev = [], []
    fast_pairs = {name.split(" ")[0]: (name, a, b) for name, a, b in _pairs(summary, model_types, "fast")}
    for name, a, b in _pairs(summary, model_types, "ncps"):
        where = name.split(" ")[0]
        if where not in fast_pairs:
            continue
        fname, fa, fb = fast_pairs[where]
        seeds = [_n(r, "train_time_s") for r in (a, b, fa, fb)]
        if min(seeds) < k:
            res.append(None)
            ev.append(f"{name} / {fname.split(' ', 1)[1]}: too few ok seeds ({', '.join(map(str, seeds))} < {k})")
            continue
        ncps_faster = a["train_time_s_mean"] < b["train_time_s_mean"]
        fast_faster = fa["train_time_s_mean"] < fb["train_time_s_mean"]
        res.append(ncps_faster == fast_faster)
        ev.append(f"{name}: CfC/LTC time ratio {num(a['train_time_s_mean'] / b['train_time_s_mean'], 3)} (ncps), "
                  f"{num(fa['train_time_s_mean'] / fb['train_time_s_mean'], 3)} (fast)")
    rows.append(_row("order_both_impls", res, ev, "on every data set x hardware with both implementations, "
                                                 "mean train_time_s of CfC < LTC under ncps exactly when it is "
                                                 f"under the fast implementation (>= {k} ok seeds each)"))

    # 3. DDP reduces training time: speedup > speedup_min for every width n > 1.
    res, ev = [], []
    smin = s["speedup_min"]
    multi = scaling[scaling["n"] > 1] if len(scaling) else scaling
    for r in multi.to_dict("records"):
        name = f"{r['dataset']}/{r['model']} {r['hardware']} (n={int(r['n'])}) vs {r['baseline']}"
        if min(r["t1_seeds"], r["tn_seeds"]) < k or pd.isna(r["speedup"]):
            res.append(None)
            ev.append(f"{name}: too few ok seeds ({int(r['t1_seeds'])}, {int(r['tn_seeds'])} < {k})")
            continue
        res.append(bool(r["speedup"] > smin))
        ev.append(f"{name}: speedup {num(r['speedup'], 3)}")
    rows.append(_row("ddp_faster", res, ev, f"speedup T(1)/T(n) (geometric means) > {smin:g} for every DDP width n > 1 "
                                           f"(>= {k} ok seeds each)"))

    # 4. Best gain at 2 GPUs: the marginal speedup per added GPU is largest for the step to n = 2.
    res, ev = [], []
    gpu = scaling[scaling["device"] == "cuda"] if len(scaling) else scaling
    for (dataset, model, mode), g in (gpu.groupby(["dataset", "model", "scaling"]) if len(gpu) else []):
        g = g.sort_values("n")
        name = f"{dataset}/{model} cuda/{mode}"
        widths = list(g["n"].astype(int))
        if 2 not in widths or len([n for n in widths if n > 2]) == 0 or 1 not in widths:
            res.append(None)
            ev.append(f"{name}: widths {widths}: needs 1, 2 and a larger width")
            continue
        if (g["tn_seeds"] < k).any() or g["speedup"].isna().any():
            res.append(None)
            ev.append(f"{name}: too few ok seeds at some width")
            continue
        sp = list(g["speedup"])
        gains = {widths[i]: (sp[i] - sp[i - 1]) / (widths[i] - widths[i - 1]) for i in range(1, len(widths))}
        best = max(gains, key=gains.get)
        res.append(best == 2)
        ev.append(f"{name}: gain per added GPU " + ", ".join(f"n={n}: {num(v, 3)}" for n, v in gains.items()))
    rows.append(_row("best_at_2", res, ev, "(S(n_k) - S(n_k-1)) / (n_k - n_k-1) over consecutive GPU widths is "
                                          "largest at n = 2 in every CUDA scaling group"))
    return pd.DataFrame(rows)


def display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "claim": table["claim"], "verdict": table["verdict"],
        "decided": [f"{d} of {c}" for d, c in zip(table["decided"], table["comparisons"])],
        "evidence": table["evidence"], "rule": table["rule"],
    })


NOTES = ("verdict: false if any decided comparison contradicts the claim, true if every comparison is "
         "decided and agrees, undecidable otherwise. decided: comparisons with enough ok seeds.")


def build(summary: pd.DataFrame, scaling: pd.DataFrame, model_types: dict[str, str], settings: dict,
          published: pd.DataFrame | None = None, robustness_claims: pd.DataFrame | None = None) -> tuple:
    """The claims table (registry entry ``claims``): raw, display and notes. With the published
    table (results.published), one claim per compared data set joins it."""
    table = check_claims(summary, scaling, model_types, settings)
    if published is not None:
        from .published import claim_rows

        table = pd.concat([table, pd.DataFrame(claim_rows(published))], ignore_index=True)
    if robustness_claims is not None:  # the evaluation stage's claims (results/robustness.py)
        from .robustness import claim_rows as evaluation_rows

        table = pd.concat([table, pd.DataFrame(evaluation_rows(robustness_claims))], ignore_index=True)
    return table, display(table), NOTES
