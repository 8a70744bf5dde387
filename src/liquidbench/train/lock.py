"""One process trains a run folder at a time.

``liquidbench train --config ... --run X`` started by hand while Snakemake trains X used to resume
from the other's checkpoint: both finished, and the surviving metrics.json counted two segments
and 2.7x the training time. The process that trains a run (rank 0 of a DDP run; before the process
group, so that a refusal is immediate) holds an exclusive ``flock`` on ``{run_dir}/.train.lock``
until it exits; a second one is refused at once, naming the holder. The kernel releases the lock
when its holder dies (SIGKILL, node failure), so no stale lock outlives a process. The file stays
(removing it would let a third process lock a new file while a second still holds the old one).
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path

NAME = ".train.lock"


class RunBusy(ValueError):
    """Another process holds the run folder."""


@contextmanager
def run_lock(run_dir: str | Path):
    """Hold ``run_dir``'s lock for the block; RunBusy naming the holder if another process has it."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _held(run_dir):
            yield
    except BaseException:
        # a run that failed before writing anything (a CUDA entry without CUDA) leaves no folder
        if created and [p.name for p in run_dir.iterdir()] == [NAME]:
            (run_dir / NAME).unlink(missing_ok=True)
            run_dir.rmdir()
        raise


@contextmanager
def _held(run_dir: Path):
    with open(run_dir / NAME, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "a process that has not written its name yet"
            raise RunBusy(f"run folder {run_dir} is being trained by another process ({holder}); wait for it to "
                          "finish, or stop it, then run again") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        yield  # closing the file releases the lock
