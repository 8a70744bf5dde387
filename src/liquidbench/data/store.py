"""On-disk format of a prepared data set: ``{train,val,test}.npz`` + ``meta.json``.

Each split holds ``x`` (N, T, F) float32, ``y`` and optionally ``t`` (N, T) float32 elapsed time
between steps (irregular sampling). ``y`` depends on the task:

- ``regression_per_step``:         (N, T, O) float32, metric MSE
- ``classification_per_step``:     (N, T) int64 class ids, metric accuracy
- ``classification_per_sequence``: (N,) int64 class ids, metric accuracy

A data set becomes visible as a whole: its four files are written into a sibling folder, which then
replaces the data set's folder by rename (a failure on the way, a full disk, leaves the previous
data set as it was). ``meta.json`` records the sha256 of every array; ``load_split`` checks them,
so that files of two preparations mixed by hand are refused rather than trained on.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..io import read_json, sha256_bytes, umask, write_bytes, write_json

SPLITS = ("train", "val", "test")
TASKS = {
    "regression_per_step": "mse",
    "classification_per_step": "accuracy",
    "classification_per_sequence": "accuracy",
}


def _check_split(name: str, task: str, arrays: dict[str, np.ndarray]) -> None:
    x, y = arrays.get("x"), arrays.get("y")
    if x is None or y is None:
        raise ValueError(f"split '{name}': expected arrays 'x' and 'y'")
    if x.ndim != 3:
        raise ValueError(f"split '{name}': x must be (N, T, F), got shape {x.shape}")
    n, steps = x.shape[:2]
    expected_y = {
        "regression_per_step": 3,
        "classification_per_step": 2,
        "classification_per_sequence": 1,
    }[task]
    if y.ndim != expected_y or y.shape[0] != n or (expected_y > 1 and y.shape[1] != steps):
        raise ValueError(f"split '{name}': y of shape {y.shape} does not fit task {task} with x {x.shape}")
    if "t" in arrays and arrays["t"].shape != (n, steps):
        raise ValueError(f"split '{name}': t must be (N, T) = {(n, steps)}, got {arrays['t'].shape}")
    for key, arr in arrays.items():
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise ValueError(f"split '{name}': array '{key}' contains NaN or inf")


def save_dataset(
    out_dir: str | Path,
    splits: dict[str, dict[str, np.ndarray]],
    task: str,
    info: dict,
) -> dict:
    """Validate and write the three splits and meta.json atomically; return the meta dict."""
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}', expected one of {sorted(TASKS)}")
    if set(splits) != set(SPLITS):
        raise ValueError(f"expected splits {SPLITS}, got {sorted(splits)}")
    out_dir = Path(out_dir)
    shapes, hashes = {}, {}
    for name in SPLITS:
        arrays = {k: np.ascontiguousarray(v) for k, v in splits[name].items()}
        arrays["x"] = arrays["x"].astype(np.float32)
        if "t" in arrays:
            arrays["t"] = arrays["t"].astype(np.float32)
        arrays["y"] = arrays["y"].astype(np.float32 if task == "regression_per_step" else np.int64)
        _check_split(name, task, arrays)
        splits[name] = arrays
        shapes[name] = {k: list(v.shape) for k, v in arrays.items()}
        hashes[name] = {k: sha256_bytes(v.tobytes()) for k, v in sorted(arrays.items())}
    x = splits["train"]["x"]
    y = splits["train"]["y"]
    n_outputs = int(y.shape[-1]) if task == "regression_per_step" else int(
        max(int(s["y"].max()) for s in splits.values()) + 1
    )
    meta = {
        "task": task,
        "metric": TASKS[task],
        "n_features": int(x.shape[-1]),
        "n_outputs": n_outputs,
        "seq_len": int(x.shape[1]),
        "irregular": "t" in splits["train"],
        "shapes": shapes,
        "sha256": hashes,
        **info,
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        for name in SPLITS:
            buf = io.BytesIO()
            np.savez(buf, **splits[name])
            write_bytes(tmp / f"{name}.npz", buf.getvalue())
        write_json(tmp / "meta.json", meta)
        _replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return meta


def _replace_dir(new: Path, target: Path) -> None:
    """Put the folder ``new`` in the place of ``target``: one rename when there is none yet, else the
    old one is first moved aside (readers see the old data set or the new one, never a mix)."""
    os.chmod(new, 0o777 & ~umask())  # mkdtemp made it 0700; a folder gets what the umask gives
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / "dataset")
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old / "dataset", target)  # put the previous data set back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def read_meta(data_dir: str | Path) -> dict:
    return read_json(Path(data_dir) / "meta.json")


def load_split(data_dir: str | Path, split: str, meta: dict | None = None) -> dict[str, np.ndarray]:
    """One split's arrays, checked against the sha256 that meta.json records for them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}', expected one of {SPLITS}")
    path = Path(data_dir) / f"{split}.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = read_meta(data_dir) if meta is None else meta
    recorded = (meta.get("sha256") or {}).get(split)
    if recorded is None:
        raise ValueError(f"data set {data_dir}: meta.json records no sha256 of split '{split}'; prepare it again")
    actual = {k: sha256_bytes(np.ascontiguousarray(v).tobytes()) for k, v in sorted(arrays.items())}
    if actual != recorded:
        wrong = sorted(k for k in set(actual) | set(recorded) if actual.get(k) != recorded.get(k))
        raise ValueError(f"data set {data_dir}: {path.name} does not match meta.json (array(s) {', '.join(wrong)} "
                         "differ from the sha256 it records): the files come from different preparations or were "
                         "changed; prepare the data set again")
    return arrays
