"""Statistics over seeds: mean, sample standard deviation and Student-t confidence intervals.

Everything here is plain Python/NumPy (no SciPy): the t quantile is found by bisection on the
t distribution's CDF, which is integrated numerically from its density.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

CONFIDENCE = 0.95


def _t_pdf(x: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def _t_cdf_pos(t: float, df: float, steps: int = 4000) -> float:
    """P(T <= t) for t >= 0, by Simpson's rule on [0, t] after the substitution x = tan(u).

    The substitution maps the infinite tail to a finite interval, so heavy tails (df = 1) are
    integrated as accurately as light ones.
    """
    if t <= 0:
        return 0.5
    upper = math.atan(t)
    h = upper / steps
    total = 0.0
    for i in range(steps + 1):
        u = i * h
        x = math.tan(u)
        f = _t_pdf(x, df) / math.cos(u) ** 2
        total += f * (1 if i in (0, steps) else 4 if i % 2 else 2)
    return 0.5 + total * h / 3


@lru_cache(maxsize=512)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t distribution with ``df`` degrees of freedom."""
    if not 0.5 < p < 1:
        raise ValueError(f"t_quantile: p must lie in (0.5, 1), got {p}")
    if not df > 0:
        raise ValueError(f"t_quantile: degrees of freedom must be positive, got {df}")
    lo, hi = 0.0, 1.0
    while _t_cdf_pos(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if _t_cdf_pos(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9:
            break
    return (lo + hi) / 2


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
