"""A DDP scaling model fitted to probe timings: epoch time, speedup, efficiency and knee for n processes.

The model (the derivation's home; the functions below only implement it):

Compute per step. One optimisation step on one process with per-process batch b takes

    t_c(b) = c0 + c1 * b

c0 (s): the per-step overhead that does not depend on b (kernel launches, interpreter, optimiser);
c1 (s per sample): the per-sample cost. Fitted (:func:`fit_compute`) by least squares on the median
step time of each batch size (medians: a slow repetition moves the mean, not the median), each
point weighted by 1 / its median: timing noise grows with the time (a fixed relative jitter), and
with equal weights the intervals came out too narrow (in simulation with 1 % relative noise, 82 %
of 95 % intervals held the true c1; weighted, 95 %). At least 3 distinct batch sizes; standard
errors from the weighted residuals, 95 % t intervals with points - 2 degrees of freedom, R^2 of the
medians on their own scale.

All-reduce. Per measured width n >= 2 the time of one all-reduce of m bytes is fitted as
t(m) = a_n + b_n * m (latency + size / bandwidth; :class:`WidthFit`, the same rules as the compute
fit). Across widths two standard alpha-beta forms (alpha: latency per message step, s; beta: s per
byte, 1 / bandwidth) are fitted by least squares (no intercept, weighted as above) on every (n, m)
median at once:

    ring:  t(n, m) = 2 (n - 1) * alpha + 2 (n - 1) / n * m * beta
           (reduce-scatter then all-gather: 2 (n - 1) steps, each sending m / n bytes)
    tree:  t(n, m) = 2 ceil(log2 n) * alpha + 2 ceil(log2 n) * m * beta
           (binary tree: reduce up, then broadcast down, ceil(log2 n) steps each, whole message per step)

Both are linear in (alpha, beta), so both get standard errors and 95 % t intervals (points - 2
degrees of freedom). The form with the lower residual sum of squares is used for predictions (ties:
ring; the residuals relative, as weighted); both are kept. With a single measured width the two forms are rescalings of each other (their
beta differ by a constant factor): they fit equally well and differ only at widths not measured, so
ring is chosen and a note says so. Both give 0 at n = 1. :func:`given_allreduce` takes alpha and beta
of a known interconnect instead (no intervals).

A fit is unfit (``ok`` False, ``reason`` set) when a parameter's point estimate is below 0 and its
whole 95 % interval too (the data contradict the model); a negative estimate whose interval holds 0
is clamped to 0, its interval cut at 0, and a note says so. The all-reduce fit is unfit when a
width's line is, or (with several widths) when both forms are; with one unfit form the other is used.
Predictions refuse unfit fits.

Exposed factor. What a DDP step pays for its gradient all-reduce, as a multiple ``exposed`` (>= 0)
of the isolated all-reduce t(n, g) that the probe times: below 1 where DDP hides part of it behind
the backward pass (0: all of it), 1 (the default) where none is hidden, above 1 where the step pays
more than the collective alone: the ranks reach it when each one's backward ends, so the first
waits for the last, and on the CPU gloo's thread shares the core with the backward (on a quiet
2-core machine a 2-rank gloo step paid 1.3-2.3 ms against an isolated all-reduce of 0.34 ms,
docs/measurements-history.md, issue 36). liquidbench.results.scaling_table measures it from the runs'
communication probe (config ``exposed: measured``).

Prediction (:func:`predict`) for width n, batch B (``batch_size``: per process in weak scaling,
global in strong scaling), N training samples (``n_train``):

    weak scaling:   b_n = B,       s(n) = ceil(N / (n * B))
    strong scaling: b_n = B / n,   s(n) = ceil(N / B)     (widths n that do not divide B are skipped, with a note)
    step(n)  = t_c(b_n) + exposed * t(n, g)    (g: gradient bytes; the all-reduce term is 0 at n = 1)
    epoch(n) = s(n) * step(n)
    S(n) = epoch(1) / epoch(n),   E(n) = S(n) / n

Width 1 is always predicted: it is the baseline. The table's allreduce_s is the exposed part,
exposed * t(n, g), so step_s = compute_s + allreduce_s. The knee is the largest n with E(n) >= threshold,
counting n = 1 (:func:`liquidbench.results.scaling.knee`, as for measured speedups). Per width the
dominant term of the step is "compute" (t_c(b_n) >= exposed all-reduce) or "all-reduce". At the knee
(at the next width when the knee is n = 1, where nothing is lost) the lost epoch time
s(n) step(n) - s(1) step(1) / n splits into: all-reduce latency s(n) * exposed * (alpha term),
all-reduce bandwidth s(n) * exposed * (beta term), and compute that no longer shrinks,
s(n) t_c(b_n) - s(1) t_c(B) / n: c0 (1 - 1/n) s in strong scaling, t_c(B) (s(n) - s(1)/n) in weak
scaling (steps rounded up); the largest names the knee's cause.

Intervals: Monte Carlo over the fitted parameters. (c0, c1) and (alpha, beta) are each drawn from a
bivariate normal around the point estimates with their standard errors and their estimated
correlation (the fitted covariance), independently of each other, clipped at 0; a seeded numpy
Generator; the 2.5 and 97.5 percentiles of epoch(n), S(n) and E(n) over the draws. The point columns
come from the point estimates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .scaling import knee as knee_of
from .stats import CONFIDENCE, t_quantile

FORMS = ("ring", "tree")
MIN_POINTS = 3  # distinct batch sizes / message sizes per fit: 2 parameters and at least 1 degree of freedom
TABLE_COLUMNS = ["width", "per_process_batch", "steps", "step_s", "compute_s", "allreduce_s", "epoch_s",
                 "epoch_s_low", "epoch_s_high", "speedup", "speedup_low", "speedup_high", "efficiency",
                 "efficiency_low", "efficiency_high", "dominant"]
# a negative estimate this small against the data it explains is rounding, not a misfit
_ROUNDING = 1e-9


@dataclass(frozen=True)
class Estimate:
    """A fitted parameter: point value, standard error and 95 % interval (given values: se 0, interval the value)."""
    value: float
    se: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Estimate:
        return cls(float(value), 0.0, float(value), float(value))


@dataclass(frozen=True)
class ComputeFit:
    """t_c(b) = c0 + c1 * b of ``where`` (e.g. "sine / cfc / cpu"); ``source`` "fitted" or "given"."""
    where: str
    c0: Estimate
    c1: Estimate
    corr: float  # correlation of the c0 and c1 estimates (0 when given)
    r2: float
    points: int
    ok: bool
    reason: str
    notes: tuple[str, ...]
    source: str

    def time(self, batch: float) -> float:
        return self.c0.value + self.c1.value * batch


@dataclass(frozen=True)
class WidthFit:
    """t(m) = latency + per_byte * m at one width."""
    width: int
    latency: Estimate
    per_byte: Estimate
    r2: float
    points: int
    ok: bool
    reason: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class AlphaBeta:
    """One cross-width form ("ring" or "tree") with its alpha (s) and beta (s per byte)."""
    form: str
    alpha: Estimate
    beta: Estimate
    corr: float
    rss: float  # residual sum of squares over the per-size medians (NaN when given)
    points: int
    ok: bool
    reason: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class AllReduceFit:
    """The all-reduce model of ``where``: per-width lines, both forms, and the form used (``form``)."""
    where: str
    form: str
    forms: tuple[AlphaBeta, ...]
    widths: tuple[WidthFit, ...]
    ok: bool
    reason: str
    notes: tuple[str, ...]
    source: str

    @property
    def model(self) -> AlphaBeta:
        """The form predictions use."""
        return next(f for f in self.forms if f.form == self.form)

    def time(self, width: int, message_bytes: float) -> float:
        return float(allreduce_time(self.form, width, message_bytes, self.model.alpha.value, self.model.beta.value))


@dataclass(frozen=True)
class Knee:
    """The knee: largest width with efficiency >= threshold, and why efficiency is lost there.

    ``at``: the width the cause is read at (the knee, or the next width when the knee is 1);
    ``dominant``: "compute" or "all-reduce"; ``cause``: "overhead" (c0, strong scaling), "steps"
    (steps per epoch rounded up, weak scaling), "latency" or "bandwidth"; "none" when nothing is lost.
    """
    width: int
    threshold: float
    at: int
    dominant: str
    cause: str
    reason: str


@dataclass(frozen=True, eq=False)  # eq=False: a DataFrame has no truth value to compare by
class Prediction:
    """The per-width table (TABLE_COLUMNS), its knee, and notes (skipped widths, the form used)."""
    table: pd.DataFrame
    knee: Knee
    scaling: str
    form: str
    exposed: float
    notes: tuple[str, ...]


# ---------------------------------------------------------------------------------------------- fitting

def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Least squares y ~ x @ coef, each row weighted by 1 / y (relative residuals; a time of 0 weighs
    1): coefficients, their covariance, the weighted residual sum of squares, dof.

    Columns are scaled to unit norm first (seconds against bytes span many orders of magnitude)."""
    w = np.where(y > 0, 1.0 / np.where(y > 0, y, 1.0), 1.0)
    x, y = x * w[:, None], y * w
    scale = np.linalg.norm(x, axis=0)
    scale[scale == 0] = 1.0
    xs = x / scale
    coef_s, *_ = np.linalg.lstsq(xs, y, rcond=None)
    resid = y - xs @ coef_s
    rss = float(resid @ resid)
    dof = len(y) - x.shape[1]
    cov_s = rss / dof * np.linalg.pinv(xs.T @ xs)
    return coef_s / scale, cov_s / np.outer(scale, scale), rss, dof


