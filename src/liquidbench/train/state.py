"""What a run has done so far: everything a checkpoint holds besides the model, optimizer and
scheduler, and the one place that turns it into a checkpoint and back."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch

from . import checkpoint as ckpt
from .tasks import better


@dataclass
class TrainState:
    epoch: int = 0  # the last epoch finished (or, with ``partial``, the one interrupted)
    partial: dict | None = None  # an interrupted epoch: step_in_epoch, elapsed_s, step_times, loss_sum
    steps_done: int = 0  # optimisation steps over the run
    segments: int = 0  # processes (starts and resumes) before this one
    history: list[dict] = field(default_factory=list)  # one row per epoch (HISTORY_COLUMNS)
    epoch_times: list[float] = field(default_factory=list)
    warmup_step_times: list[float] = field(default_factory=list)  # steps of the first epoch
    steady_step_times: list[float] = field(default_factory=list)  # steps of the others
    best_val: float | None = None
    best_epoch: int | None = None
    best_state: dict | None = None  # model weights of the best validation epoch
    telemetry: list[dict] = field(default_factory=list)  # samples of every rank (rank 0)
    start_val_loss: float | None = None  # the untrained model's validation loss (the divergence bound's base)
    diverged: dict | None = None  # {"epoch", "reason"} of a run that diverged

    @property
    def start_epoch(self) -> int:
        return self.epoch if self.partial is not None else self.epoch + 1

    def record_epoch(self, row: dict, step_times: list[float]) -> None:
        self.epoch = row["epoch"]
        self.history.append(row)
        self.epoch_times.append(row["epoch_time_s"])
        (self.warmup_step_times if row["epoch"] == 1 else self.steady_step_times).extend(step_times)

    def keep_if_best(self, metric_name: str, model: torch.nn.Module) -> None:
        row = self.history[-1]
        if better(metric_name, row["val_metric"], self.best_val):
            self.best_val, self.best_epoch = row["val_metric"], row["epoch"]
            self.best_state = copy.deepcopy(model.state_dict())

    def to_checkpoint(self, fingerprint: str, model, opt, sched, rng: list[dict]) -> dict:
        """The checkpoint of this process's segment (``segments`` counts it)."""
        return {**asdict(self), "segments": self.segments + 1, "fingerprint": fingerprint, "rng": rng,
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}

    @classmethod
    def from_checkpoint(cls, state: dict, model, opt, sched, rank: int, device: torch.device) -> TrainState:
        """Restore model, optimizer, scheduler and this rank's RNG states; the rest is the state."""
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"][rank], device)
        # checkpoints written before a field existed lack it: its default
        return cls(**{name: state[name] for name in cls.__dataclass_fields__ if name in state})
