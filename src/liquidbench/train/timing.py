"""Timing one optimisation step: CUDA events on a GPU (no synchronisation inside the epoch),
perf_counter on the CPU. Either way ``times()`` gives seconds per step, in order."""

from __future__ import annotations

import time

import torch


class StepTimer:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.name = "cuda_events" if self.cuda else "perf_counter"
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._seconds: list[float] = []

    def start(self) -> None:
        if self.cuda:
            self._events.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            self._events[-1][0].record()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            self._events[-1][1].record()
        else:
            self._seconds.append(time.perf_counter() - self._t0)

    def times(self) -> list[float]:
        """Seconds of every step timed (on a GPU, read after the device was synchronised)."""
        return self._seconds + [a.elapsed_time(b) / 1000 for a, b in self._events]