def _estimates(coef: np.ndarray, cov: np.ndarray, dof: int) -> tuple[list[Estimate], float]:
    t = t_quantile(0.5 + CONFIDENCE / 2, dof)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    out = [Estimate(float(c), float(s), float(c - t * s), float(c + t * s)) for c, s in zip(coef, se)]
    corr = float(cov[0, 1] / (se[0] * se[1])) if se[0] > 0 and se[1] > 0 else 0.0
    return out, max(-1.0, min(1.0, corr))


def _signs(names: Sequence[str], estimates: list[Estimate], x: np.ndarray, y: np.ndarray,
           label: str) -> tuple[list[Estimate], str, list[str]]:
    """Clamp negative estimates whose interval holds 0; the reason a fit is unfit ('' if it is not)."""
    out, reasons, notes = [], [], []
    ymax = float(np.abs(y).max()) or 1.0
    for name, est, col in zip(names, estimates, x.T):
        if est.value >= 0:
            out.append(est)
            continue
        rounding = abs(est.value) * float(np.abs(col).max()) <= _ROUNDING * ymax
        if est.high < 0 and not rounding:
            reasons.append(f"{label}: {name} = {est.value:.4g} with its 95 % interval [{est.low:.4g}, "
                           f"{est.high:.4g}] below 0 (expected >= 0)")
            out.append(est)
            continue
        if not rounding:
            notes.append(f"{label}: {name} = {est.value:.4g} < 0 with 0 inside its 95 % interval "
                         f"[{est.low:.4g}, {est.high:.4g}]: clamped to 0")
        out.append(Estimate(0.0, est.se, max(est.low, 0.0), max(est.high, 0.0)))
    return out, "; ".join(reasons), notes


