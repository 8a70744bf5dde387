"""The study's answers first: per data set and hardware, the fastest and the most accurate model
(each with its interval and its margin over the next), the Pareto set of training time and test
metric, every model's training time relative to the LSTM baseline, and the claims' verdicts.

The same estimators as the other tables: times are geometric means with log-scale t intervals and
compared as ratios of geometric means (stats.ratio, the ratios table's numbers); metrics are means
with t intervals cut to their range, compared as differences with the claims' t interval.
"""

from __future__ import annotations

import pandas as pd

from .stats import difference, estimate_of, mean_of, ratio
from .summary import LOWER_IS_BETTER, fates, no_ok_note, status_text
from .tables import compact, num

TIME = "train_time_s"


def ranked(group: pd.DataFrame) -> list[dict]:
    """The summary rows a data set x hardware may name: those with ok seeds and a training time.
    Only ok runs carry statistics (summary.py); the n_ok check keeps a row without ok runs out even
    where a summary from elsewhere carries numbers for it, so that a diverged model is never named."""
    rows = group.to_dict("records")
    return [r for r in rows if pd.notna(r.get(f"{TIME}_gmean")) and not (pd.notna(r.get("n_ok")) and r["n_ok"] < 1)]


def left_out(group: pd.DataFrame) -> str:
    """'model: 2 diverged; other: 1 ok, 1 failed': the models of a data set x hardware with runs that did
    not end ok, so that the reader sees who was not (or not fully) ranked, and why."""
    if "n_ok" not in group or "n_runs" not in group:
        return ""
    return "; ".join(f"{r['model']}: {r['runs']}" for r in group.to_dict("records")
                     if pd.notna(r["n_runs"]) and r["n_ok"] < r["n_runs"])


def no_model(group: pd.DataFrame) -> str:
    """What a data set x hardware without an ok run says in place of a model's name."""
    counts = fates(group)
    if counts["diverged"] and counts["diverged"] == sum(counts.values()):
        return "no model: every run diverged"
    return f"no model: no run ended ok ({status_text(counts)})"


def pareto_set(rows: list[dict], lower_is_better: bool) -> list[str]:
    """Models that no other beats in both training time (lower) and test metric (by its direction)."""
    pts = [(r["model"], r[f"{TIME}_gmean"], r["test_metric_mean"] * (1 if lower_is_better else -1)) for r in rows
           if pd.notna(r[f"{TIME}_gmean"]) and pd.notna(r["test_metric_mean"])]
    return [m for m, t, v in pts
            if not any((t2 <= t and v2 <= v) and (t2 < t or v2 < v) for _, t2, v2 in pts)]


def _difference(a: dict, b: dict, lower: bool) -> dict:
    """How much worse b's mean test metric is than a's (>= 0 when a is the best), with the t
    interval of a difference of means (min(n1, n2) - 1 degrees of freedom, as the claims)."""
    ea, eb = mean_of(a, "test_metric"), mean_of(b, "test_metric")
    d = difference(eb, ea) if lower else difference(ea, eb)
    return {k: d[k] for k in ("value", "ci_low", "ci_high")}


def headline(summary: pd.DataFrame, model_types: dict) -> pd.DataFrame:
    from .compare import split_types

    types, _ = split_types(model_types)
    lstms = [m for m, t in types.items() if t == "lstm"]
    rows = []
    for (dataset, hardware), g in summary.groupby(["dataset", "hardware"], sort=True):
        recs = ranked(g)
        metric = next((r["metric_name"] for r in g.to_dict("records") if isinstance(r["metric_name"], str)), None)
        lower = LOWER_IS_BETTER.get(metric, True)
        row = {"dataset": dataset, "hardware": hardware, "metric_name": metric, "models": len(recs),
               "no_model": "" if recs else no_model(g), "left_out": left_out(g)}
        by_time = sorted(recs, key=lambda r: r[f"{TIME}_gmean"])
        if by_time:
            f = by_time[0]
            row.update(fastest=f["model"], fastest_time_gmean=f[f"{TIME}_gmean"], fastest_time_ci_low=f[f"{TIME}_ci_low"],
                       fastest_time_ci_high=f[f"{TIME}_ci_high"], fastest_time_n=f[f"{TIME}_n"])
        if len(by_time) > 1:
            nxt = by_time[1]
            r = ratio(estimate_of(nxt, TIME), estimate_of(by_time[0], TIME))
            row.update(next_fastest=nxt["model"], next_time_ratio=r["value"], next_time_ratio_ci_low=r["ci_low"],
                       next_time_ratio_ci_high=r["ci_high"])
        by_metric = sorted([r for r in recs if pd.notna(r["test_metric_mean"])],
                           key=lambda r: r["test_metric_mean"] * (1 if lower else -1))
        if by_metric:
            b = by_metric[0]
            row.update(most_accurate=b["model"], metric_mean=b["test_metric_mean"], metric_ci_low=b["test_metric_ci_low"],
                       metric_ci_high=b["test_metric_ci_high"], metric_n=b["test_metric_n"])
        if len(by_metric) > 1:
            d = _difference(by_metric[0], by_metric[1], lower)
            row.update(next_accurate=by_metric[1]["model"], next_worse_by=d["value"], next_worse_by_ci_low=d["ci_low"],
                       next_worse_by_ci_high=d["ci_high"])
        row["pareto"] = "; ".join(pareto_set(recs, lower))
        index = {r["model"]: r for r in recs}
        runs_of = {r["model"]: r.get("runs") for r in g.to_dict("records")}
        vs = []
        for ref in lstms:
            if ref not in index:
                if ref in runs_of:  # run here, but without an ok seed: nothing to divide by
                    vs.append(f"no ok {ref} run ({runs_of[ref]})")
                continue
            for r in recs:
                if r["model"] != ref:
                    q = ratio(estimate_of(r, TIME), estimate_of(index[ref], TIME))
                    vs.append(f"{r['model']} {num(q['value'], 3)}x [{num(q['ci_low'], 3)}, {num(q['ci_high'], 3)}]")
        row["time_vs_lstm"] = "; ".join(vs) if vs else ""
        rows.append(row)
    cols = ["dataset", "hardware", "metric_name", "models", "fastest", "fastest_time_gmean", "fastest_time_ci_low",
            "fastest_time_ci_high", "fastest_time_n", "next_fastest", "next_time_ratio", "next_time_ratio_ci_low",
            "next_time_ratio_ci_high", "most_accurate", "metric_mean", "metric_ci_low", "metric_ci_high", "metric_n",
            "next_accurate", "next_worse_by", "next_worse_by_ci_low", "next_worse_by_ci_high", "pareto", "time_vs_lstm",
            "no_model", "left_out"]
    return pd.DataFrame(rows, columns=cols)


