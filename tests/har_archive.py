"""Build small UCI HAR archives in the exact layout and text format of `UCI HAR Dataset.zip`.

The content is random but deterministic (seeded), and the zip has fixed timestamps and no
compression, so the same arguments always give the same bytes and the same sha256.

    UCI HAR Dataset/activity_labels.txt, features.txt, features_info.txt, README.txt
    UCI HAR Dataset/{train,test}/X_{split}.txt          561 features per window
    UCI HAR Dataset/{train,test}/y_{split}.txt          activity id 1..6 per window
    UCI HAR Dataset/{train,test}/subject_{split}.txt    subject id per window
    UCI HAR Dataset/{train,test}/Inertial Signals/{body_acc,body_gyro,total_acc}_{x,y,z}_{split}.txt
                                                         128 readings per window
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = "UCI HAR Dataset"
ACTIVITIES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
SIGNALS = [f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"]
N_FEATURES = 561
STEPS = 128
DATE = (2012, 12, 10, 12, 0, 0)
SMOKE_ARGS = {"n_train": 40, "n_test": 24, "seed": 0}
SMOKE_FILE = "UCI_HAR_synthetic.zip"  # the smoke study's name for it (.test/config/config.yaml)


def _number(v: float) -> str:
    # the original writes %.7e with a three-digit exponent: " 2.8858451e-001"
    mantissa, exponent = f"{v:.7e}".split("e")
    return f"{mantissa}e{int(exponent):+04d}"


def _matrix(rows: np.ndarray) -> str:
    return "".join(" " + " ".join(f"{_number(v):>15}" for v in row) + "\n" for row in rows)


def _ids(values) -> str:
    return "".join(f"{int(v)}\n" for v in values)


def _blocks(n: int, choices, block: int) -> np.ndarray:
    """Consecutive windows share a value, as activities and subjects do in the original."""
    return np.array([choices[(i // block) % len(choices)] for i in range(n)])


def har_files(n_train: int = 40, n_test: int = 24, train_subjects=(1, 3, 5, 6, 7), test_subjects=(2, 4),
              seed: int = 0) -> dict[str, str]:
    """Member name -> text content of a small archive."""
    rng = np.random.RandomState(seed)
    files = {
        f"{ROOT}/activity_labels.txt": "".join(f"{i} {a}\n" for i, a in enumerate(ACTIVITIES, 1)),
        f"{ROOT}/features.txt": "".join(f"{i} feature{i}-mean()-X\n" for i in range(1, N_FEATURES + 1)),
        f"{ROOT}/features_info.txt": "Feature Selection\n=================\n",
        f"{ROOT}/README.txt": "Human Activity Recognition Using Smartphones Dataset (small test copy)\n",
    }
    for split, n, subjects in (("train", n_train, train_subjects), ("test", n_test, test_subjects)):
        labels = _blocks(n, range(1, len(ACTIVITIES) + 1), 3)
        files[f"{ROOT}/{split}/y_{split}.txt"] = _ids(labels)
        files[f"{ROOT}/{split}/subject_{split}.txt"] = _ids(_blocks(n, subjects, 6))
        # features depend on the label a little, so that they are not pure noise
        x = np.clip(rng.uniform(-1, 1, size=(n, N_FEATURES)) + 0.1 * labels[:, None], -1, 1)
        files[f"{ROOT}/{split}/X_{split}.txt"] = _matrix(x)
        for signal in SIGNALS:
            files[f"{ROOT}/{split}/Inertial Signals/{signal}_{split}.txt"] = _matrix(
                rng.normal(0.0, 0.3, size=(n, STEPS)) + (1.0 if signal.startswith("total") else 0.0)
            )
    return files


def write_zip(path: str | Path, files: dict[str, str | bytes]) -> Path:
    """A zip of ``files`` (folders listed too, as in the original) with fixed timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folders = sorted({name.rsplit("/", i)[0] + "/" for name in files for i in range(1, name.count("/") + 1)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for folder in folders:
            info = zipfile.ZipInfo(folder, date_time=DATE)
            info.external_attr = 0o40755 << 16
            zf.writestr(info, b"")
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=DATE)
            info.external_attr = 0o100644 << 16
            data = files[name]
            zf.writestr(info, data.encode() if isinstance(data, str) else data)
    return path


def build_har_archive(path: str | Path, edit: Callable[[dict], None] | None = None, **kwargs) -> Path:
    """Write `UCI HAR Dataset.zip`-like archive to ``path``; ``edit`` may change the files first."""
    files = har_files(**kwargs)
    if edit is not None:
        edit(files)
    return write_zip(path, files)


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sha256sums(files: dict[str, str | bytes]) -> str:
    """A manifest of ``files`` in the format sha256sum writes."""
    return "".join(
        f"{hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()}  {name}\n"
        for name, data in sorted(files.items())
    )


def write_folder(path: str | Path, files: dict[str, str | bytes]) -> Path:
    """``files`` extracted under ``path`` (member names are relative paths)."""
    path = Path(path)
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


if __name__ == "__main__":
    import sys

    out = build_har_archive(sys.argv[1] if len(sys.argv) > 1 else SMOKE_FILE, **SMOKE_ARGS)
    print(sha256(out), out)
