"""The study's claims checked on the data at hand, each with a verdict and its numbers.

One rule decides every claim (docs/statistics.md, "Claims"). A claim is a set of *comparisons*; each
comparison is (estimate, interval low, interval high, n per side, null value, direction): the
estimate of a quantity with its 95 % interval, the value the claim has to beat (the null) and the
side it has to beat it on (``less`` or ``greater``). A comparison

- *supports* the claim when its whole interval lies on the claimed side of the null,
- *contradicts* it when its whole interval lies on the other side,
- is *not significant* when the interval contains the null,
- is *undecidable* when a side has fewer than ``min_seeds`` ok runs (or there is no interval).

A claim is ``false`` as soon as one comparison contradicts it, ``true`` when every comparison
supports it, ``undecidable`` when some comparison lacks the seeds (or none exists), and otherwise
``not significant at 95 %``: the evidence then gives the intervals that contain their null.

One estimator per quantity: times are compared as ratios of geometric means with the log-scale t
interval (stats.ratio, the same numbers as the ratios table), speedups as in the scaling table,
metrics as differences of means with a Welch-type t interval (stats.difference: min(n1, n2) - 1
degrees of freedom, as the ratios). "As accurate as" is a non-inferiority comparison: the null is the margin
``metric_tolerance_std`` x pooled std, and the interval of "how much worse" must lie below it.

Claims are entries of ``CLAIMS``, built by keyword: a new claim is one entry, whose ``compare``
function yields its comparisons from the study's tables (``Study``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pandas as pd

from .compare import split_types
from .stats import CONFIDENCE, difference, estimate_of, mean_of, ratio, t_quantile
from .summary import LOWER_IS_BETTER, NO_OK_RUNS, fates, no_ok_note, status_text
from .tables import num
# the verdict words are re-exported: a claims table's readers find them with its claims
from .verdicts import FALSE, NOT_SIGNIFICANT, TRUE, UNDECIDABLE, VERDICTS  # noqa: F401
from .verdicts import ClaimsSettings, Comparison, verdict


@dataclass(frozen=True, kw_only=True)
class Study:
    """What a claim's comparisons are drawn from."""

    summary: pd.DataFrame
    scaling: pd.DataFrame
    types: dict[str, str]  # model -> ltc, cfc, lstm, gru
    impls: dict[str, str]  # model -> ncps, fast
    settings: ClaimsSettings
    index: dict = field(default_factory=dict)  # (dataset, model, hardware) -> summary row

    @classmethod
    def of(cls, summary, scaling, model_types, settings: ClaimsSettings):
        types, impls = split_types(model_types)
        index = {(r["dataset"], r["model"], r["hardware"]): r for r in summary.to_dict("records")}
        return cls(summary=summary, scaling=scaling, types=types, impls=impls, settings=settings, index=index)

    def pairs(self, type_a: str, type_b: str, impl: str | None = None) -> Iterator[tuple[str, dict, dict]]:
        """(name, row a, row b) per data set x hardware for every model of type_a against every model
        of type_b; two liquid models only within one implementation (``impl``: only that one)."""
        liquid = {"ltc", "cfc"}
        models_a = [m for m, t in self.types.items() if t == type_a]
        models_b = [m for m, t in self.types.items() if t == type_b]
        for dataset in sorted(self.summary["dataset"].unique()):
            for hardware in sorted(self.summary["hardware"].unique()):
                for a in models_a:
                    for b in models_b:
                        if {type_a, type_b} <= liquid and self.impls[a] != self.impls[b]:
                            continue
                        if impl is not None and self.impls[a] != impl:
                            continue
                        ra, rb = self.index.get((dataset, a, hardware)), self.index.get((dataset, b, hardware))
                        if ra is not None and rb is not None:
                            yield f"{dataset}/{hardware} {a} vs {b}", ra, rb


