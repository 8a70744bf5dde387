"""Errors of the training stage, importable without torch."""


class HardwareError(RuntimeError):
    """The hardware configuration cannot run on this machine (no GPU, wrong process count...)."""
