"""Loss and evaluation metric for each task type."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def loss_fn(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "regression_per_step":
        return F.mse_loss(out, y)
    # per-step classification: (B, T, C) against (B, T); per-sequence: (B, C) against (B,)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def metric_terms(task: str, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(summed loss, summed metric, count) for a batch, so that batches and ranks add up exactly.
    The sums are float64 tensors on the batch's device (nothing is read to the host here).

    The metric is the squared error for regression and the number of correct labels for
    classification; dividing by count gives MSE or accuracy.
    """
    if task == "regression_per_step":
        sq = (out - y).pow(2)
        total = sq.sum().double()
        return total, total, sq.numel()
    logits, labels = out.reshape(-1, out.shape[-1]), y.reshape(-1)
    loss = F.cross_entropy(logits, labels, reduction="sum")
    correct = (logits.argmax(-1) == labels).sum()
    return loss.double(), correct.double(), labels.numel()


def better(metric_name: str, a: float, b: float | None) -> bool:
    """Is ``a`` a better value of ``metric_name`` than ``b``?"""
    if b is None:
        return True
    return a < b if metric_name == "mse" else a > b
