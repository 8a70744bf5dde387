"""What every perturbation family shares: the test split as tensors, the metric of a model on
tensors, and one seeded generator per (family, level)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..train.tasks import metric_terms


@dataclass(frozen=True)
class Split:
    """A split as tensors: x (N, T, F), y, and t (N, T) elapsed times or None."""

    x: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor | None

    @classmethod
    def of(cls, arrays: dict[str, np.ndarray]) -> Split:
        t = arrays.get("t")
        return cls(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]),
                   None if t is None else torch.from_numpy(t))


def generator(seed: int, family: str, level: float) -> torch.Generator:
    """A torch generator seeded by the evaluation seed, the family and the level (the same draw for
    every model of a study, so that models meet the same perturbed inputs)."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + zlib.crc32(f"{family}:{level!r}".encode())) % 2**63)
    return g


@torch.no_grad()
def outputs(model, split: Split, batch_size: int) -> torch.Tensor:
    """The model's outputs over the whole split, in batches."""
    parts = []
    for start in range(0, len(split.x), batch_size):
        end = start + batch_size
        parts.append(model(split.x[start:end], None if split.t is None else split.t[start:end]))
    return torch.cat(parts)


def metric(model, split: Split, task: str, batch_size: int) -> float:
    """MSE or accuracy of the model on the split (metric_terms of train.tasks, as the test metric)."""
    _, total, count = metric_terms(task, outputs(model, split, batch_size), split.y)
    return total / count