def time_ratio(name: str, a: dict, b: dict, direction: str = "less") -> Comparison:
    """Training time of a over b: ratio of geometric means, log-scale t interval (as the ratios table)."""
    ea, eb = estimate_of(a, "train_time_s"), estimate_of(b, "train_time_s")
    r = ratio(ea, eb)
    return Comparison(name, f"time ratio {a['model']}/{b['model']}", r["value"], r["ci_low"], r["ci_high"],
                      (ea["n"], eb["n"]), 1.0, direction,
                      f"{num(a.get('train_time_s_gmean'))} s vs {num(b.get('train_time_s_gmean'))} s, geometric means")


def metric_worse_by(name: str, a: dict, b: dict, tolerance: float) -> Comparison:
    """How much worse a's test metric is than b's (positive: worse, by the metric's direction), a t
    interval on the difference of means; the claim "as good or better" needs it below the margin
    tolerance x pooled std."""
    metric = a.get("metric_name") or b.get("metric_name")
    lower = LOWER_IS_BETTER.get(metric, True)
    ea, eb = mean_of(a, "test_metric"), mean_of(b, "test_metric")
    (ma, sa, na), (mb, sb, nb) = ((e["mean"], e["std"], e["n"]) for e in (ea, eb))
    d = difference(ea, eb) if lower else difference(eb, ea)
    worse, low, high = d["value"], d["ci_low"], d["ci_high"]
    margin = tolerance * math.sqrt((sa ** 2 + sb ** 2) / 2) if min(na, nb) >= 2 else math.nan
    word = "better" if worse < 0 else "worse"
    detail = (f"test {metric} {num(ma)} vs {num(mb)}, {'lower' if lower else 'higher'} is better: "
              f"{a['model']} {word} by {num(abs(worse), 3)}; margin {num(tolerance)} x pooled std")
    return Comparison(name, f"{a['model']} worse than {b['model']} by", worse, low, high, (na, nb),
                      margin if math.isfinite(margin) else 0.0, "less", detail)


def _faster(type_a: str, type_b: str):
    def compare(study: Study) -> list[Comparison]:
        return [time_ratio(name, a, b) for name, a, b in study.pairs(type_a, type_b)]
    return compare


def _as_good(type_a: str, type_b: str):
    def compare(study: Study) -> list[Comparison]:
        tol = study.settings.metric_tolerance_std
        return [metric_worse_by(name, a, b, tol) for name, a, b in study.pairs(type_a, type_b)]
    return compare


def _order_both_impls(study: Study) -> list[Comparison]:
    """Where both implementations have a CfC x LTC pair: the fast pair's time ratio must fall on the
    side of 1 the ncps pair's falls on (undecided, as not significant, where the ncps pair's
    interval contains 1)."""
    fast = {name.split(" ")[0]: (name, a, b) for name, a, b in study.pairs("cfc", "ltc", "fast")}
    out = []
    k = study.settings.min_seeds
    for name, a, b in study.pairs("cfc", "ltc", "ncps"):
        where = name.split(" ")[0]
        if where not in fast:
            continue
        reference = time_ratio(name, a, b)
        fname, fa, fb = fast[where]
        ref_outcome = reference.outcome(k)
        direction = "less" if reference.high < 1 else "greater"
        c = time_ratio(f"{where} {fa['model']} vs {fb['model']}", fa, fb, direction)
        n = c.n + reference.n
        detail = (f"ncps ratio {num(reference.estimate, 3)} [{num(reference.low, 3)}, {num(reference.high, 3)}] "
                  f"(ncps): {ref_outcome} for < 1")
        # no ordering to keep where the ncps pair's is not significant: the comparison cannot decide
        out.append(Comparison(c.name, c.quantity, c.estimate, c.low, c.high, n, 1.0, direction, detail,
                              moot=ref_outcome == "not significant"))
    return out


