"""UCI HAR (Human Activity Recognition Using Smartphones, UCI data set 240), two protocols.

The source is the folder ``UCI HAR Dataset/`` of the original ``UCI HAR Dataset.zip``: either that
folder (as the workflow fetches it, verified member by member against a manifest: manifest.py) or
a zip archive holding it, of which only the members the protocol reads are extracted safely
(archive.py: with limits on sizes and compression ratio) into a temporary directory.
The files keep the original layout (whitespace-separated text). Each protocol states the members
it needs (``NEEDS``); one that the copy lacks fails with a message naming it, the protocol and
what to do (e.g. a copy without the 561-feature files still serves the inertial protocol).

- ``features561`` (the LTC paper's protocol): the rows of ``X_train.txt`` (561 engineered features
  each) are time steps; sequences of ``seq_len`` rows start every ``train_stride`` rows in the
  training file and every ``test_stride`` rows in the test file (starts < n - seq_len, as the
  reference); training sequences are shuffled with ``numpy.random.RandomState(seed)`` and the first
  ``val_fraction`` of them (rounded down) validate. Labels ``y - 1`` per step. On the original data:
  7,336 training sequences (733 validation, 6,603 train) and 367 test sequences.
- ``inertial``: the 9 raw inertial signals, one 128-step sequence per window and one label per
  sequence; whole training subjects (``val_fraction`` of them, drawn with ``seed``) validate, so no
  subject is in both; each channel is standardised with the mean and std of the training split only.
  Optional: ``subjects`` keeps only the windows of these subject ids (1..30; the original puts 21
  in the training and 9 in the test file), ``downsample`` averages each ``k`` consecutive readings
  (128 / k steps at 50 / k Hz), for models that are slow on long sequences.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .archive import safe_extract
from .params import from_mapping
from .store import save_dataset

ROOT = "UCI HAR Dataset"
URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00240/UCI%20HAR%20Dataset.zip"
SIGNALS = [f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"]
SUBJECT_IDS = range(1, 31)
DEFAULT_PROTOCOL = "features561"


@dataclass(frozen=True)
class Features561Params:
    """The parameters of the features561 protocol (module docstring); the field defaults are its
    defaults, the field order the order meta.json records."""

    seq_len: int = 16
    train_stride: int = 1
    test_stride: int = 8
    val_fraction: float = 0.1
    seed: int = 893429


@dataclass(frozen=True)
class InertialParams:
    """The parameters of the inertial protocol (module docstring); the field defaults are its
    defaults, the field order the order meta.json records. ``subjects`` and ``downsample`` are
    checked against the data they select from, when those are read."""

    val_fraction: float = 0.2
    seed: int = 0
    subjects: list[int] | None = None
    downsample: int = 1


PROTOCOL_PARAMS = {"features561": Features561Params, "inertial": InertialParams}
# each protocol's defaults as a mapping, for liquidbench.data.expected_params
PROTOCOLS = {protocol: asdict(cls()) for protocol, cls in PROTOCOL_PARAMS.items()}


@dataclass(frozen=True)
class HarParams:
    """A UCI HAR data set's ``params``, checked: the protocol (``protocol``, default
    ``DEFAULT_PROTOCOL``) and that protocol's parameters."""

    protocol: str
    settings: Features561Params | InertialParams

    @classmethod
    def from_params(cls, params: dict | HarParams) -> HarParams:
        """The checked parameters of a study file's ``params`` (an instance is taken as it is)."""
        if isinstance(params, cls):
            return params
        rest = dict(params)
        protocol = rest.pop("protocol", DEFAULT_PROTOCOL)
        if protocol not in PROTOCOL_PARAMS:
            raise ValueError(f"UCI HAR: protocol '{protocol}' is unknown, expected one of {sorted(PROTOCOLS)}")
        return cls(protocol, from_mapping(PROTOCOL_PARAMS[protocol], rest, f"UCI HAR ({protocol})"))


