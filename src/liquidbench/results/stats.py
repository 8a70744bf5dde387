"""Statistics over seeds: mean, sample standard deviation and Student-t confidence intervals
(the t quantile from scipy.stats)."""

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


def describe(values, confidence: float = CONFIDENCE) -> dict:
    """n, mean, sample std (ddof 1), standard error and the two-sided t confidence interval.

    NaN values are ignored. With n = 1 the std, standard error and interval are NaN (one seed
    says nothing about spread); with n = 0 everything but n is NaN.
    """
    x = np.asarray([v for v in np.asarray(values, dtype=float).ravel() if np.isfinite(v)], dtype=float)
    n = len(x)
    nan = float("nan")
    out = {"n": n, "mean": nan, "std": nan, "se": nan, "ci_low": nan, "ci_high": nan}
    if n == 0:
        return out
    mean = float(x.mean())
    out["mean"] = mean
    if n < 2:
        return out
    std = float(x.std(ddof=1))
    se = std / math.sqrt(n)
    half = t_quantile(0.5 + confidence / 2, n - 1) * se
    out.update(std=std, se=se, ci_low=mean - half, ci_high=mean + half)
    return out


def estimate_of(row: dict | None, measure: str) -> dict:
    """n, mean and standard error of ``measure`` from a summary row (its ``_n``, ``_mean`` and
    ``_std`` columns), the input of ratio(); no row gives n = 0 and NaNs."""
    if row is None:
        return {"n": 0, "mean": float("nan"), "se": float("nan")}
    n = int(row.get(f"{measure}_n", 0) or 0)
    std = row.get(f"{measure}_std", float("nan"))
    return {"n": n, "mean": row.get(f"{measure}_mean", float("nan")),
            "se": std / math.sqrt(n) if n > 1 else float("nan")}


def ratio(num: dict, den: dict, confidence: float = CONFIDENCE) -> dict:
    """The ratio of two independent means with a delta-method confidence interval.

    ``num`` and ``den`` are :func:`describe` results. The ratio's relative standard error is
    sqrt((se_num/mean_num)^2 + (se_den/mean_den)^2); the interval uses the t quantile with
    min(n_num, n_den) - 1 degrees of freedom (conservative: never more than either sample has).
    The interval is NaN when either side has fewer than two values.
    """
    nan = float("nan")
    out = {"value": nan, "se": nan, "ci_low": nan, "ci_high": nan, "df": nan}
    if not (num["n"] and den["n"]) or not den["mean"]:
        return out
    value = num["mean"] / den["mean"]
    out["value"] = value
    n_min = min(num["n"], den["n"])
    if n_min < 2 or not num["mean"]:
        return out
    rel = math.sqrt((num["se"] / num["mean"]) ** 2 + (den["se"] / den["mean"]) ** 2)
    se = abs(value) * rel
    half = t_quantile(0.5 + confidence / 2, n_min - 1) * se
    out.update(se=se, ci_low=value - half, ci_high=value + half, df=n_min - 1)
    return out