def _r2(y: np.ndarray, rss: float) -> float:
    tss = float(((y - y.mean()) ** 2).sum())
    if tss == 0:
        return 1.0 if rss == 0 else float("nan")
    return 1.0 - rss / tss


def _medians(samples: Sequence[float], what: str) -> float:
    x = np.asarray(list(samples), dtype=float)
    if x.size == 0:
        raise ValueError(f"{what}: no timing samples (expected at least one time in seconds)")
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError(f"{what}: timing samples must be finite seconds >= 0, got {x.tolist()}")
    return float(np.median(x))


def _line(x: np.ndarray, y: np.ndarray, names: tuple[str, str], label: str):
    """t = p0 + p1 * x by OLS: (p0, p1), corr, R^2, reason ('' if ok), notes."""
    design = np.column_stack([np.ones_like(x), x])
    coef, cov, _, dof = _ols(design, y)
    est, corr = _estimates(coef, cov, dof)
    est, reason, notes = _signs(names, est, design, y, label)
    resid = y - design @ coef
    return est, corr, _r2(y, float(resid @ resid)), reason, notes


def fit_compute(batches: Sequence[int], samples: Sequence[Sequence[float]], *, where: str) -> ComputeFit:
    """Fit t_c(b) = c0 + c1 * b to step times: ``samples[i]`` are the seconds of steps at batch ``batches[i]``
    (repeated batch sizes are pooled)."""
    if len(batches) != len(samples):
        raise ValueError(f"step probe of {where}: {len(batches)} batch sizes but {len(samples)} sample lists "
                         f"(expected one list of step times per batch size)")
    pooled: dict[int, list[float]] = {}
    for b, s in zip(batches, samples):
        if isinstance(b, bool) or int(b) != b or b < 1:
            raise ValueError(f"step probe of {where}: batch size {b!r} (expected an integer >= 1)")
        pooled.setdefault(int(b), []).extend(s)
    if len(pooled) < MIN_POINTS:
        raise ValueError(f"step probe of {where}: {len(pooled)} distinct batch size(s) {sorted(pooled)} "
                         f"(expected at least {MIN_POINTS} to fit c0 + c1 * b with an interval)")
    b = np.array(sorted(pooled), dtype=float)
    y = np.array([_medians(pooled[int(v)], f"step probe of {where}, batch {int(v)}") for v in b])
    (c0, c1), corr, r2, reason, notes = _line(b, y, ("c0", "c1"), f"step probe of {where}")
    return ComputeFit(where, c0, c1, corr, r2, len(b), not reason, reason, tuple(notes), "fitted")


