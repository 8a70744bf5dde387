"""Metro Interstate Traffic Volume (UCI data set 492), preprocessed as in the LTC paper's code.

Per hour, 7 features: holiday flag (1.0 where the `holiday` column reads "None", as the paper's
code intended), temperature minus its mean over the whole series, rain_1h, snow_1h, clouds_all,
weekday (Monday 0), sin(hour·π/24). Target: traffic_volume standardised over the whole series.
Windows of ``seq_len`` steps every ``stride`` steps (starts 0, stride, ... < n - seq_len, as the
reference), shuffled with ``numpy.random.RandomState(seed)``; the first ``val_fraction`` of them
(rounded down) validate, the next ``test_fraction`` test, the rest train. On the original file this
gives 12,043 sequences: 1,204 validation, 1,806 test and 9,033 training. Per-step regression (MSE in
standardised units).

Two arrangements of those windows (``protocol``):

- ``current``: the reference code since its commit a0bede1 (August 2021, "bugfix: traffic dataset
  transposed axis"): each window is one sequence of ``seq_len`` steps and the permutation splits
  whole windows (the counts above).
- ``prefix_2020``: the reference code before that commit, which the paper (2020) predates. The
  window matrix (``seq_len`` x windows) was stacked along the wrong axis, so the arrangement is
  transposed: sequence j (0 <= j < ``seq_len``) is the series sampled every ``stride`` hours from
  row j, one step per window (x[starts + j], 12,043 steps on the original file), and the seeded
  permutation of ``seq_len`` splits these *positions inside the windows*: of 32, int(0.1·32) = 3
  validate, int(0.15·32) = 4 test and 25 train. Sequences j and j + stride are the same samples
  shifted by one step, so the splits share almost all of their data. Kept to reproduce the
  published figures, not as a sound protocol.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .params import from_mapping
from .store import save_dataset

PROTOCOLS = ("current", "prefix_2020")
FEATURES = ["holiday", "temp", "rain_1h", "snow_1h", "clouds_all", "weekday", "hour_sin"]
NUMERIC = ["temp", "rain_1h", "snow_1h", "clouds_all", "traffic_volume"]
COLUMNS = ["holiday", *NUMERIC[:-1], "date_time", "traffic_volume"]
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class TrafficParams:
    """The parameters of the traffic data set (module docstring), checked when built. The field
    defaults are the data set's defaults; the field order is the order meta.json records."""

    protocol: str = "current"
    seq_len: int = 32
    stride: int = 4
    seed: int = 23489
    val_fraction: float = 0.1
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"traffic data set: protocol '{self.protocol}' is unknown, expected one of {list(PROTOCOLS)}"
            )

    @classmethod
    def from_params(cls, params: dict | TrafficParams) -> TrafficParams:
        """The checked parameters of a study file's ``params`` (an instance is taken as it is)."""
        return params if isinstance(params, cls) else from_mapping(cls, params, "traffic data set")


# the defaults as a mapping, for liquidbench.data.expected_params and the published figures' protocol
DEFAULTS = asdict(TrafficParams())


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


def arrange(x: np.ndarray, y: np.ndarray,
            params: dict | TrafficParams) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """The three splits of the series (x (n, F), y (n,)) under the protocol of ``params``, and how
    many sequences were permuted (windows for ``current``, positions in a window for ``prefix_2020``)."""
    p = TrafficParams.from_params(params)
    starts = windows(len(x), p.seq_len, p.stride)
    offsets = np.arange(p.seq_len)
    if p.protocol == "current":
        rows = starts[:, None] + offsets  # (windows, seq_len): one window per sequence
    else:
        rows = offsets[:, None] + starts  # (seq_len, windows): one position of every window per sequence
    idx = split_indices(len(rows), p.seed, p.val_fraction, p.test_fraction)
    if any(len(v) == 0 for v in idx.values()):
        raise ValueError(
            f"traffic data set ({p.protocol}): {len(x)} rows give {len(rows)} sequences, too few for "
            f"train/val/test ({ {k: len(v) for k, v in idx.items()} })"
        )
    return {name: {"x": x[rows[which]], "y": y[rows[which]][..., None]} for name, which in idx.items()}, len(rows)


def prepare(params: dict | TrafficParams, out_dir: str | Path, raw: str | Path | None = None, **_sources) -> dict:
    p = TrafficParams.from_params(params)
    if raw is None:
        raise ValueError("traffic data set: the downloaded CSV is needed (--raw FILE)")
    x, y = load_series(raw)
    splits, n_sequences = arrange(x, y, p)
    info = {
        "dataset": "traffic",
        "protocol": p.protocol,
        "features": FEATURES,
        "target": "traffic_volume (standardised)",
        "n_rows": len(x),
        "n_windows": len(windows(len(x), p.seq_len, p.stride)),
        "n_sequences": n_sequences,
        "params": asdict(p),
    }
    return save_dataset(out_dir, splits, "regression_per_step", info)
