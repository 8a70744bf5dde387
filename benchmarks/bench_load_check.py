"""Loading a prepared data set with and without the check against meta.json's hashes.

Three splits of UCI HAR inertial's full size (10,299 windows x 128 steps x 9 channels, float32;
random values) written by save_dataset; plain np.load against load_split (which also hashes every
array). Interleaved, median of 7 loads each. The check should cost well under a job's start-up
(about 5 s: docs/measurements.md).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from liquidbench.data.store import SPLITS, load_split, save_dataset

    sizes = {"train": 5881, "val": 1471, "test": 2947}
    rng = np.random.default_rng(0)
    splits = {s: {"x": rng.normal(size=(n, 128, 9)).astype(np.float32), "y": rng.integers(0, 6, n)}
              for s, n in sizes.items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "har"
        save_dataset(folder, splits, "classification_per_sequence", {})

        def plain():
            for s in SPLITS:
                with np.load(folder / f"{s}.npz") as npz:
                    {k: npz[k] for k in npz.files}

        def checked():
            for s in SPLITS:
                load_split(folder, s)

        times = {"plain": [], "checked": []}
        for i in range(7):
            order = [("plain", plain), ("checked", checked)]
            for name, fn in order if i % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    plain_ms, checked_ms = (1e3 * float(np.median(times[k])) for k in ("plain", "checked"))
    mib = sum(n * 128 * 9 * 4 for n in sizes.values()) / 2**20
    print(f"{mib:.1f} MiB of x: np.load {plain_ms:.1f} ms, load_split (hash checked) {checked_ms:.1f} ms, "
          f"ratio {checked_ms / plain_ms:.2f} (target: well under a job's ~5 s start-up)")


if __name__ == "__main__":
    main()