def _ddp_faster(study: Study) -> list[Comparison]:
    s = study.scaling
    multi = s[s["n"] > 1] if len(s) else s
    out = []
    for r in multi.to_dict("records"):
        name = f"{r['dataset']}/{r['model']} {r['hardware']} (n={int(r['n'])}) vs {r['baseline']}"
        out.append(Comparison(name, "speedup T(1)/T(n)", r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"],
                              (int(r["t1_seeds"]), int(r["tn_seeds"])), study.settings.speedup_min, "greater",
                              f"T(1) {num(r['t1_gmean'])} s, T(n) {num(r['tn_gmean'])} s, geometric means"))
    return out


def _speedup_se(r: dict) -> float:
    """Standard error of a speedup from its log-scale interval (delta method: se(S) = S se(ln S))."""
    df = min(int(r["t1_seeds"]), int(r["tn_seeds"])) - 1
    if df < 1 or not (r["speedup_ci_low"] > 0):
        return math.nan if r["n"] != 1 else 0.0
    se_log = math.log(r["speedup_ci_high"] / r["speedup_ci_low"]) / (2 * t_quantile(0.5 + CONFIDENCE / 2, df))
    return r["speedup"] * se_log


def _best_at_2(study: Study) -> list[Comparison]:
    """Per CUDA scaling group with widths 1, 2 and more: the gain per added GPU of the step to 2,
    S(2) - S(1), against each later step's (S(n_k) - S(n_k-1)) / (n_k - n_k-1); the difference must
    be > 0. Its interval: the speedups' standard errors (delta method) added in quadrature."""
    s = study.scaling
    gpu = s[s["device"] == "cuda"] if len(s) else s
    out = []
    for (dataset, model, mode), g in (gpu.groupby(["dataset", "model", "scaling"]) if len(gpu) else []):
        rows = {int(r["n"]): r for r in g.to_dict("records")}
        widths = sorted(rows)
        if not {1, 2} <= set(widths) or not [n for n in widths if n > 2]:
            out.append(Comparison(f"{dataset}/{model} cuda/{mode}", f"widths {widths}: needs 1, 2 and more",
                                  math.nan, math.nan, math.nan, (0,), 0.0, "greater"))
            continue
        gain2 = rows[2]["speedup"] - rows[1]["speedup"]
        se2 = math.hypot(_speedup_se(rows[2]), _speedup_se(rows[1]))
        seeds = tuple(int(rows[n]["tn_seeds"]) for n in widths)
        df = min(seeds) - 1
        t = t_quantile(0.5 + CONFIDENCE / 2, df) if df >= 1 else math.nan
        for prev, n in zip(widths[1:], widths[2:]):
            gain = (rows[n]["speedup"] - rows[prev]["speedup"]) / (n - prev)
            se = math.hypot(se2, math.hypot(_speedup_se(rows[n]), _speedup_se(rows[prev])) / (n - prev))
            diff = gain2 - gain
            out.append(Comparison(f"{dataset}/{model} cuda/{mode} n=2 vs n={prev}->{n}", "gain per GPU difference",
                                  diff, diff - t * se, diff + t * se, seeds, 0.0, "greater",
                                  f"gain per added GPU {num(gain2, 3)} (to 2) vs {num(gain, 3)}"))
    return out


@dataclass(frozen=True, kw_only=True)
class Claim:
    text: str
    compare: Callable[[Study], list[Comparison]]
    rule: str  # how each comparison's quantity is formed; the verdict rule is the module's
    about: tuple[str, ...] = ()  # the model types it compares (empty: every model), for its settings


TIME = "time ratio = geometric mean train_time_s of the first model / the second's (ratios table)"
METRIC = ("worse-by = difference of mean test metrics oriented by the data set's metric (mse: lower is better, "
          "accuracy: higher), t interval; non-inferior when it is below metric_tolerance_std x pooled std")

