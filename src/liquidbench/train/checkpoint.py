"""Checkpoints: ``{run_dir}/checkpoint.pt``, written atomically, read with ``weights_only=True``.

Everything in a checkpoint is a tensor, a number, a string, a list or a dict, so that the safe
unpickler of ``torch.load(weights_only=True)`` accepts it; random number generator states (torch,
CUDA, numpy, Python) are stored as tensors. A checkpoint carries the fingerprint of the run's
arguments; one with another fingerprint is not resumed from.

The file is a header line with the sha256 of what follows (``liquidbench-checkpoint <hex>``) and
then the bytes ``torch.save`` wrote. The hash is checked before anything is unpickled: a checkpoint
whose content changed on disk (a flipped byte in a weight) is reported and the run starts fresh,
never resumes from damaged state (a fresh start gives the same parameters as the uninterrupted run).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path

log = logging.getLogger("liquidbench.train")
FORMAT = 2
NAME = "checkpoint.pt"
MAGIC = b"liquidbench-checkpoint "


def fingerprint(**parts) -> str:
    """sha256 of the run's arguments (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def rng_state(device: torch.device) -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_state[0]),
        "python_state": torch.tensor(py_state[1], dtype=torch.int64),
        "python_gauss": py_state[2],
    }


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(int(v) for v in state["python_state"]), state["python_gauss"]))


def save(run_dir: str | Path, state: dict) -> Path:
    path = Path(run_dir) / NAME
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    payload = buf.getvalue()
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
                fh.write(payload)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write checkpoint {path} ({len(payload)} bytes): {exc.strerror or exc}") from exc
    return path


def remove_leftovers(run_dir: str | Path) -> None:
    """Temporary files of checkpoints whose writing was killed (SIGKILL, node failure)."""
    for tmp in Path(run_dir).glob(f".{NAME}.*.tmp"):
        log.info("removing %s, left by a checkpoint write that did not finish", tmp)
        tmp.unlink(missing_ok=True)


def read(path: str | Path) -> dict:
    """A checkpoint file's content, its hash checked before it is unpickled (weights_only);
    ValueError naming the file and what is wrong. The file is hashed in chunks and unpickled from
    disk, so that resuming holds the checkpoint in memory once (as tensors), not also as bytes."""
    path = Path(path)
    with open(path, "rb") as fh:
        header = fh.readline(len(MAGIC) + 80)
        if not header.startswith(MAGIC) or not header.endswith(b"\n"):
            raise ValueError(f"checkpoint {path} is not a liquidbench checkpoint of format {FORMAT} (no hash header)")
        start = fh.tell()
        digest = hashlib.sha256()
        while block := fh.read(1 << 20):
            digest.update(block)
        recorded, actual = header[len(MAGIC):-1].decode(errors="replace"), digest.hexdigest()
        if recorded != actual:
            raise ValueError(f"checkpoint {path} is damaged: its content has sha256 {actual[:12]}, "
                             f"its header records {recorded[:12]}")
        try:
            state = torch.load(io.BufferedReader(_Payload(fh, start)), map_location="cpu", weights_only=True)
        except Exception as exc:  # a foreign payload
            raise ValueError(f"checkpoint {path} cannot be read ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"checkpoint {path} has format {found}, expected {FORMAT}")
    return state


class _Payload(io.RawIOBase):
    """The part of an open file after ``start`` (the bytes torch.save wrote, after the hash header)
    as a file of its own: torch.load's zip reader seeks from the start of what it is given."""

    def __init__(self, fh, start: int):
        self.fh, self.start = fh, start
        fh.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.fh.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            offset += self.start
        return self.fh.seek(offset, whence) - self.start

    def tell(self) -> int:
        return self.fh.tell() - self.start


def load(run_dir: str | Path, expected_fingerprint: str) -> dict | None:
    """The checkpoint of this run, or None (none, unreadable, damaged, or another run's: logged)."""
    remove_leftovers(run_dir)
    path = Path(run_dir) / NAME
    if not path.exists():
        return None
    try:
        state = read(path)
    except (ValueError, OSError) as exc:
        log.warning("%s: not resuming from it, starting fresh", exc)
        return None
    if state.get("fingerprint") != expected_fingerprint:
        log.warning("checkpoint %s belongs to other run arguments (fingerprint %.12s, this run %.12s): "
                    "starting fresh", path, state.get("fingerprint"), expected_fingerprint)
        return None
    return state


def remove(run_dir: str | Path) -> None:
    (Path(run_dir) / NAME).unlink(missing_ok=True)
