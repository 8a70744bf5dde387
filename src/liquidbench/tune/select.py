"""The selected trial of a data set x model x hardware: the best validation score among the trials
that finished ok.

A trial is its run's metrics.json plus ``trial`` (its index) and ``point`` (the values searched).
Only ``status``, ``best_val_metric``, ``metric_name`` and ``train_time_s`` are read: the selection
is made on the validation split alone, and never sees ``test_metric``, so that the test score of
the tuned run that follows stays a held-out estimate. A diverged or failed trial, or one without a
finite validation score, is never selected; where no trial is ok the selection says so (and the
tuned run trains at the study's own settings).

Ties on the validation score go to the faster trial (``train_time_s``), then to the lower index,
so that the same trials always give the same selection.
"""

from __future__ import annotations

import math
import statistics

LOWER_IS_BETTER = {"mse": True, "accuracy": False}

# what a trial is read for: nothing else of its metrics.json is looked at
READ = ("trial", "point", "status", "best_val_metric", "metric_name", "train_time_s")


def _number(value) -> float | None:
    """A finite number as a float, else None (a bool, None, NaN and inf are not scores)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _read(trial: dict) -> dict:
    """The fields a selection uses, and only those: a trial's test score is not among them."""
    return {key: trial.get(key) for key in READ}


def _metric_name(ok: list[dict]) -> str:
    """The metric the ok trials share; different metrics (trials of different data sets) are an error."""
    names = {t["metric_name"] for t in ok}
    if len(names) != 1:
        raise ValueError(f"trials with different metrics {sorted(map(str, names))}: a selection compares the "
                         "trials of one data set, model and hardware")
    (name,) = names
    if name not in LOWER_IS_BETTER:
        raise ValueError(f"trials' metric_name {name!r}: expected one of {', '.join(LOWER_IS_BETTER)}")
    return name


def _counts(trials: list[dict], ok: list[dict]) -> dict:
    n_diverged = sum(t["status"] == "diverged" for t in trials)
    return {"n_trials": len(trials), "n_ok": len(ok), "n_diverged": n_diverged,
            "n_failed": len(trials) - len(ok) - n_diverged}


def _reason(counts: dict) -> str:
    """Why no trial is selected, in words."""
    n = counts["n_trials"]
    if n == 0:
        return "no trials"
    if counts["n_diverged"] == n:
        return f"every trial diverged ({n} of {n})"
    if counts["n_failed"] == n:
        return f"no trial finished ok ({n} of {n} failed or without a finite validation score)"
    return (f"no trial finished ok: {counts['n_diverged']} diverged, {counts['n_failed']} failed or without a "
            f"finite validation score (of {n})")


def select(trials: list[dict]) -> dict:
    """The selection among ``trials`` (module docstring): the best validation score among the ok
    trials, ties to the faster then the lower index; "no trial ok" with the reason where none is."""
    read = [_read(t) for t in trials]
    indices = [t["trial"] for t in read]
    if not all(isinstance(k, int) and not isinstance(k, bool) for k in indices) or len(set(indices)) < len(indices):
        raise ValueError(f"trials: each needs its own integer index 'trial', got {indices!r}")
    ok = [t for t in read if t["status"] == "ok" and _number(t["best_val_metric"]) is not None]
    counts = _counts(read, ok)
    if not ok:
        return {"status": "no trial ok", "reason": _reason(counts), **counts}
    metric = _metric_name(ok)
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0

    def rank(t: dict) -> tuple:
        time = _number(t["train_time_s"])
        return (sign * _number(t["best_val_metric"]), math.inf if time is None else time, t["trial"])

    best = min(ok, key=rank)
    scores = [_number(t["best_val_metric"]) for t in ok]
    return {"status": "selected", "trial": best["trial"], "point": dict(best["point"] or {}),
            "best_val_metric": _number(best["best_val_metric"]), "metric_name": metric,
            "train_time_s": _number(best["train_time_s"]), "rank_of": len(ok),
            "val_metric_min": min(scores), "val_metric_max": max(scores),
            "val_metric_median": statistics.median(scores), **counts}