def given_compute(c0: float, c1: float, *, where: str = "given") -> ComputeFit:
    """t_c(b) = c0 + c1 * b from known values (seconds, seconds per sample): no intervals."""
    if not (math.isfinite(c0) and math.isfinite(c1)) or c0 < 0 or c1 < 0:
        raise ValueError(f"compute model of {where}: c0 = {c0}, c1 = {c1} (expected finite values >= 0)")
    return ComputeFit(where, Estimate.exact(c0), Estimate.exact(c1), 0.0, float("nan"), 0, True, "", (), "given")


def coefficients(form: str, width) -> tuple[np.ndarray, np.ndarray]:
    """The multipliers (of alpha, of m * beta) of a form at ``width`` (scalar or array)."""
    n = np.asarray(width, dtype=np.int64)
    if form == "ring":
        return 2.0 * (n - 1), 2.0 * (n - 1) / n
    if form == "tree":
        steps = np.vectorize(lambda k: (int(k) - 1).bit_length(), otypes=[float])(n)  # ceil(log2 n)
        return 2.0 * steps, 2.0 * steps
    raise ValueError(f"all-reduce form {form!r} (expected one of {', '.join(FORMS)})")


def allreduce_time(form: str, width, message_bytes, alpha: float, beta: float):
    """t(n, m) of a form (module docstring); 0 at n = 1."""
    a, b = coefficients(form, width)
    return a * alpha + b * np.asarray(message_bytes, dtype=float) * beta


