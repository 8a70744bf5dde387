"""Statistics over seeds: mean, median, sample standard deviation and Student-t confidence intervals.

Two kinds of interval (docs/statistics.md, "Statistics over seeds"):

- Quantities that can only be positive (times, throughputs, memory, energy, and the speedups,
  efficiencies and ratios formed from them) get a t interval on the log scale: with l = ln x,
  exp(mean(l) ± t * sd(l) / sqrt(n)), an interval around the geometric mean exp(mean(l)). It is
  never below zero, and it is asymmetric as the spread of such quantities is (a run can be twice
  as slow, never "minus" as slow). A t interval on logs, not a bootstrap: with the two to five
  seeds of a study a bootstrap has only a handful of distinct resamples and its percentile
  interval is too narrow; the log-t interval stays exact for log-normal data at any n >= 2.
  Ratios of two such quantities are ratios of geometric means, whose log is a difference of
  means with the standard errors added in quadrature.
- Other measures (MSE, accuracy, losses) keep the arithmetic mean and the t interval around it.

The t quantile comes from scipy.stats.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import t as student_t

CONFIDENCE = 0.95


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t distribution with ``df`` degrees of freedom."""
    if not 0.5 < p < 1:
        raise ValueError(f"t_quantile: p must lie in (0.5, 1), got {p}")
    if not df > 0:
        raise ValueError(f"t_quantile: degrees of freedom must be positive, got {df}")
    return float(student_t.ppf(p, df))


def _finite(values) -> np.ndarray:
    return np.asarray([v for v in np.asarray(values, dtype=float).ravel() if np.isfinite(v)], dtype=float)


def describe(values, confidence: float = CONFIDENCE, positive: bool = False, bounds: tuple | None = None) -> dict:
    """n, mean, median, sample std (ddof 1), standard error and a two-sided t confidence interval;
    also the geometric mean and geometric std (exp of the mean and std of the logs) when every
    value is > 0.

    ``positive``: the interval is the log-scale one around the geometric mean (NaN if some value
    is <= 0, which a positive quantity cannot have). Otherwise it is the arithmetic t interval
    around the mean, cut to ``bounds`` (lowest, highest possible value) when given: the mean of a
    quantity that cannot leave [lowest, highest] cannot either.

    NaN values are ignored. With n = 1 the spreads and the interval are NaN (one seed says nothing
    about spread); with n = 0 everything but n is NaN.
    """
    x = _finite(values)
    n = len(x)
    nan = float("nan")
    out = {"n": n, "mean": nan, "median": nan, "std": nan, "se": nan, "gmean": nan, "gsd": nan,
           "ci_low": nan, "ci_high": nan}
    if n == 0:
        return out
    out.update(mean=float(x.mean()), median=float(np.median(x)))
    logs = np.log(x) if (x > 0).all() else None
    if logs is not None:
        out["gmean"] = math.exp(float(logs.mean()))
    if n < 2:
        return out
    std = float(x.std(ddof=1))
    se = std / math.sqrt(n)
    t = t_quantile(0.5 + confidence / 2, n - 1)
    out.update(std=std, se=se)
    if logs is not None:
        out["gsd"] = math.exp(float(logs.std(ddof=1)))
    if positive:
        if logs is not None:
            half = t * float(logs.std(ddof=1)) / math.sqrt(n)
            out.update(ci_low=math.exp(float(logs.mean()) - half), ci_high=math.exp(float(logs.mean()) + half))
        return out
    lo, hi = out["mean"] - t * se, out["mean"] + t * se
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    out.update(ci_low=lo, ci_high=hi)
    return out


def estimate_of(row: dict | None, measure: str) -> dict:
    """n and the log-scale mean and standard error of ``measure`` (from a summary row's ``_n``,
    ``_gmean`` and ``_gsd`` columns), the input of ratio(); no row gives n = 0 and NaNs."""
    nan = float("nan")
    if row is None:
        return {"n": 0, "log_mean": nan, "log_se": nan}
    n = int(row.get(f"{measure}_n", 0) or 0)
    gm, gsd = row.get(f"{measure}_gmean", nan), row.get(f"{measure}_gsd", nan)
    return {"n": n, "log_mean": math.log(gm) if gm > 0 else nan,
            "log_se": math.log(gsd) / math.sqrt(n) if n > 1 and gsd > 0 else nan}


def ratio(num: dict, den: dict, confidence: float = CONFIDENCE) -> dict:
    """The ratio of the geometric means of two independent positive samples, with the log-scale
    t interval.

    ``num`` and ``den`` are :func:`estimate_of` results. ln(ratio) = log_mean_num - log_mean_den
    with standard error sqrt(log_se_num^2 + log_se_den^2); the interval is exp(ln(ratio) ± t * se)
    with the t quantile of min(n_num, n_den) - 1 degrees of freedom (conservative: never more than
    either sample has). It is NaN when either side has fewer than two values.
    """
    nan = float("nan")
    out = {"value": nan, "se_log": nan, "ci_low": nan, "ci_high": nan, "df": nan}
    if not (num["n"] and den["n"]) or not (math.isfinite(num["log_mean"]) and math.isfinite(den["log_mean"])):
        return out
    diff = num["log_mean"] - den["log_mean"]
    out["value"] = math.exp(diff)
    n_min = min(num["n"], den["n"])
    if n_min < 2:
        return out
    se = math.sqrt(num["log_se"] ** 2 + den["log_se"] ** 2)
    half = t_quantile(0.5 + confidence / 2, n_min - 1) * se
    out.update(se_log=se, ci_low=math.exp(diff - half), ci_high=math.exp(diff + half), df=n_min - 1)
    return out


def mean_of(row: dict | None, measure: str) -> dict:
    """n, mean and sample std of ``measure`` (from a summary row's ``_n``, ``_mean`` and ``_std``
    columns), the input of difference(); no row gives n = 0 and NaNs."""
    nan = float("nan")
    if row is None:
        return {"n": 0, "mean": nan, "std": nan}
    n = row.get(f"{measure}_n", 0)
    return {"n": 0 if n is None or not n == n else int(n), "mean": float(row.get(f"{measure}_mean", nan)),
            "std": float(row.get(f"{measure}_std", nan))}


def difference(a: dict, b: dict, confidence: float = CONFIDENCE) -> dict:
    """The difference of the means of two independent samples, a - b, with a Welch-type t interval.

    ``a`` and ``b`` are :func:`mean_of` results. The standard error is sqrt(s_a^2/n_a + s_b^2/n_b)
    (the two spreads are not pooled) and the t quantile has min(n_a, n_b) - 1 degrees of freedom,
    as :func:`ratio` (conservative: never more than either sample has). The interval is NaN when
    either side has fewer than two values.
    """
    nan = float("nan")
    out = {"value": nan, "se": nan, "ci_low": nan, "ci_high": nan, "df": nan}
    if not (a["n"] and b["n"]) or not (math.isfinite(a["mean"]) and math.isfinite(b["mean"])):
        return out
    out["value"] = a["mean"] - b["mean"]
    n_min = min(a["n"], b["n"])
    if n_min < 2 or not (math.isfinite(a["std"]) and math.isfinite(b["std"])):
        return out
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    half = t_quantile(0.5 + confidence / 2, n_min - 1) * se
    out.update(se=se, ci_low=out["value"] - half, ci_high=out["value"] + half, df=n_min - 1)
    return out
