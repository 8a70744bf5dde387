"""The numerics policy of a run: float32 precision on CUDA and deterministic algorithms.

By default every model computes in full float32 on a GPU: TF32 is off for cuBLAS matrix products
and for cuDNN (its LSTM/GRU and convolutions). Otherwise cuDNN's LSTM and GRU may use TF32 on Ampere
and later while the LTC's and CfC's products run in float32, and a time ratio would compare two
precisions. A hardware entry's ``tf32: true`` allows TF32 for all of them alike. Its
``deterministic: true`` makes torch use deterministic algorithms (an operator without one fails
naming itself) and sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` where it is not set, as cuBLAS needs for
reproducible results; cuDNN's autotuner stays off either way.

:func:`numerics` applies a hardware entry's settings for the duration of a run and restores the
previous ones after it; :func:`state` reads back what is in force, for metrics.json's ``env``.
"""

from __future__ import annotations

import contextlib
import os

import torch

CUBLAS_WORKSPACE = ":4096:8"


def _precision(tf32: bool) -> str:
    return "tf32" if tf32 else "ieee"


def _backends():
    """The float32-precision settings TF32 concerns: (object, attribute) pairs."""
    return [(torch.backends.cuda.matmul, "fp32_precision"), (torch.backends.cudnn.conv, "fp32_precision"),
            (torch.backends.cudnn.rnn, "fp32_precision")]


@contextlib.contextmanager
def numerics(*, tf32: bool, deterministic: bool):
    """Apply a hardware entry's ``tf32`` and ``deterministic`` while the block runs; set
    CUBLAS_WORKSPACE_CONFIG before any CUDA work when determinism is asked for."""
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in _backends()]
    saved_det = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                 torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    saved_env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        for obj, attr in _backends():
            setattr(obj, attr, _precision(tf32))
        if deterministic and saved_env is None:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
        # only where the mode changes: torch.use_deterministic_algorithms imports torch._inductor
        # (about 1.3 s, a third of a short job's start) to set its flag there too
        if saved_det[:2] != (bool(deterministic), False):
            torch.use_deterministic_algorithms(bool(deterministic))
        torch.backends.cudnn.deterministic = bool(deterministic)
        torch.backends.cudnn.benchmark = False
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)
        if saved_det[:2] != (torch.are_deterministic_algorithms_enabled(),
                             torch.is_deterministic_algorithms_warn_only_enabled()):
            torch.use_deterministic_algorithms(saved_det[0], warn_only=saved_det[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved_det[2:]
        if saved_env is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def state() -> dict:
    """What is in force now: ``tf32`` (true when any of cuBLAS, cuDNN conv, cuDNN RNN may use it),
    each setting's float32 precision, deterministic algorithms and CUBLAS_WORKSPACE_CONFIG."""
    matmul, conv, rnn = (getattr(obj, attr) for obj, attr in _backends())
    return {
        "tf32": "tf32" in (matmul, conv, rnn),
        "fp32_precision": f"matmul {matmul}, cudnn conv {conv}, cudnn rnn {rnn}",
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