def _fit_form(form: str, n: np.ndarray, m: np.ndarray, y: np.ndarray, where: str) -> AlphaBeta:
    a, b = coefficients(form, n)
    design = np.column_stack([a, b * m])
    coef, cov, rss, dof = _ols(design, y)
    est, corr = _estimates(coef, cov, dof)
    est, reason, notes = _signs(("alpha", "beta"), est, design, y, f"all-reduce probe of {where}, {form} form")
    return AlphaBeta(form, est[0], est[1], corr, rss, len(y), not reason, reason, tuple(notes))


def fit_allreduce(rows: Iterable[tuple[int, float, Sequence[float]]], *, where: str) -> AllReduceFit:
    """Fit per-width lines and the ring and tree forms to rows (width n >= 2, message bytes, seconds samples);
    rows of the same width and size are pooled."""
    pooled: dict[int, dict[float, list[float]]] = {}
    for row in rows:
        n, m, s = row
        if isinstance(n, bool) or int(n) != n or n < 2:
            raise ValueError(f"all-reduce probe of {where}: width {n!r} (expected an integer >= 2: "
                             f"one process has nothing to all-reduce)")
        if not math.isfinite(m) or m < 0:
            raise ValueError(f"all-reduce probe of {where}: message size {m!r} bytes (expected finite >= 0)")
        pooled.setdefault(int(n), {}).setdefault(float(m), []).extend(s)
    if not pooled:
        raise ValueError(f"all-reduce probe of {where}: no rows (expected (width, bytes, seconds) rows)")
    ns, ms, ys, per_width, notes, reasons = [], [], [], [], [], []
    for n in sorted(pooled):
        sizes = sorted(pooled[n])
        if len(sizes) < MIN_POINTS:
            raise ValueError(f"all-reduce probe of {where}, width {n}: {len(sizes)} distinct message size(s) "
                             f"(expected at least {MIN_POINTS} to fit latency + bytes / bandwidth)")
        y = np.array([_medians(pooled[n][m], f"all-reduce probe of {where}, width {n}, {m:g} bytes")
                      for m in sizes])
        (lat, per_byte), _, r2, reason, w_notes = _line(np.array(sizes), y, ("latency a_n", "per-byte b_n"),
                                                        f"all-reduce probe of {where}, width {n}")
        per_width.append(WidthFit(n, lat, per_byte, r2, len(sizes), not reason, reason, tuple(w_notes)))
        notes += w_notes
        if reason:
            reasons.append(reason)
        ns += [n] * len(sizes)
        ms += sizes
        ys += y.tolist()
    n_arr, m_arr, y_arr = np.array(ns), np.array(ms), np.array(ys)
    forms = tuple(_fit_form(f, n_arr, m_arr, y_arr, where) for f in FORMS)
    for f in forms:
        notes += f.notes
    ring, tree = forms
    if len(pooled) == 1:
        form = "ring"
        notes.append(f"one width (n={next(iter(pooled))}) measured: ring and tree fit it equally well and differ "
                     f"only at other widths; ring chosen")
        reasons.append(ring.reason)
    elif ring.ok or tree.ok:
        # the lower residual sum of squares among the fits that are ok; ties (within rounding) go to ring
        form = "ring" if ring.ok and (not tree.ok or ring.rss <= tree.rss * (1 + 1e-9)) else "tree"
        notes.append(f"{form} form chosen (residual sum of squares, s^2: ring {ring.rss:.4g}, tree {tree.rss:.4g}"
                     f"{'' if ring.ok and tree.ok else '; the other form is unfit'})")
    else:
        form = "ring"
        reasons += [ring.reason, tree.reason]
    reason = "; ".join(r for r in reasons if r)
    return AllReduceFit(where, form, forms, tuple(per_width), not reason, reason, tuple(notes), "fitted")


def given_allreduce(alpha: float, beta: float, *, form: str = "ring", where: str = "given") -> AllReduceFit:
    """The all-reduce model of a known interconnect: alpha (s), beta (s per byte), in ``form``; no intervals."""
    coefficients(form, 2)  # refuses an unknown form
    if not (math.isfinite(alpha) and math.isfinite(beta)) or alpha < 0 or beta < 0:
        raise ValueError(f"all-reduce model of {where}: alpha = {alpha} s, beta = {beta} s/byte "
                         f"(expected finite values >= 0)")
    ab = AlphaBeta(form, Estimate.exact(alpha), Estimate.exact(beta), 0.0, float("nan"), 0, True, "", ())
    return AllReduceFit(where, form, (ab,), (), True, "", (), "given")


