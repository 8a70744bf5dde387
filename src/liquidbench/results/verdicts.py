"""The one rule that turns comparisons into a claim's verdict, shared by every table that states
claims (results/claims.py, the evaluation claims of results/robustness.py, the published table's
agreement claims of results/published.py); those modules import it from here, none from another.

A comparison is (estimate, interval low, interval high, n per side, null value, direction). It
*supports* its claim when the whole 95 % interval lies on the claimed side of the null, *contradicts*
it when the interval lies wholly on the other side, is *not significant* when the interval contains
the null, and is *undecidable* when a side has fewer than ``min_seeds`` ok runs. A claim is ``false``
as soon as one comparison contradicts it, ``true`` when every comparison supports it,
``undecidable`` when some comparison lacks the seeds (or none exists), and otherwise ``not
significant at 95 %``.

The settings of that rule (config ``results.claims``) are ``ClaimsSettings``: here, below both
tables that read them (results/claims.py, results/robustness.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

TRUE, FALSE, UNDECIDABLE, NOT_SIGNIFICANT = "true", "false", "undecidable", "not significant at 95 %"
VERDICTS = (TRUE, FALSE, NOT_SIGNIFICANT, UNDECIDABLE)


# ok seeds per side for a verdict where no study file says (`liquidbench compare --min-seeds`); a
# study's results.claims.min_seeds has the same schema default (tests/test_reference.py checks it)
MIN_SEEDS = 2


@dataclass(frozen=True, kw_only=True)
class ClaimsSettings:
    """Config ``results.claims`` (defaults in the config schema), as the command line's ``--settings``
    JSON gives it: read once, checked, so that a misspelt key is refused instead of read as absent."""

    min_seeds: int  # ok seeds per side for a comparison to be decided
    metric_tolerance_std: float  # non-inferiority margin of the metric claims, in pooled stds
    speedup_min: float  # DDP reduces time when the speedup's interval lies above this

    @classmethod
    def from_dict(cls, settings: dict) -> ClaimsSettings:
        """The settings of a JSON object; a missing or unknown key is refused, naming it and the keys
        expected."""
        expected = [f.name for f in fields(cls)]
        if not isinstance(settings, dict):
            raise ValueError(f"claims settings: expected a mapping with {expected}, got {settings!r}")
        missing = [key for key in expected if key not in settings]
        if missing:
            raise ValueError(f"claims settings: missing {missing}, expected {expected}")
        unknown = [key for key in settings if key not in expected]
        if unknown:
            raise ValueError(f"claims settings: unknown {unknown}, expected {expected}")
        return cls(**settings)


@dataclass(frozen=True)
class Comparison:
    """One comparison of a claim: ``estimate`` [``low``, ``high``] (95 %) against ``null``; the claim
    holds on this comparison when the quantity is ``direction`` (less / greater) than the null."""

    name: str
    quantity: str  # what estimate is, e.g. "time ratio cfc/ltc"
    estimate: float
    low: float
    high: float
    n: tuple[int, ...]  # ok seeds of each side
    null: float
    direction: str  # "less" or "greater"
    detail: str = ""  # more numbers for the evidence (means, the metric's direction, ...)
    moot: bool = False  # what the comparison rests on is itself not significant: it cannot decide

    def outcome(self, min_seeds: int) -> str:
        """supports, contradicts, not significant or too few seeds (see the module's rule)."""
        if min(self.n) < min_seeds or not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "too few seeds"
        if self.moot:
            return "not significant"
        below, above = self.high < self.null, self.low > self.null
        if not (below or above):
            return "not significant"
        return "supports" if below == (self.direction == "less") else "contradicts"

    def evidence(self, min_seeds: int) -> str:
        seeds = "/".join(map(str, self.n))
        if min(self.n) < min_seeds:
            return f"{self.name}: too few ok seeds ({', '.join(map(str, self.n))} < {min_seeds})"
        side = "<" if self.direction == "less" else ">"
        from .tables import num  # pandas: not at import, the command line reads MIN_SEEDS from here

        text = (f"{self.name}: {self.quantity} {num(self.estimate, 3)} [{num(self.low, 3)}, {num(self.high, 3)}] "
                f"n={seeds}, claim needs {side} {num(self.null, 3)}: {self.outcome(min_seeds)}")
        return text + (f" ({self.detail})" if self.detail else "")


def verdict(outcomes: list[str]) -> str:
    """The claim's verdict from its comparisons' outcomes (the module's rule)."""
    if "contradicts" in outcomes:
        return FALSE
    if outcomes and all(o == "supports" for o in outcomes):
        return TRUE
    if not outcomes or "too few seeds" in outcomes:
        return UNDECIDABLE
    return NOT_SIGNIFICANT


def verdict_of_decisions(results: list[bool | None]) -> str:
    """The verdict of comparisons decided elsewhere (True: supports, False: contradicts, None: too few
    seeds), e.g. the published table's."""
    return verdict(["too few seeds" if r is None else "supports" if r else "contradicts" for r in results])