# the members (below ROOT/) each protocol reads
NEEDS = {
    "features561": ["activity_labels.txt", "features.txt"]
    + [f"{split}/{kind}_{split}.txt" for split in ("train", "test") for kind in ("X", "y")],
    "inertial": ["activity_labels.txt"]
    + [f"{split}/{kind}_{split}.txt" for split in ("train", "test") for kind in ("y", "subject")]
    + [f"{split}/Inertial Signals/{signal}_{split}.txt" for split in ("train", "test") for signal in SIGNALS],
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


def _check_subjects(subjects: np.ndarray, path: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isin(subjects, SUBJECT_IDS))
    if len(bad):
        raise ValueError(
            f"UCI HAR: {path} row {bad[0] + 1} holds subject id {subjects[bad[0]]}, expected "
            f"{SUBJECT_IDS.start}..{SUBJECT_IDS.stop - 1} (the 30 volunteers)"
        )
    return subjects


def _check_classes(y: np.ndarray, n_classes: int, path: str) -> np.ndarray:
    if y.min() < 1 or y.max() > n_classes:
        raise ValueError(f"UCI HAR: {path} holds labels outside 1..{n_classes} (activity_labels.txt)")
    return y - 1


def windows(n: int, seq_len: int, stride: int) -> np.ndarray:
    """Window start indices, as the reference: range(0, n - seq_len, stride)."""
    return np.arange(0, n - seq_len, stride)


def features561(root: Path, p: Features561Params, n_classes: int) -> tuple[dict, dict]:
    n_features = len(feature_names(root))
    cut = {}
    for split, stride in (("train", p.train_stride), ("test", p.test_stride)):
        x = read_table(root / split / f"X_{split}.txt", columns=n_features)
        y = read_labels(root / split / f"y_{split}.txt", len(x), f"X_{split}.txt", "labels")
        y = _check_classes(y, n_classes, f"y_{split}.txt")
        starts = windows(len(x), p.seq_len, stride)
        if len(starts) == 0:
            raise ValueError(f"UCI HAR: X_{split}.txt has {len(x)} rows, too few for sequences of {p.seq_len}")
        rows = starts[:, None] + np.arange(p.seq_len)
        cut[split] = {"x": x[rows], "y": y[rows]}
    n = len(cut["train"]["x"])
    perm = np.random.RandomState(p.seed).permutation(n)
    n_val = int(p.val_fraction * n)
    if n_val < 1 or n_val >= n:
        raise ValueError(f"UCI HAR: {n} training sequences cannot give a validation split of {p.val_fraction}")
    splits = {
        "val": {k: v[perm[:n_val]] for k, v in cut["train"].items()},
        "train": {k: v[perm[n_val:]] for k, v in cut["train"].items()},
        "test": cut["test"],
    }
    return splits, {"n_features561": n_features}


def _select_subjects(data: dict, wanted: list[int] | None) -> dict:
    """Keep only the windows of the ``wanted`` subject ids (params.subjects), in both files."""
    if wanted is None:
        return data
    bad = [s for s in wanted if s not in SUBJECT_IDS]
    if bad or len(set(wanted)) != len(wanted):
        raise ValueError(f"UCI HAR (inertial): params.subjects must be distinct ids in 1..30, got {wanted}")
    for split, (x, y, subjects) in data.items():
        keep = np.isin(subjects, wanted)
        if not keep.any():
            raise ValueError(
                f"UCI HAR (inertial): params.subjects {sorted(wanted)} selects no window of the {split} file "
                f"(its subjects: {sorted(map(int, np.unique(subjects)))})"
            )
        data[split] = (x[keep], y[keep], subjects[keep])
    return data


def _downsample(x: np.ndarray, k: int) -> np.ndarray:
    """Average each ``k`` consecutive steps: (N, T, C) -> (N, T / k, C)."""
    if k == 1:
        return x
    n, steps, channels = x.shape
    if steps % k:
        raise ValueError(f"UCI HAR (inertial): params.downsample {k} does not divide the {steps} steps of a window")
    return x.reshape(n, steps // k, k, channels).mean(axis=2)


def inertial(root: Path, p: InertialParams, n_classes: int) -> tuple[dict, dict]:
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
        data[split] = (x, _check_classes(y, n_classes, f"y_{split}.txt"),
                       _check_subjects(subjects, f"subject_{split}.txt"))
    data = _select_subjects(data, p.subjects)
    data = {split: (_downsample(x, p.downsample), y, s) for split, (x, y, s) in data.items()}
    x, y, subjects = data["train"]
    people = np.unique(subjects)
    n_val = int(round(p.val_fraction * len(people)))
    if n_val < 1 or n_val >= len(people):
        raise ValueError(
            f"UCI HAR: {len(people)} training subjects cannot give a subject-disjoint validation split "
            f"of {p.val_fraction}"
        )
    val_people = np.sort(np.random.RandomState(p.seed).permutation(people)[:n_val])
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


def check_members(root: Path, protocol: str, where: str) -> None:
    """Fail, naming the members, the protocol and what to do, where ``root`` lacks what ``protocol`` reads."""
    missing = [m for m in NEEDS[protocol] if not (root / m).is_file()]
    if not missing:
        return
    others = [p for p in NEEDS if p != protocol and all((root / m).is_file() for m in NEEDS[p])]
    names = ", ".join(f"'{m}'" for m in missing)
    raise ValueError(
        f"UCI HAR: the {protocol} protocol needs {names}, which this copy of UCI HAR ({where}) lacks. "
        f"Use a complete copy of the original archive ({URL}): put 'UCI HAR Dataset.zip' into a "
        f"data_mirror directory, or let the workflow download it (no data_mirror may then hold the "
        f"incomplete copy)" + "".join(f"; or use the {p} protocol, which this copy serves" for p in others) + "."
    )


def prepare(params: dict | HarParams, out_dir: str | Path, raw: str | Path | None = None, **_sources) -> dict:
    p = HarParams.from_params(params)
    if raw is None:
        raise ValueError(f"UCI HAR: the source is needed (--raw: the folder '{ROOT}' or 'UCI HAR Dataset.zip')")
    raw, out_dir = Path(raw), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".har-extract.", dir=out_dir.parent) as tmp:
        if raw.is_dir():
            root = raw if raw.name == ROOT or not (raw / ROOT).is_dir() else raw / ROOT
        else:
            root = safe_extract(raw, Path(tmp) / "archive", [f"{ROOT}/{m}" for m in NEEDS[p.protocol]]) / ROOT
            if not root.is_dir():
                raise ValueError(f"UCI HAR: archive {raw} has no top-level folder '{ROOT}/'")
        check_members(root, p.protocol, str(raw))
        classes = activity_labels(root)
        build = features561 if p.protocol == "features561" else inertial
        splits, extra = build(root, p.settings, len(classes))
    task = "classification_per_step" if p.protocol == "features561" else "classification_per_sequence"
    info = {"dataset": "uci_har", "protocol": p.protocol, "params": asdict(p.settings), "classes": classes,
            "n_outputs": len(classes), **extra}
    return save_dataset(out_dir, splits, task, info)