CLAIMS = {
    "cfc_faster": Claim(text="CfC trains faster than LTC", compare=_faster("cfc", "ltc"),
                        rule=f"{TIME} < 1 on every data set x hardware", about=("cfc", "ltc")),
    "cfc_metric": Claim(text="CfC's test metric (MSE or accuracy, per data set) is as good as LTC's or better",
                        compare=_as_good("cfc", "ltc"), rule=METRIC, about=("cfc", "ltc")),
    "order_both_impls": Claim(text="The CfC vs LTC ordering of training time holds under both implementations",
                              compare=_order_both_impls,
                              rule="the fast pair's time ratio on the side of 1 the ncps pair's is on",
                              about=("cfc", "ltc")),
    "cfc_faster_than_lstm": Claim(text="CfC trains faster than LSTM", compare=_faster("cfc", "lstm"),
                                  rule=f"{TIME} < 1", about=("cfc", "lstm")),
    "ltc_faster_than_lstm": Claim(text="LTC trains faster than LSTM", compare=_faster("ltc", "lstm"),
                                  rule=f"{TIME} < 1", about=("ltc", "lstm")),
    "cfc_metric_vs_lstm": Claim(text="CfC's test metric is as good as LSTM's or better",
                                compare=_as_good("cfc", "lstm"), rule=METRIC, about=("cfc", "lstm")),
    "ltc_metric_vs_lstm": Claim(text="LTC's test metric is as good as LSTM's or better",
                                compare=_as_good("ltc", "lstm"), rule=METRIC, about=("ltc", "lstm")),
    "ddp_faster": Claim(text="DDP reduces training time", compare=_ddp_faster,
                        rule="speedup T(1)/T(n) of geometric means (scaling table) > speedup_min for every width n > 1"),
    "best_at_2": Claim(text="The best gain is at 2 GPUs", compare=_best_at_2,
                       rule="gain per added GPU of the step to n = 2 minus that of each later step > 0, per CUDA "
                            "scaling group (speedups' standard errors in quadrature)"),
}


RULE = ("A comparison supports a claim when its whole 95 % interval lies on the claimed side of the null "
        "(1 for a ratio, 0 or the margin for a difference, speedup_min for a speedup), contradicts it when it "
        "lies wholly on the other side, and is not significant when it contains the null. Verdict: false if "
        "any comparison contradicts; true if all support; undecidable if any side has fewer than min_seeds "
        "ok seeds (or nothing compares); otherwise not significant at 95 %.")


def check_claims(summary: pd.DataFrame, scaling: pd.DataFrame, model_types: dict[str, str],
                 settings: ClaimsSettings) -> pd.DataFrame:
    study = Study.of(summary, scaling, model_types, settings)
    k = settings.min_seeds
    rows = []
    for key, claim in CLAIMS.items():
        comparisons = claim.compare(study)
        outcomes = [c.outcome(k) for c in comparisons]
        rows.append({
            "claim_id": key, "claim": claim.text, "verdict": verdict(outcomes),
            "supports": outcomes.count("supports"), "contradicts": outcomes.count("contradicts"),
            "not_significant": outcomes.count("not significant"),
            "decided": sum(o != "too few seeds" for o in outcomes), "comparisons": len(comparisons),
            "evidence": "; ".join(c.evidence(k) for c in comparisons) or "no comparison possible in this study",
            "rule": f"{claim.rule} (>= {k} ok seeds each side)",
        })
    return pd.DataFrame(rows)


def display(table: pd.DataFrame) -> pd.DataFrame:
    def counts(r):
        if pd.isna(r.get("supports")):  # rows of other tables (published) count decided comparisons only
            return f"{r['decided']} of {r['comparisons']} decided"
        return (f"{int(r['supports'])} for, {int(r['contradicts'])} against, {int(r['not_significant'])} "
                f"not significant, of {r['comparisons']}")
    return pd.DataFrame({
        "claim": table["claim"], "verdict": table["verdict"],
        "comparisons": [counts(r) for r in table.to_dict("records")],
        "evidence": table["evidence"], "rule": table["rule"],
        # the settings and budget the claim's models held (tuned or fixed; blank for other tables' claims)
        "settings": table["settings"].fillna("") if "settings" in table else "",
    })


NOTES = RULE


