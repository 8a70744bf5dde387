"""Whether two runs of a study made the same results, times and environment aside.

    python tests/same_outputs.py BEFORE AFTER

BEFORE and AFTER are study roots (the folders holding results/), e.g. the smoke study run at two
commits. Compared: every run's history.csv without its time column; every metrics.json without
its times, telemetry and ``env`` (parameters, sizes, losses, metrics and ``final_params_sha256``
included); every evaluation.json byte for byte; every table's CSV without its columns of times and
machine readings (its Markdown, LaTeX and HTML render the same values, those included). Prints one
line per difference and exits 1 if there is any, else prints what it compared and exits 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

# metrics.json keys that a rerun of the same computation changes: times, samples of the machine
VOLATILE = {"env", "telemetry", "train_time_s", "warmup_time_s", "steady_epoch_time_s", "epoch_times_s",
            "throughput_samples_per_s", "step_time_median_s", "step_time_p95_s", "comm_fraction", "comm_probe",
            "peak_host_rss_mb"}
# a table column is a time (or a figure made from one) when its name says so
TIME_WORDS = ("time", "gmean", "throughput", "speedup", "efficiency", "rss", "energy", "power", "util", "mem",
              "knee", "comm", "faster", "telemetry", "versions", "host", "commit", "date")
# a claim decided on times (its evidence a time ratio or a speedup): its verdict is a time too
TIMED_CLAIM = ("time ratio", "speedup")


def timeless(columns) -> list[str]:
    return [c for c in columns if not any(w in c.lower() for w in TIME_WORDS)]


def differences(before: Path, after: Path) -> tuple[list[str], int]:
    diffs, compared = [], 0
    runs = sorted(p.relative_to(before) for p in (before / "results/runs").rglob("*") if p.is_file())
    for rel in runs:
        a, b = before / rel, after / rel
        if rel.name not in ("history.csv", "metrics.json", "evaluation.json"):
            continue
        if not b.exists():
            diffs.append(f"{rel}: missing after")
            continue
        compared += 1
        if rel.name == "history.csv":
            x, y = (pd.read_csv(p).drop(columns=["epoch_time_s"]) for p in (a, b))
            if not x.equals(y):
                diffs.append(f"{rel}: differs")
        elif rel.name == "metrics.json":
            x, y = ({k: v for k, v in json.loads(p.read_text()).items() if k not in VOLATILE} for p in (a, b))
            diffs += [f"{rel}: {k}: {x.get(k)!r} before, {y.get(k)!r} after"
                      for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif a.read_bytes() != b.read_bytes():
            diffs.append(f"{rel}: differs")
    for a in sorted((before / "results/tables").glob("*.csv")):
        rel, b = a.relative_to(before), after / a.relative_to(before)
        if not b.exists():
            diffs.append(f"{rel}: missing after")
            continue
        compared += 1
        x, y = pd.read_csv(a), pd.read_csv(b)
        if "evidence" in x and len(x) == len(y):  # the claims: timed ones only by what they claim
            timed = x["evidence"].fillna("").str.contains("|".join(TIMED_CLAIM))
            x, y = x[~timed].reset_index(drop=True), y[~timed.to_numpy()].reset_index(drop=True)
        keep = timeless(x.columns)
        if list(x.columns) != list(y.columns) or not x[keep].equals(y[keep]):
            diffs.append(f"{rel}: differs in columns {[c for c in keep if c not in y or not x[c].equals(y[c])]}")
    return diffs, compared


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0] + "\nusage: python tests/same_outputs.py BEFORE AFTER", file=sys.stderr)
        return 2
    diffs, compared = differences(Path(argv[0]), Path(argv[1]))
    for line in diffs:
        print(line)
    if diffs:
        return 1
    print(f"same outputs: {compared} files compared (histories, metrics, evaluations and tables, times aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
