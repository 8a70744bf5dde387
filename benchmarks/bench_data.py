"""Preparing the real data sets without download (target: traffic in a few seconds).

Traffic: the real Metro Interstate Traffic file from ../shared/data, LTC-paper protocol. UCI HAR:
an archive of the original size (7,352 training and 2,947 test windows, random values) built with
tests/har_archive.py, both protocols. Building the archive is not timed. Wall time of the preparer
(read, check, cut, write the three splits), best of a few repetitions.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAFFIC = REPO.parent / "shared/data/metro_interstate_traffic/Metro_Interstate_Traffic_Volume.csv.gz"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    from liquidbench.data import har, traffic

    sys.path.insert(0, str(REPO / "tests"))
    from har_archive import build_har_archive

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        meta = {}

        def run_traffic():
            meta["traffic"] = traffic.prepare({}, tmp / "traffic", raw=TRAFFIC)

        rows.append(("traffic (real file)", best_of(run_traffic, 3), meta["traffic"]["n_sequences"], "< 5 s"))
        archive = build_har_archive(tmp / "UCI HAR Dataset.zip", n_train=7352, n_test=2947,
                                    train_subjects=tuple(range(1, 22)), test_subjects=tuple(range(22, 31)))
        for protocol in ("features561", "inertial"):
            def run_har():
                meta[protocol] = har.prepare({"protocol": protocol}, tmp / protocol, raw=archive)

            seconds = best_of(run_har, 2)
            n = sum(s["x"][0] for s in meta[protocol]["shapes"].values())
            rows.append((f"har {protocol} (original size)", seconds, n, "< 30 s"))
    print(f"{'data set':<32} {'seconds':>8} {'sequences':>10}  target")
    for name, seconds, n, target in rows:
        print(f"{name:<32} {seconds:>8.2f} {n:>10}  {target}")


if __name__ == "__main__":
    main()
