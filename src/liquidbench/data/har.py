"""UCI HAR (Human Activity Recognition Using Smartphones, UCI data set 240), two protocols.

The source is the original ``UCI HAR Dataset.zip``; it is extracted safely (see archive.py) into a
temporary directory and read from the original layout (whitespace-separated text files).

- ``features561`` (the LTC paper's protocol): the rows of ``X_train.txt`` (561 engineered features
  each) are time steps; sequences of ``seq_len`` rows start every ``train_stride`` rows in the
  training file and every ``test_stride`` rows in the test file (starts < n - seq_len, as the
  reference); training sequences are shuffled with ``numpy.random.RandomState(seed)`` and the first
  ``val_fraction`` of them (rounded down) validate. Labels ``y - 1`` per step. On the original data:
  7,336 training sequences (733 validation, 6,603 train) and 367 test sequences.
- ``inertial``: the 9 raw inertial signals, one 128-step sequence per window and one label per
  sequence; whole training subjects (``val_fraction`` of them, drawn with ``seed``) validate, so no
  subject is in both; each channel is standardised with the mean and std of the training split only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .archive import safe_extract
from .store import save_dataset

ROOT = "UCI HAR Dataset"
SIGNALS = [f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"]
DEFAULT_PROTOCOL = "features561"
PROTOCOLS = {
    "features561": {"seq_len": 16, "train_stride": 1, "test_stride": 8, "val_fraction": 0.1, "seed": 893429},
    "inertial": {"val_fraction": 0.2, "seed": 0},
}


def read_table(path: Path, columns: int | None = None) -> np.ndarray:
    """A whitespace-separated numeric text file as float64 (rows, columns), checked."""
    import pandas as pd  # lazily: training jobs import this package too
    if not path.is_file():
        raise ValueError(f"UCI HAR: file '{path.name}' is missing (expected at {path})")
    try:
        values = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64).to_numpy()
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"UCI HAR: {path} is empty") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f"UCI HAR: {path} has rows of different lengths ({exc})") from exc
    except ValueError:
        values = None  # a cell that is not a number: find it below for the message
    if values is None or not np.isfinite(values).all():
        text = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False)
        parsed = text.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        row, col = map(int, np.argwhere(~np.isfinite(parsed))[0])
        raise ValueError(
            f"UCI HAR: {path} row {row + 1} column {col + 1} holds {text.iat[row, col]!r}, expected a finite number"
        )
    if columns is not None and values.shape[1] != columns:
        raise ValueError(f"UCI HAR: {path} has {values.shape[1]} columns, expected {columns}")
    return values


def read_labels(path: Path, n_rows: int, data_file: str, kind: str) -> np.ndarray:
    values = read_table(path, columns=1)[:, 0]
    if len(values) != n_rows:
        raise ValueError(f"UCI HAR: {path.name} has {len(values)} {kind}, but {data_file} has {n_rows} rows")
    if (values != np.round(values)).any():
        raise ValueError(f"UCI HAR: {path} holds non-integer {kind}")
    return values.astype(np.int64)


def activity_labels(root: Path) -> list[str]:
    path = root / "activity_labels.txt"
    if not path.is_file():
        raise ValueError(f"UCI HAR: file 'activity_labels.txt' is missing (expected at {path})")
    rows = [line.split(None, 1) for line in path.read_text().splitlines() if line.strip()]
    ids = [int(r[0]) for r in rows]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"UCI HAR: {path} must number the activities 1..n in order, got {ids}")
    return [r[1].strip() for r in rows]


def feature_names(root: Path) -> list[str]:
    path = root / "features.txt"
    if not path.is_file():
        raise ValueError(f"UCI HAR: file 'features.txt' is missing (expected at {path})")
    return [line.split(None, 1)[1].strip() for line in path.read_text().splitlines() if line.strip()]


def _check_classes(y: np.ndarray, n_classes: int, path: str) -> np.ndarray:
    if y.min() < 1 or y.max() > n_classes:
        raise ValueError(f"UCI HAR: {path} holds labels outside 1..{n_classes} (activity_labels.txt)")
    return y - 1


def windows(n: int, seq_len: int, stride: int) -> np.ndarray:
    """Window start indices, as the reference: range(0, n - seq_len, stride)."""
    return np.arange(0, n - seq_len, stride)


def features561(root: Path, p: dict, n_classes: int) -> tuple[dict, dict]:
    n_features = len(feature_names(root))
    cut = {}
    for split, stride in (("train", p["train_stride"]), ("test", p["test_stride"])):
        x = read_table(root / split / f"X_{split}.txt", columns=n_features)
        y = read_labels(root / split / f"y_{split}.txt", len(x), f"X_{split}.txt", "labels")
        y = _check_classes(y, n_classes, f"y_{split}.txt")
        starts = windows(len(x), p["seq_len"], stride)
        if len(starts) == 0:
            raise ValueError(f"UCI HAR: X_{split}.txt has {len(x)} rows, too few for sequences of {p['seq_len']}")
        rows = starts[:, None] + np.arange(p["seq_len"])
        cut[split] = {"x": x[rows], "y": y[rows]}
    n = len(cut["train"]["x"])
    perm = np.random.RandomState(p["seed"]).permutation(n)
    n_val = int(p["val_fraction"] * n)
    if n_val < 1 or n_val >= n:
        raise ValueError(f"UCI HAR: {n} training sequences cannot give a validation split of {p['val_fraction']}")
    splits = {
        "val": {k: v[perm[:n_val]] for k, v in cut["train"].items()},
        "train": {k: v[perm[n_val:]] for k, v in cut["train"].items()},
        "test": cut["test"],
    }
    return splits, {"n_features561": n_features}


def inertial(root: Path, p: dict, n_classes: int) -> tuple[dict, dict]:
    data = {}
    for split in ("train", "test"):
        channels = []
        for signal in SIGNALS:
            name = f"{signal}_{split}.txt"
            channels.append(read_table(root / split / "Inertial Signals" / name))
            if channels[-1].shape != channels[0].shape:
                raise ValueError(
                    f"UCI HAR: {name} has shape {channels[-1].shape}, expected {channels[0].shape} "
                    f"as {SIGNALS[0]}_{split}.txt"
                )
        x = np.stack(channels, axis=-1)
        first = f"{SIGNALS[0]}_{split}.txt"
        y = read_labels(root / split / f"y_{split}.txt", len(x), first, "labels")
        subjects = read_labels(root / split / f"subject_{split}.txt", len(x), first, "subject ids")
        data[split] = (x, _check_classes(y, n_classes, f"y_{split}.txt"), subjects)
    x, y, subjects = data["train"]
    people = np.unique(subjects)
    n_val = int(round(p["val_fraction"] * len(people)))
    if n_val < 1 or n_val >= len(people):
        raise ValueError(
            f"UCI HAR: {len(people)} training subjects cannot give a subject-disjoint validation split "
            f"of {p['val_fraction']}"
        )
    val_people = np.sort(np.random.RandomState(p["seed"]).permutation(people)[:n_val])
    is_val = np.isin(subjects, val_people)
    parts = {"train": (x[~is_val], y[~is_val], subjects[~is_val]), "val": (x[is_val], y[is_val], subjects[is_val]),
             "test": data["test"]}
    flat = parts["train"][0].reshape(-1, len(SIGNALS))
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    if (std == 0).any():
        raise ValueError(f"UCI HAR: inertial channel(s) {[SIGNALS[i] for i in np.flatnonzero(std == 0)]} are constant")
    splits = {name: {"x": (xs - mean) / std, "y": ys} for name, (xs, ys, _) in parts.items()}
    info = {
        "channels": SIGNALS,
        "channel_mean": mean.tolist(),
        "channel_std": std.tolist(),
        "subjects": {name: sorted(map(int, np.unique(s))) for name, (_, _, s) in parts.items()},
    }
    return splits, info


def prepare(params: dict, out_dir: str | Path, raw: str | Path | None = None, **_sources) -> dict:
    protocol = params.get("protocol", DEFAULT_PROTOCOL)
    if protocol not in PROTOCOLS:
        raise ValueError(f"UCI HAR: protocol '{protocol}' is unknown, expected one of {sorted(PROTOCOLS)}")
    rest = {k: v for k, v in params.items() if k != "protocol"}
    unknown = set(rest) - set(PROTOCOLS[protocol])
    if unknown:
        raise ValueError(
            f"UCI HAR ({protocol}): unknown parameter(s) {sorted(unknown)}, expected {sorted(PROTOCOLS[protocol])}"
        )
    if raw is None:
        raise ValueError("UCI HAR: the downloaded archive is needed (--raw 'UCI HAR Dataset.zip')")
    p = {**PROTOCOLS[protocol], **rest}
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".har-extract.", dir=out_dir.parent) as tmp:
        root = safe_extract(raw, Path(tmp) / "archive") / ROOT
        if not root.is_dir():
            raise ValueError(f"UCI HAR: archive {raw} has no top-level folder '{ROOT}/'")
        classes = activity_labels(root)
        build = features561 if protocol == "features561" else inertial
        splits, extra = build(root, p, len(classes))
    task = "classification_per_step" if protocol == "features561" else "classification_per_sequence"
    info = {"dataset": "uci_har", "protocol": protocol, "params": p, "classes": classes,
            "n_outputs": len(classes), **extra}
    return save_dataset(out_dir, splits, task, info)