def display(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for r in table.to_dict("records"):
        fastest = most = r["no_model"] if isinstance(r.get("no_model"), str) and r["no_model"] else "n/a"
        if isinstance(r["fastest"], str):
            fastest = f"{r['fastest']}: {compact(r['fastest_time_gmean'], r['fastest_time_ci_low'], r['fastest_time_ci_high'], r['fastest_time_n'])}"
            if isinstance(r["next_fastest"], str):
                fastest += (f"; {r['next_fastest']} takes {num(r['next_time_ratio'], 3)}x "
                            f"[{num(r['next_time_ratio_ci_low'], 3)}, {num(r['next_time_ratio_ci_high'], 3)}] as long")
        if isinstance(r["most_accurate"], str):
            most = f"{r['most_accurate']}: {compact(r['metric_mean'], r['metric_ci_low'], r['metric_ci_high'], r['metric_n'])}"
            if isinstance(r["next_accurate"], str):
                most += (f"; {r['next_accurate']} worse by {num(r['next_worse_by'], 3)} "
                         f"[{num(r['next_worse_by_ci_low'], 3)}, {num(r['next_worse_by_ci_high'], 3)}]")
        lower = LOWER_IS_BETTER.get(r["metric_name"], True)
        metric = f"{r['metric_name']} ({'lower' if lower else 'higher'} is better)" if isinstance(r["metric_name"], str) \
            else "n/a"
        left = r.get("left_out")
        out.append({"data set": r["dataset"], "hardware": r["hardware"], "test metric": metric,
                    "fastest (train time [s])": fastest, "most accurate (test metric)": most,
                    "Pareto set (time, metric)": r["pareto"] if isinstance(r["pareto"], str) and r["pareto"] else "n/a",
                    "train time vs LSTM": r["time_vs_lstm"] if isinstance(r["time_vs_lstm"], str) and r["time_vs_lstm"]
                    else "no LSTM run here",
                    LEFT_OUT: left if isinstance(left, str) and left else "none"})
    columns = ["data set", "hardware", "test metric", "fastest (train time [s])", "most accurate (test metric)",
               "Pareto set (time, metric)", "train time vs LSTM", LEFT_OUT]
    shown = pd.DataFrame(out, columns=columns)
    # a study whose runs all ended ok has nothing to say in that column
    return shown if (shown[LEFT_OUT] != "none").any() else shown.drop(columns=LEFT_OUT)


LEFT_OUT = "runs left out (not ok)"


NOTES = ("Per data set and hardware, over ok seeds: value [95 % interval] n = seeds. Times are geometric "
         "means (log-scale t interval); 'takes Rx as long' and 'vs LSTM' are ratios of geometric means "
         "(ratios table). Metrics are means (t interval cut to the metric's range); 'worse by' is the "
         "difference of means with its t interval. An interval that contains 1 (ratio) or 0 "
         "(difference) leaves the order undecided at 95 %. Pareto set: models no other beats in both "
         "training time and test metric. Diverged, failed and missing runs never enter a number here "
         f"('{LEFT_OUT}' names them): a model without an ok seed is not ranked, and a data set x hardware "
         "without any says 'no model'.")


def claim_lines(claims: pd.DataFrame) -> str:
    lines = []
    for r in claims.to_dict("records"):
        counts = ""
        if "supports" in r and pd.notna(r.get("supports")):
            counts = (f" ({int(r['supports'])} for, {int(r['contradicts'])} against, "
                      f"{int(r['not_significant'])} not significant, of {int(r['comparisons'])} comparisons)")
        lines.append(f"- {r['claim']}: **{r['verdict']}**{counts}")
    return "\n".join(lines)


def build(summary: pd.DataFrame, claims: pd.DataFrame, model_types: dict) -> tuple:
    """The headline table (registry entry ``headline``): raw, display and notes, the claims'
    verdicts in the notes (one line each; table claims gives their evidence)."""
    table = headline(summary, model_types)
    first = " ".join(filter(None, (no_ok_note(summary), NOTES)))
    notes = first + "\n\nClaims (table claims gives the evidence and the rule):\n\n" + claim_lines(claims)
    return table, display(table), notes