# ------------------------------------------------------------------------------------------- prediction

def _draw(rng: np.random.Generator, a: Estimate, b: Estimate, corr: float, samples: int) -> np.ndarray:
    """``samples`` draws of (a, b): bivariate normal with their standard errors and correlation, clipped at 0."""
    z1, z2 = rng.standard_normal(samples), rng.standard_normal(samples)
    z2 = corr * z1 + math.sqrt(max(0.0, 1.0 - corr * corr)) * z2
    return np.column_stack([np.clip(a.value + a.se * z1, 0, None), np.clip(b.value + b.se * z2, 0, None)])


def _widths(widths: Iterable[int], batch_size: int, scaling: str) -> tuple[list[int], list[str]]:
    out = set()
    for n in widths:
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"predict: width {n!r} (expected an integer >= 1, the number of processes)")
        out.add(int(n))
    out.add(1)  # the baseline
    notes = []
    if scaling == "strong":
        skipped = sorted(n for n in out if batch_size % n)
        if skipped:
            notes.append(f"strong scaling: widths {skipped} skipped (they do not divide the batch size {batch_size})")
        out -= set(skipped)
    return sorted(out), notes


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _knee(table: pd.DataFrame, compute: ComputeFit, comm: AllReduceFit, threshold: float, scaling: str,
          gradient_bytes: float, exposed: float) -> Knee:
    widths = table["width"].tolist()
    k = int(knee_of(widths, table["efficiency"].tolist(), threshold))
    i = widths.index(k)
    at = widths[i + 1] if k == 1 and len(widths) > 1 else k
    row = table.iloc[widths.index(at)]
    base = table.iloc[0]
    ab = comm.model
    a_coef, b_coef = (float(v) for v in coefficients(comm.form, at))
    lat = exposed * a_coef * ab.alpha.value
    bw = exposed * b_coef * gradient_bytes * ab.beta.value
    s, step = row["steps"], row["step_s"]
    losses = {
        "latency": s * lat,
        "bandwidth": s * bw,
        "overhead" if scaling == "strong" else "steps": s * row["compute_s"] - base["epoch_s"] / at,
    }
    cause = max(losses, key=losses.get)
    prefix = "" if exposed == 1 else "exposed * "
    a_text, b_text = {"ring": ("2(n-1)*alpha", "2(n-1)/n*m*beta"),
                      "tree": ("2*ceil(log2 n)*alpha", "2*ceil(log2 n)*m*beta")}[comm.form]
    if losses[cause] <= 0:
        cause, dominant = "none", row["dominant"]
        reason = f"no efficiency lost up to n={at}"
    elif cause == "latency":
        dominant = "all-reduce"
        reason = f"all-reduce latency {prefix}{a_text} = {_time(lat)}, {_pct(lat / step)} of the step at n={at}"
    elif cause == "bandwidth":
        dominant = "all-reduce"
        reason = (f"all-reduce bandwidth {prefix}{b_text} = {_time(bw)}, {_pct(bw / step)} of the step "
                  f"at n={at} (m = {gradient_bytes:g} bytes)")
    elif cause == "overhead":
        dominant = "compute"
        reason = (f"compute no longer shrinks: t_c(b)=c0+c1*b with c0 = {_time(compute.c0.value)}, "
                  f"{_pct(compute.c0.value / step)} of the step at n={at} (b = {row['per_process_batch']:g})")
    else:
        dominant = "compute"
        reason = (f"steps per epoch no longer shrink: ceil(n_train/(n*b)) = {int(s)} at n={at} against "
                  f"s(1)/n = {base['steps'] / at:g}")
    if k == widths[-1]:
        reason = f"efficiency stays >= {threshold:g} up to n={k}; largest loss there: {reason}"
    return Knee(k, threshold, at, dominant, cause, reason)