def without_ok_runs(table: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Where no run of the study ended ok, every claim (the evaluation's and the published table's
    too) is undecidable, and its evidence says so in one line instead of listing comparisons of
    zero seeds: no data can decide a claim, and the reader learns why at once."""
    if not no_ok_note(summary) or not len(table):
        return table
    reason = f"{NO_OK_RUNS} ({status_text(fates(summary))}): nothing to compare; see the summary table's notes"
    return table.assign(verdict=UNDECIDABLE, evidence=reason)


# ------------------------------------------------------------------------------ tuned and fixed settings


def _settings_of(summary: pd.DataFrame) -> dict[str, str]:
    """model -> how its runs got their settings (summary ``settings``: tuned, fixed, ...)."""
    if "settings" not in summary:
        return {}
    return {m: str(s) for m, s in zip(summary["model"], summary["settings"].fillna("fixed"))}


def views(summary: pd.DataFrame, model_types: dict) -> tuple[set, set]:
    """(the models the claims are checked on, the fixed twins of tuned models). In a study that tunes,
    every claim is reached on tuned runs: a model at fixed settings enters only where no tuned model
    has its type and implementation (ncps's LTC beside a tuned fast LTC); the fixed twins, models
    at fixed settings of a type and implementation that is also tuned, give the claims "without
    tuning"."""
    types, impls = split_types(model_types)
    how = _settings_of(summary)
    tuned_kinds = {(types.get(m), impls.get(m)) for m, s in how.items() if s.startswith("tuned")}
    checked = {m for m, s in how.items() if s.startswith("tuned") or (types.get(m), impls.get(m)) not in tuned_kinds}
    twins = {m for m, s in how.items() if s == "fixed" and (types.get(m), impls.get(m)) in tuned_kinds}
    return checked, twins


def _restricted(summary: pd.DataFrame, scaling: pd.DataFrame, models: set) -> tuple[pd.DataFrame, pd.DataFrame]:
    keep = lambda df: df[df["model"].isin(models)] if "model" in df else df  # noqa: E731
    return keep(summary), keep(scaling)


def budget_text(summary: pd.DataFrame, model_types: dict, about: tuple[str, ...], models: set) -> str:
    """Which of a claim's models held which settings and budget: 'tuned: cfc (8 trials of 5 epochs;
    runs of 30 epochs); fixed: ltc (30 epochs)'."""
    types, _ = split_types(model_types)
    rows = summary[summary["model"].isin(models)]
    parts = {}
    for r in rows.to_dict("records"):
        if about and types.get(r["model"]) not in about:
            continue
        how = r.get("settings") or "fixed"
        epochs = r.get("epochs")
        runs = f"runs of {int(epochs)} epochs" if epochs is not None and not pd.isna(epochs) else "runs"
        if how == "tuned" and not pd.isna(r.get("tuning_trials")) and r.get("tuning_trials") is not None:
            detail = f"{int(r['tuning_trials'])} trials of {int(r['tuning_epochs'])} epochs; {runs}"
        else:
            detail = runs
        parts.setdefault(how, {}).setdefault(r["model"], detail)
    return "; ".join(f"{how}: " + ", ".join(f"{m} ({d})" for m, d in sorted(ms.items()))
                     for how, ms in sorted(parts.items()))


def same_with_and_without_tuning(tuned: pd.DataFrame, fixed: pd.DataFrame) -> list[dict]:
    """Per claim decided on both the tuned runs and the fixed twins: whether tuning changed its verdict
    (true: the same verdict; false: another; undecidable where either is)."""
    rows = []
    for a, b in zip(tuned.to_dict("records"), fixed.to_dict("records")):
        if not a["comparisons"] or not b["comparisons"]:
            continue
        if UNDECIDABLE in (a["verdict"], b["verdict"]):
            word = UNDECIDABLE
        else:
            word = TRUE if a["verdict"] == b["verdict"] else FALSE
        rows.append({"claim_id": f"{a['claim_id']}_same_with_tuning",
                     "claim": f"{a['claim']}: the verdict is the same with and without tuning", "verdict": word,
                     "supports": None, "contradicts": None, "not_significant": None,
                     "decided": int(word != UNDECIDABLE), "comparisons": 1,
                     "evidence": f"tuned: {a['verdict']} ({a['evidence']}); fixed: {b['verdict']} ({b['evidence']})",
                     "rule": "the claim's verdict on the tuned runs and on the fixed twins of the tuned models",
                     "settings": f"{a['settings']} | {b['settings']}"})
    return rows


def check_study_claims(summary: pd.DataFrame, scaling: pd.DataFrame, model_types: dict,
                       settings: ClaimsSettings) -> pd.DataFrame:
    """Every claim with the settings and budget its models held: on the tuned runs where the study
    tunes (views), and then whether each verdict is the same on the fixed twins."""
    checked, twins = views(summary, model_types)
    table = check_claims(*_restricted(summary, scaling, checked), model_types, settings)
    table["settings"] = [budget_text(summary, model_types, CLAIMS[k].about, checked) for k in table["claim_id"]]
    if not twins:
        return table
    plain = {m for m, s in _settings_of(summary).items() if s == "fixed"}
    fixed = check_claims(*_restricted(summary, scaling, plain), model_types, settings)
    fixed["settings"] = [budget_text(summary, model_types, CLAIMS[k].about, plain) for k in fixed["claim_id"]]
    return pd.concat([table, pd.DataFrame(same_with_and_without_tuning(table, fixed))], ignore_index=True)


def knee_text(scaling_model: pd.DataFrame) -> str:
    """What bounds each scaling group at its predicted knee (the scaling_model table), for the
    evidence of "The best gain is at 2 GPUs"; '' where nothing was predicted."""
    if scaling_model is None or not len(scaling_model) or "fit_ok" not in scaling_model:
        return ""
    ok = scaling_model[scaling_model["fit_ok"].astype(str).isin(["True", "true", "1"])]
    keys = ["dataset", "model", "device", "scaling"] + (["link"] if "link" in ok else [])
    groups = ok.drop_duplicates(keys)
    parts = [f"{r['dataset']}/{r['model']} {r['device']} {r['scaling']}"
             + (f" {r['link']}" if "link" in r else "") + f": knee n = {int(r['knee_width'])}, "
             f"bound by {r['knee_dominant']}" for r in groups.to_dict("records") if pd.notna(r["knee_width"])]
    return ("scaling model (predicted knee, and the term that costs most there): " + "; ".join(parts)) if parts else ""


def build(summary: pd.DataFrame, scaling: pd.DataFrame, model_types: dict[str, str], settings: dict,
          published: pd.DataFrame | None = None, robustness_claims: pd.DataFrame | None = None,
          scaling_model: pd.DataFrame | None = None) -> tuple:
    """The claims table (registry entry ``claims``): raw, display and notes. With the published
    table (results.published), one claim per compared data set joins it; with the scaling_model
    table, the evidence of "The best gain is at 2 GPUs" names what bounds each group at its
    predicted knee. ``settings`` is the command line's JSON (config results.claims), checked here once."""
    table = check_study_claims(summary, scaling, model_types, ClaimsSettings.from_dict(settings))
    if published is not None:
        from .published import claim_rows

        table = pd.concat([table, pd.DataFrame(claim_rows(published))], ignore_index=True)
    if robustness_claims is not None:  # the evaluation stage's claims (results/robustness.py)
        from .robustness import claim_rows as evaluation_rows

        checked, _ = views(summary, model_types)
        rows = pd.DataFrame(evaluation_rows(robustness_claims))
        rows["settings"] = budget_text(summary, model_types, (), checked)
        table = pd.concat([table, rows], ignore_index=True)
    knees = knee_text(scaling_model)
    if knees:
        at2 = table["claim_id"] == "best_at_2"
        table.loc[at2, "evidence"] = [f"{e} | {knees}" if e else knees for e in table.loc[at2, "evidence"]]
    table = without_ok_runs(table, summary)
    return table, display(table), " ".join(filter(None, (no_ok_note(summary), NOTES)))
