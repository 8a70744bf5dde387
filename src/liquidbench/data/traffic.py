"""Metro Interstate Traffic Volume (UCI data set 492), preprocessed as in the LTC paper's code.

Per hour, 7 features: holiday flag (1.0 where the `holiday` column reads "None", as the paper's
code intended), temperature minus its mean over the whole series, rain_1h, snow_1h, clouds_all,
weekday (Monday 0), sin(hour·π/24). Target: traffic_volume standardised over the whole series.
Windows of ``seq_len`` steps every ``stride`` steps (starts 0, stride, ... < n - seq_len, as the
reference), shuffled with ``numpy.random.RandomState(seed)``; the first ``val_fraction`` of them
(rounded down) validate, the next ``test_fraction`` test, the rest train. On the original file this
gives 12,043 sequences: 1,204 validation, 1,806 test and 9,033 training. Per-step regression (MSE in
standardised units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .store import save_dataset

DEFAULTS = {"seq_len": 32, "stride": 4, "seed": 23489, "val_fraction": 0.1, "test_fraction": 0.15}
FEATURES = ["holiday", "temp", "rain_1h", "snow_1h", "clouds_all", "weekday", "hour_sin"]
NUMERIC = ["temp", "rain_1h", "snow_1h", "clouds_all", "traffic_volume"]
COLUMNS = ["holiday", *NUMERIC[:-1], "date_time", "traffic_volume"]
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def read_csv(path: str | Path) -> "pd.DataFrame":
    """The raw table (plain or gzip CSV) with every column the protocol needs checked."""
    import pandas as pd  # lazily: training jobs import this package too
    path = Path(path)
    try:
        # "None" in `holiday` is a value here, not a missing one.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"traffic data {path}: cannot read it as CSV ({exc})") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"traffic data {path}: missing column(s) {missing}; expected {COLUMNS}, found {list(df.columns)}"
        )
    if len(df) == 0:
        raise ValueError(f"traffic data {path}: no data rows")
    return df


def _numeric(df: "pd.DataFrame", column: str, path: Path) -> np.ndarray:
    import pandas as pd  # lazily: training jobs import this package too
    values = pd.to_numeric(df[column].str.strip(), errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"traffic data {path}: column '{column}' row {row + 2} holds {df[column].iloc[row]!r}, "
            "expected a finite number"
        )
    return values.astype(np.float32)


def load_series(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 7) and standardised target (n,), float32, for the whole series."""
    import pandas as pd  # lazily: training jobs import this package too
    path = Path(path)
    df = read_csv(path)
    values = {c: _numeric(df, c, path) for c in NUMERIC}
    try:
        when = pd.to_datetime(df["date_time"], format=DATE_FORMAT)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"traffic data {path}: column 'date_time' must read like 2012-10-02 09:00:00 ({exc})") from exc
    holiday = (df["holiday"].to_numpy() == "None").astype(np.float32)
    temp = values["temp"] - values["temp"].mean()
    weekday = when.dt.day_of_week.to_numpy().astype(np.float32)
    hour_sin = np.sin(when.dt.hour.to_numpy().astype(np.float32) * np.pi / 24).astype(np.float32)
    x = np.stack([holiday, temp, values["rain_1h"], values["snow_1h"], values["clouds_all"], weekday, hour_sin], -1)
    y = values["traffic_volume"]
    std = y.std()
    if not std > 0:
        raise ValueError(f"traffic data {path}: 'traffic_volume' is constant, it cannot be standardised")
    y = (y - y.mean()) / std
    return x.astype(np.float32), y.astype(np.float32)


def windows(n: int, seq_len: int, stride: int) -> np.ndarray:
    """Window start indices, as the reference: range(0, n - seq_len, stride)."""
    return np.arange(0, n - seq_len, stride)


def split_indices(n: int, seed: int, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    perm = np.random.RandomState(seed).permutation(n)
    n_val, n_test = int(val_fraction * n), int(test_fraction * n)
    return {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}


def prepare(params: dict, out_dir: str | Path, raw: str | Path | None = None, **_sources) -> dict:
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"traffic data set: unknown parameter(s) {sorted(unknown)}, expected {sorted(DEFAULTS)}")
    if raw is None:
        raise ValueError("traffic data set: the downloaded CSV is needed (--raw FILE)")
    p = {**DEFAULTS, **params}
    x, y = load_series(raw)
    starts = windows(len(x), p["seq_len"], p["stride"])
    idx = split_indices(len(starts), p["seed"], p["val_fraction"], p["test_fraction"])
    if any(len(v) == 0 for v in idx.values()):
        raise ValueError(
            f"traffic data set: {len(x)} rows give {len(starts)} sequences, too few for train/val/test "
            f"({ {k: len(v) for k, v in idx.items()} })"
        )
    offsets = np.arange(p["seq_len"])
    splits = {}
    for name, which in idx.items():
        rows = starts[which][:, None] + offsets
        splits[name] = {"x": x[rows], "y": y[rows][..., None]}
    info = {
        "dataset": "traffic",
        "protocol": "ltc_paper",
        "features": FEATURES,
        "target": "traffic_volume (standardised)",
        "n_rows": len(x),
        "n_sequences": len(starts),
        "params": p,
    }
    return save_dataset(out_dir, splits, "regression_per_step", info)