def predict(compute: ComputeFit, comm: AllReduceFit, *, batch_size: int, n_train: int, gradient_bytes: float,
            scaling: str, widths: Iterable[int] = range(1, 65), threshold: float = 0.7, exposed: float = 1.0,
            samples: int = 2000, seed: int = 0) -> Prediction:
    """Epoch time, speedup and efficiency per width with 95 % Monte Carlo intervals, and the knee
    (module docstring). ``batch_size``: the per-process batch (weak) or the global batch (strong)."""
    for fit, what in ((compute, "compute fit (step probe)"), (comm, "all-reduce fit")):
        if not fit.ok:
            raise ValueError(f"predict: the {what} of {fit.where} is unfit: {fit.reason} "
                             f"(refit, or give the parameters directly)")
    if scaling not in ("weak", "strong"):
        raise ValueError(f"predict: scaling {scaling!r} (expected 'weak' or 'strong')")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"predict: batch_size {batch_size!r} (expected an integer >= 1)")
    if isinstance(n_train, bool) or int(n_train) != n_train or n_train < 1:
        raise ValueError(f"predict: n_train {n_train!r} (expected an integer >= 1, training samples per epoch)")
    if not math.isfinite(gradient_bytes) or gradient_bytes < 0:
        raise ValueError(f"predict: gradient_bytes {gradient_bytes!r} (expected finite >= 0)")
    if isinstance(exposed, bool) or not isinstance(exposed, (int, float)) or not 0 <= exposed < math.inf:
        raise ValueError(f"predict: exposed {exposed!r} (expected the exposed factor of the all-reduce, a number "
                         f">= 0)")
    if not 0 < threshold <= 1:
        raise ValueError(f"predict: threshold {threshold!r} (expected an efficiency in (0, 1])")
    if int(samples) != samples or samples < 1:
        raise ValueError(f"predict: samples {samples!r} (expected an integer >= 1 Monte Carlo draws)")
    ws, notes = _widths(widths, int(batch_size), scaling)
    n = np.array(ws)
    if scaling == "weak":
        b = np.full(len(n), float(batch_size))
        steps = np.array([math.ceil(n_train / (w * batch_size)) for w in ws], dtype=float)
    else:
        b = np.array([batch_size // w for w in ws], dtype=float)
        steps = np.full(len(n), float(math.ceil(n_train / batch_size)))
    a_coef, b_coef = coefficients(comm.form, n)

    def epochs(c0, c1, alpha, beta):  # arrays of draws (columns) -> (draws, widths)
        comp = c0[:, None] + c1[:, None] * b[None, :]
        ar = exposed * (a_coef[None, :] * alpha[:, None] + b_coef[None, :] * gradient_bytes * beta[:, None])
        return comp, ar, steps[None, :] * (comp + ar)

    ab = comm.model
    point = [np.array([e.value]) for e in (compute.c0, compute.c1, ab.alpha, ab.beta)]
    comp, ar, epoch = (v[0] for v in epochs(*point))
    if epoch[0] <= 0:
        raise ValueError(f"predict: the step time of {compute.where} at n=1 is {epoch[0]} s "
                         f"(expected > 0: c0 and c1 are both 0)")
    rng = np.random.default_rng(seed)
    cd = _draw(rng, compute.c0, compute.c1, compute.corr, int(samples))
    ad = _draw(rng, ab.alpha, ab.beta, ab.corr, int(samples))
    mc = epochs(cd[:, 0], cd[:, 1], ad[:, 0], ad[:, 1])[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        mc_speedup = mc[:, :1] / mc
    lo, hi = 50 - CONFIDENCE * 50, 50 + CONFIDENCE * 50
    speedup = epoch[0] / epoch
    table = pd.DataFrame({
        "width": n, "per_process_batch": b, "steps": steps.astype(int), "step_s": comp + ar, "compute_s": comp,
        "allreduce_s": ar, "epoch_s": epoch,
        "epoch_s_low": np.percentile(mc, lo, axis=0), "epoch_s_high": np.percentile(mc, hi, axis=0),
        "speedup": speedup,
        "speedup_low": np.nanpercentile(mc_speedup, lo, axis=0),
        "speedup_high": np.nanpercentile(mc_speedup, hi, axis=0),
        "efficiency": speedup / n,
        "efficiency_low": np.nanpercentile(mc_speedup, lo, axis=0) / n,
        "efficiency_high": np.nanpercentile(mc_speedup, hi, axis=0) / n,
        "dominant": np.where(comp >= ar, "compute", "all-reduce"),
    }, columns=TABLE_COLUMNS)
    knee = _knee(table, compute, comm, threshold, scaling, gradient_bytes, exposed)
    notes.append(f"all-reduce: {comm.form} form ({comm.source}), exposed factor {exposed:g}")
    return Prediction(table, knee, scaling, comm.form, float(exposed), tuple(notes))


# ---------------------------------------------------------------------------------------------- compare

def _measured(measured) -> pd.DataFrame:
    nan = float("nan")
    if isinstance(measured, pd.DataFrame):
        width = "width" if "width" in measured else "n"
        low = next((c for c in ("speedup_low", "speedup_ci_low") if c in measured), None)
        high = next((c for c in ("speedup_high", "speedup_ci_high") if c in measured), None)
        if width not in measured or "speedup" not in measured:
            raise ValueError(f"compare: measured frame has columns {list(measured.columns)} "
                             f"(expected 'width' or 'n', and 'speedup')")
        rows = [(r[width], r["speedup"], r[low] if low else nan, r[high] if high else nan)
                for r in measured.to_dict("records")]
    elif isinstance(measured, Mapping):
        rows = []
        for w, v in measured.items():
            v = tuple(v) if isinstance(v, (tuple, list)) else (v, nan, nan)
            if len(v) != 3:
                raise ValueError(f"compare: measured speedup of width {w} is {v!r} "
                                 f"(expected a number or (speedup, low, high))")
            rows.append((w, *v))
    else:
        raise ValueError(f"compare: measured is a {type(measured).__name__} "
                         f"(expected a dict width -> speedup or a frame)")
    out = pd.DataFrame(rows, columns=["width", "measured", "measured_low", "measured_high"])
    bad = out[~(out["measured"] > 0)]
    if len(bad):
        raise ValueError(f"compare: measured speedups {dict(zip(bad['width'], bad['measured']))} "
                         f"(expected positive numbers)")
    out["width"] = out["width"].astype(int)
    return out


def compare(predicted: Prediction | pd.DataFrame, measured) -> pd.DataFrame:
    """Measured speedups (dict width -> speedup or (speedup, low, high), or a frame with width/n, speedup and
    optional low/high columns) against the predicted ones: relative error (predicted - measured) / measured
    and whether the measured value lies in the predicted 95 % band."""
    table = predicted.table if isinstance(predicted, Prediction) else predicted
    m = _measured(measured)
    missing = sorted(set(m["width"]) - set(table["width"].astype(int)))
    if missing:
        raise ValueError(f"compare: widths {missing} measured but not predicted "
                         f"(predicted: {table['width'].astype(int).tolist()})")
    p = table[["width", "speedup", "speedup_low", "speedup_high"]].rename(columns={
        "speedup": "predicted", "speedup_low": "predicted_low", "speedup_high": "predicted_high"})
    p = p.assign(width=p["width"].astype(int))
    out = m.merge(p, on="width", how="left").sort_values("width", ignore_index=True)
    out["rel_error"] = (out["predicted"] - out["measured"]) / out["measured"]
    out["in_band"] = (out["predicted_low"] <= out["measured"]) & (out["measured"] <= out["predicted_high"])
    return out
