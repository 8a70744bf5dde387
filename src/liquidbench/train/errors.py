"""Errors of the training stage, importable without torch."""


class HardwareError(RuntimeError):
    """The hardware configuration cannot run on this machine (no GPU, wrong process count...)."""


class Preempted(RuntimeError):
    """SIGTERM arrived: the current step finished, a checkpoint was written; the run exits 143."""

    exit_code = 143
