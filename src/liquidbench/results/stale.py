"""After a failed job, no table or figure that depends on it is left looking current.

Snakemake removes the outputs of the job that failed, but not those of the steps after it, which
stay from an earlier run: a summary made from runs that have since changed would look like the
summary of the runs as they are. The workflow's ``onerror`` hands this module the steps from the
runs to the figures, each as (outputs, inputs), and it removes every output that no longer follows
from what it is made of: one of its inputs is missing, newer than it is, or stale itself.
Snakemake's own records cannot tell this: its rerun triggers decide what to run, not what to
delete, and they are not consulted once a job has failed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

Step = tuple[Sequence[str], Sequence[str]]  # (outputs, inputs)


def stale_outputs(steps: Sequence[Step]) -> list[str]:
    """The outputs of ``steps`` that no longer follow from their inputs (see the module's text)."""
    stale: set[str] = set()
    changed = True
    while changed:
        changed = False
        for outputs, inputs in steps:
            if set(outputs) <= stale:
                continue
            present = [o for o in outputs if os.path.exists(o)]
            oldest = min((os.path.getmtime(o) for o in present), default=None)
            if (
                len(present) < len(outputs)
                or any(i in stale or not os.path.exists(i) for i in inputs)
                or any(os.path.getmtime(i) > oldest for i in inputs)
            ):
                stale.update(outputs)
                changed = True
    return sorted(stale)


def remove_stale(steps: Sequence[Step]) -> list[str]:
    """Remove the stale outputs that exist; the paths removed."""
    removed = [path for path in stale_outputs(steps) if os.path.exists(path)]
    for path in removed:
        os.remove(path)
    return removed
