"""One training loop for every hardware configuration.

A run on one process and a DDP run started by torchrun execute the same code (distributed.py: the
process group, rank agreement, stop flag, fault injection and communication probe). Rank 0 alone
writes outputs.

Data: the three splits are copied to the run's device once, at the start; each epoch's sampled
order is copied there once, and every batch is indexed on the device. Inside an epoch nothing is
read back to the host (the loss sum accumulates on the device) except the flag of the DDP stop
agreement, so a GPU step never waits for the host (tests/test_no_host_sync.py checks this
operator by operator).

Timing: the device is synchronised before every clock read of an epoch; each optimisation step is
timed (timing.py: perf_counter on CPU, CUDA events on GPU) and the per-step maximum over ranks is
kept; the first epoch is warm-up, the others steady state. The share of a step spent in gradient
all-reduce (``comm_fraction``) is measured after training by timing steps under DDP's ``no_sync``
against synchronised steps on the same batch (``distributed.comm_probe``).

Checkpoints (checkpoint.py, state.py): after every epoch, and after the current step when SIGTERM
arrives (with several processes, a few steps later, see ``distributed.StopAgreement``; then the
run raises Preempted, exit code 143). A rerun with the same arguments resumes, mid-epoch if need
be, and ends with the same parameters and metrics as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
import random
import resource
import time
from contextlib import nullcontext
from dataclasses import MISSING, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler

from ..data import load_split, read_meta
from ..envinfo import environment, reset_kernel_status
from ..io import sha256_bytes, write_json, write_text
from ..models import build_model, count_parameters
from ..telemetry import Sampler, summarize, write_csv
from ..telemetry.nvml import open_gpu
from . import checkpoint as ckpt
from . import weights
from .distributed import Control, FaultInjector, Place, StopAgreement, StopFlag, comm_probe, setup, sync, teardown
from .errors import HardwareError, Preempted
from .lock import run_lock
from .metrics import RunFacts, build_metrics, history_csv
from .numerics import numerics
from .numerics import state as numerics_state
from .optim import adam, clip_gradients
from .settings import LATER_DEFAULTS, NOT_IN_RESULT, Hardware, Training
from .state import TrainState
from .tasks import loss_fn, metric_terms
from .timing import StepTimer

log = logging.getLogger("liquidbench.train")


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What a run is and where it reads and writes, as ``liquidbench train`` is given it: names,
    seed, folders, and the model, training and hardware settings as the config's mappings."""

    dataset: str
    model: str
    hardware: str
    seed: int
    data_dir: Path
    out_dir: Path
    model_spec: dict
    train_params: dict = field(default_factory=dict)
    hardware_spec: dict = field(default_factory=dict)
    tuned: dict | None = None  # the tuning stage's selection this run's settings came from (selected.json)


def train(spec: RunSpec) -> dict | None:
    """Train one run; rank 0 writes metrics.json, history.csv, telemetry.csv and gets the metrics back.

    Raises Preempted (exit code 143) after writing a checkpoint when SIGTERM arrives.
    """
    training = Training.from_params(spec.train_params)
    hw = Hardware.from_entry(spec.hardware, spec.hardware_spec)
    if spec.tuned is not None and spec.tuned.get("status") != "selected":
        return untrainable(spec, training, f"tuning selected no setting: {spec.tuned.get('reason')}")
    # rank 0 (RANK, set by torchrun) holds the run folder; before the process group, so that a
    # second process is refused at once
    holds_folder = int(os.environ.get("RANK", "0")) == 0
    with run_lock(spec.out_dir) if holds_folder else nullcontext(), StopFlag() as stop, \
            numerics(tf32=hw.tf32, deterministic=hw.deterministic):  # before any CUDA work
        reset_kernel_status()
        place = setup(hw)
        try:
            return _train(spec, training, hw, place, stop)
        finally:
            teardown()


def _train(spec: RunSpec, training: Training, hw: Hardware, place: Place, stop: StopFlag) -> dict | None:
    rank, world, device = place.rank, place.world, place.device
    data = Data.load(spec.data_dir).to(device)
    ctrl = Control(world, hw.timeout_s)
    checkpoints = Checkpoints(out_dir=Path(spec.out_dir),
                              fingerprint=run_fingerprint(spec, training, hw, world, data.meta))

    seed_everything(spec.seed)
    model = build_model(spec.model_spec, data.meta["n_features"], data.meta["n_outputs"], data.task,
                        data.meta["irregular"]).to(device)
    opt = adam(model.parameters(), training.optimizer_impl, lr=training.lr, weight_decay=training.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=training.lr_decay)
    state = resume(checkpoints, ctrl, model, opt, sched, place)

    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if place.ddp else model
    learner = Learner(model=model, net=net, opt=opt, sched=sched, grad_clip=training.grad_clip,
                      optimizer_impl=training.optimizer_impl)
    batch = per_process_batch(training.batch_size, world, hw.scaling, spec.hardware)
    sampler = DistributedSampler(data.train[0], num_replicas=world, rank=rank, shuffle=True, seed=spec.seed)
    per_rank = used_per_rank(len(sampler), batch, training.drop_last)
    controls = Controls(ctrl=ctrl, agreement=StopAgreement(ctrl, stop), fault=FaultInjector(rank),
                        telemetry=RankTelemetry(hw.telemetry_interval_s, place, state.segments, ctrl))
    log.info("rank %d/%d on %s: %s %s, %d parameters, batch %d per process, %d epochs",
             rank, world, device, spec.dataset, spec.model, count_parameters(model), batch, training.epochs)

    if state.start_val_loss is None:  # the divergence bound's base, before any step
        state.start_val_loss = evaluate(model, data.val, data.task, training.eval_batch_size, device)[0]
    status = "ok"
    ctrl.barrier()
    controls.telemetry.start()
    try:
        for epoch in range(state.start_epoch, training.epochs + 1):
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), device=device)  # one copy to the device an epoch
            result = run_epoch(learner, data, [order[i : i + batch] for i in range(0, per_rank, batch)],
                               state, controls, place)
            if result.stopped_mid_epoch:
                checkpoints.save_and_exit(epoch, result.partial(ctrl), learner, state, controls, place)
            state.diverged = end_epoch(learner, data, state, place, epoch, result, training)
            if state.diverged:
                status = "diverged"
                break
            stopping = controls.agreement.at_epoch_end(epoch, training.epochs)
            if stopping:
                controls.telemetry.stop()
            checkpoints.save(learner, state, controls, place)
            if stopping:
                log.warning("SIGTERM: checkpoint written after epoch %d; exiting", epoch)
                raise Preempted(f"stopped by SIGTERM after epoch {epoch}; checkpoint written")
        comm = None
        if world > 1:
            first = torch.tensor(list(sampler)[:batch], device=device)
            first_batch = [t.index_select(0, first) for t in data.train]
            comm = comm_probe(net, model, first_batch, data.task, device, ctrl)
    finally:
        controls.telemetry.stop()
    outcome = Outcome(status=status, comm=comm, batch=batch, per_rank=per_rank)
    return finish(spec, training, hw, place, data, learner, state, controls, checkpoints, outcome)


@dataclass
class Data:
    """A prepared data set: its meta.json and the three splits as tensors (x, y[, elapsed])."""

    meta: dict
    train: list[torch.Tensor]
    val: list[torch.Tensor]
    test: list[torch.Tensor]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @classmethod
    def load(cls, data_dir) -> Data:
        train, val, test = (split_tensors(load_split(data_dir, s)) for s in ("train", "val", "test"))
        return cls(meta=read_meta(data_dir), train=train, val=val, test=test)

    def to(self, device: torch.device) -> Data:
        """The splits on ``device`` (copied once for the whole run; the data sets are small)."""
        train, val, test = ([t.to(device) for t in split] for split in (self.train, self.val, self.test))
        return Data(meta=self.meta, train=train, val=val, test=test)


def split_tensors(split: dict[str, np.ndarray]) -> list[torch.Tensor]:
    """A split's arrays as tensors: x, y and, for irregular sampling, the elapsed times t."""
    ts = [torch.from_numpy(split["x"]), torch.from_numpy(split["y"])]
    if "t" in split:
        ts.append(torch.from_numpy(split["t"]))
    return ts


@dataclass(frozen=True, kw_only=True)
class Learner:
    """What an optimisation step changes: the model (``net`` is it, wrapped in DDP when the run uses
    it), its optimiser and schedule, and how gradients are clipped."""

    model: torch.nn.Module
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    grad_clip: float
    optimizer_impl: str


@dataclass(frozen=True, kw_only=True)
class Controls:
    """What watches a run without changing its numbers: the ranks' CPU-side collectives, their
    agreement on a SIGTERM, the test hook that sends one, and telemetry."""

    ctrl: Control
    agreement: StopAgreement
    fault: FaultInjector
    telemetry: RankTelemetry


@dataclass(frozen=True, kw_only=True)
class Checkpoints:
    """Where a run's checkpoint lies and what a checkpoint must match to be resumed."""

    out_dir: Path
    fingerprint: str

    def save(self, learner: Learner, state: TrainState, controls: Controls, place: Place) -> None:
        """Every rank's RNG states and telemetry to rank 0, which writes the checkpoint."""
        rng = controls.ctrl.gather(ckpt.rng_state(place.device))
        controls.telemetry.gather(state)
        if place.rank == 0:
            ckpt.save(self.out_dir, state.to_checkpoint(self.fingerprint, learner.model, learner.opt,
                                                        learner.sched, rng))
        controls.ctrl.barrier()

    def save_and_exit(self, epoch: int, partial: dict, learner: Learner, state: TrainState, controls: Controls,
                      place: Place) -> None:
        """Checkpoint an interrupted epoch, then raise Preempted."""
        controls.telemetry.stop()  # its last sample closes this process's window
        state.epoch, state.partial = epoch, partial
        self.save(learner, state, controls, place)
        log.warning("SIGTERM: checkpoint written at epoch %d step %d; exiting", epoch, partial["step_in_epoch"])
        raise Preempted(f"stopped by SIGTERM at epoch {epoch}, step {partial['step_in_epoch']}; checkpoint written")


@dataclass
class EpochResult:
    loss_sum: torch.Tensor  # (sum of loss x batch size, sequences) of this rank
    elapsed_s: float  # maximum over ranks
    step_times: list[float]  # per step, maximum over ranks
    stopped_at: int | None  # the step after which every rank agreed to stop
    n_batches: int

    @property
    def stopped_mid_epoch(self) -> bool:
        return self.stopped_at is not None and self.stopped_at < self.n_batches

    def partial(self, ctrl: Control) -> dict:
        """The interrupted epoch as the checkpoint keeps it; each rank's own partial loss sum."""
        return {"step_in_epoch": self.stopped_at, "elapsed_s": self.elapsed_s, "step_times": self.step_times,
                "loss_sum": ctrl.gather(self.loss_sum.cpu())}


def run_epoch(learner: Learner, data: Data, batches: list[torch.Tensor], state: TrainState, controls: Controls,
              place: Place) -> EpochResult:
    """One epoch's optimisation steps (from an interrupted epoch's next step when resuming), timed.
    ``batches`` are index tensors on the run's device; nothing is read back to the host inside the
    epoch but the DDP stop agreement's flag."""
    device = place.device
    first, elapsed_before, step_times = 0, 0.0, []
    loss_sum = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of loss x batch size, sequences)
    if state.partial is not None:
        partial, state.partial = state.partial, None
        first, elapsed_before, step_times = partial["step_in_epoch"], partial["elapsed_s"], list(partial["step_times"])
        loss_sum = partial["loss_sum"][place.rank].to(device)
    timer, stopped_at, sequences = StepTimer(device), None, 0
    sync(device)
    t0 = time.perf_counter()
    for k in range(first, len(batches)):
        controls.fault.before_step(state.steps_done + 1)
        xb, yb, *tb = [t.index_select(0, batches[k]) for t in data.train]
        timer.start()
        loss = loss_fn(data.task, learner.net(xb, tb[0] if tb else None), yb)
        learner.opt.zero_grad(set_to_none=True)
        loss.backward()
        if learner.grad_clip:
            clip_gradients(learner.model.parameters(), learner.grad_clip, learner.optimizer_impl)
        learner.opt.step()
        timer.stop()
        loss_sum[0].add_(loss.detach().double() * len(xb))  # on the device: no tensor made from the host
        sequences += len(xb)
        state.steps_done += 1
        if controls.agreement.after_step(state.steps_done):
            stopped_at = k + 1
            break
    loss_sum[1].add_(sequences)
    sync(device)
    elapsed = elapsed_before + time.perf_counter() - t0
    controls.agreement.drain()  # a flag raised in the last step is seen by the epoch-end check
    # the slowest rank sets the pace: per-step and epoch times are maxima over ranks
    elapsed, *step_times = controls.ctrl.max([elapsed] + step_times + timer.times())
    return EpochResult(loss_sum, elapsed, step_times, stopped_at, len(batches))


def end_epoch(learner: Learner, data: Data, state: TrainState, place: Place, epoch: int, result: EpochResult,
              training: Training) -> dict | None:
    """Schedule, evaluation, history, best weights; ``{"epoch", "reason"}`` when the run diverged
    (divergence()), else None."""
    learner.sched.step()
    if place.ddp:
        dist.all_reduce(result.loss_sum)
    train_loss = float(result.loss_sum[0] / result.loss_sum[1])
    val_loss, val_metric = evaluate(learner.model, data.val, data.task, training.eval_batch_size, place.device)
    state.record_epoch(dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_metric=val_metric,
                            epoch_time_s=result.elapsed_s), result.step_times)
    if place.rank == 0:  # the same figures on every rank (losses are averaged over ranks)
        log.info("epoch %d: train_loss %.6f val_loss %.6f val_%s %.6f time %.3fs",
                 epoch, train_loss, val_loss, data.meta["metric"], val_metric, result.elapsed_s)
    reason = divergence(train_loss, val_loss, state.start_val_loss, training.divergence_factor)
    if reason:
        log.warning("diverged at epoch %d: %s; stopping", epoch, reason)
        return {"epoch": epoch, "reason": reason}
    state.keep_if_best(data.meta["metric"], learner.model)
    return None


def divergence(train_loss: float, val_loss: float, start_val_loss: float | None, factor: float) -> str | None:
    """Why a run has diverged, or None. Diverged: a loss that is not finite, or a validation loss
    above ``factor`` times the untrained model's (``training.divergence_factor``). The base is the
    run's own start, so the bound means the same for an MSE of 1e-2 or a cross-entropy of 1.8; the
    validation loss (fixed data, eval mode) rather than the training loss, which mixes the epoch's
    steps."""
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        return f"loss not finite (train {train_loss}, validation {val_loss})"
    if start_val_loss is not None and math.isfinite(start_val_loss) and val_loss > factor * start_val_loss:
        return (f"validation loss {val_loss:.4g} above {factor:g} x the untrained model's {start_val_loss:.4g} "
                "(training.divergence_factor)")
    return None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How the training loop ended: its status, the communication probe (DDP), and the batches it
    ran (the batch per process and the training sequences each process used per epoch)."""

    status: str
    comm: dict | None
    batch: int
    per_rank: int


def finish(spec: RunSpec, training: Training, hw: Hardware, place: Place, data: Data, learner: Learner,
           state: TrainState, controls: Controls, checkpoints: Checkpoints, outcome: Outcome) -> dict | None:
    """Test with the best weights; rank 0 writes metrics.json, history.csv, telemetry.csv and
    removes the checkpoint."""
    model, telemetry = learner.model, controls.telemetry
    telemetry.gather(state)
    final_sha = params_sha256(model)
    torch_mem = None
    if place.device.type == "cuda":
        mems = controls.ctrl.gather(torch.cuda.max_memory_allocated(place.device) / 2**20)
        torch_mem = max(mems) if mems else None
    test_metric, best_sha = float("nan"), None
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
        best_sha = params_sha256(model)
        test_metric = evaluate(model, data.test, data.task, training.eval_batch_size, place.device)[1]
    if place.rank != 0:
        return None
    facts = RunFacts(
        dataset=spec.dataset, model=spec.model, model_spec=spec.model_spec, hardware=spec.hardware,
        seed=spec.seed, training=training, hw=hw, device=place.device.type,
        device_name=torch.cuda.get_device_name(place.device) if place.device.type == "cuda" else None,
        world=place.world, backend=dist.get_backend() if place.ddp else None, ddp=place.ddp,
        threads=torch.get_num_threads(), batch_per_process=outcome.batch, n_params=count_parameters(model),
        task=data.task, metric_name=data.meta["metric"], samples_per_epoch=outcome.per_rank * place.world,
        steps_per_epoch=math.ceil(outcome.per_rank / outcome.batch), step_timer=StepTimer(place.device).name,
        comm_probe=outcome.comm, final_params_sha256=final_sha, best_params_sha256=best_sha,
        data_params=data_params(data.meta), tuned=spec.tuned, test_metric=test_metric,
        peak_host_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        telemetry=summarize(state.telemetry, interval_s=telemetry.interval_s, epochs=len(state.history),
                            device=place.device.type, gpu_reason=telemetry.gpu_reason,
                            torch_max_memory_allocated_mb=torch_mem),
        status=outcome.status, env={**environment(), **numerics_state()},
    )
    metrics = build_metrics(facts, state)
    out_dir = checkpoints.out_dir
    weights.save(out_dir, state.best_state, spec.model_spec, data.meta, dataset=spec.dataset,
                 model=spec.model, hardware=spec.hardware, seed=spec.seed, best_epoch=state.best_epoch)
    write_csv(out_dir / "telemetry.csv", state.telemetry)
    write_text(out_dir / "history.csv", history_csv(state.history))
    write_json(out_dir / "metrics.json", metrics)
    ckpt.remove(out_dir)
    return metrics


class RankTelemetry:
    """This rank's telemetry sampler (host, and NVML on a GPU); its rows are gathered to rank 0's
    TrainState at every checkpoint and at the end."""

    def __init__(self, interval_s: float, place: Place, segment: int, ctrl: Control):
        device = place.device
        gpu_reader, self.gpu_reason = open_gpu(device.index) if device.type == "cuda" else (None, None)
        if self.gpu_reason:
            log.warning("no GPU telemetry: %s", self.gpu_reason)
        self.interval_s, self.rank, self.ctrl = interval_s, place.rank, ctrl
        self.sampler = Sampler(interval_s, place.rank, segment, gpu_reader)
        self.sent = 0  # rows of this rank already gathered

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> None:
        self.sampler.stop()

    def gather(self, state: TrainState) -> None:
        n = len(self.sampler.rows)
        new = self.ctrl.gather(self.sampler.rows[self.sent : n])
        self.sent = n
        if self.rank == 0:
            state.telemetry = state.telemetry + [r for part in new for r in part]


def resume(checkpoints: Checkpoints, ctrl: Control, model, opt, sched, place: Place) -> TrainState:
    """The state to start from: this run's checkpoint when every rank has it, else a fresh one."""
    saved = ckpt.load(checkpoints.out_dir, checkpoints.fingerprint)
    if not ctrl.all(saved is not None):
        return TrainState()
    state = TrainState.from_checkpoint(saved, model, opt, sched, place.rank, place.device)
    log.info("resuming from checkpoint: epoch %d, step %d of the epoch (%d steps done, segment %d)",
             state.epoch, state.partial["step_in_epoch"] if state.partial else 0, state.steps_done, state.segments)
    return state


def run_fingerprint(spec: RunSpec, training: Training, hw: Hardware, world: int, meta: dict) -> str:
    """What a checkpoint must match to be resumed from (not the timeout, the telemetry interval or
    the scheduler's resources). Settings that joined after checkpoints existed are left out at the
    value those checkpoints ran with (LATER_DEFAULTS), so that such a checkpoint still resumes (the
    same computation), and under any other value it does not."""
    train = {k: v for k, v in training.as_dict().items() if LATER_DEFAULTS.get(k, MISSING) != v}
    return ckpt.fingerprint(
        dataset=spec.dataset, model=spec.model, hardware=spec.hardware, seed=spec.seed, model_spec=spec.model_spec,
        train_params=train, hardware_spec={k: v for k, v in hw.as_dict().items() if k not in NOT_IN_RESULT},
        world=world, data=meta.get("sha256"),
    )


def untrainable(spec: RunSpec, training: Training, reason: str) -> dict:
    """A run that cannot be trained as the study asks (every tuning trial of its model diverged):
    metrics.json with status ``failed`` and the reason, and the run's other outputs empty, so that
    the tables count it and the claims on it are undecidable instead of the study stopping."""
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"dataset": spec.dataset, "model": spec.model, "hardware": spec.hardware, "seed": spec.seed,
               "model_type": spec.model_spec.get("type"), "status": "failed", "failed_reason": reason,
               "model_params": spec.model_spec, "train_params": training.as_dict(), "tuned": spec.tuned,
               "epochs": training.epochs, "epochs_run": 0, "env": {**environment(), **numerics_state()}}
    weights.save(out, None, spec.model_spec, {"n_features": 0, "n_outputs": 0, "task": "", "irregular": False,
                                             "metric": ""}, dataset=spec.dataset, model=spec.model,
                 hardware=spec.hardware, seed=spec.seed, best_epoch=None)
    write_csv(out / "telemetry.csv", [])
    write_text(out / "history.csv", history_csv([]))
    write_json(out / "metrics.json", metrics)
    log.warning("run %s/%s/%s/seed%s not trained: %s", spec.dataset, spec.model, spec.hardware, spec.seed, reason)
    return metrics


def data_params(meta: dict) -> dict:
    """What a run records of its prepared data set: the parameters it was made with (and its
    protocol, for HAR) and the hashes of its splits (meta.json)."""
    recorded = {**(meta.get("params") or {}), **({"protocol": meta["protocol"]} if "protocol" in meta else {})}
    return {"params": recorded, "sha256": meta.get("sha256")}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def used_per_rank(n: int, batch: int, drop_last: bool) -> int:
    """Training sequences a process uses per epoch: its n, or with drop_last only its full batches
    (the last, incomplete one left out, as the LTC paper's code does)."""
    used = n - n % batch if drop_last else n
    if used == 0:
        raise ValueError(f"training: drop_last with batch {batch} leaves no batch of the {n} training "
                         "sequences per process; lower batch_size or set drop_last false")
    return used


def per_process_batch(batch_size: int, world: int, scaling: str | None, hardware: str) -> int:
    """Weak scaling keeps the batch per process; strong scaling splits one global batch."""
    if scaling == "strong" and world > 1:
        if batch_size % world:
            raise HardwareError(
                f"hardware '{hardware}': strong scaling splits the global batch {batch_size} over "
                f"{world} processes, which needs a batch size divisible by {world}"
            )
        return batch_size // world
    return batch_size


@torch.no_grad()
def evaluate(model, tensors, task, batch_size, device) -> tuple[float, float]:
    """(mean loss, metric) of ``model`` over a whole split, in one process; the sums accumulate in
    float64 on the device and are read once."""
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    count = 0
    n = len(tensors[0])
    for start in range(0, n, batch_size):
        batch = [t[start : start + batch_size].to(device) for t in tensors]
        out = model(batch[0], batch[2] if len(batch) > 2 else None)
        l, m, c = metric_terms(task, out, batch[1])
        sums[0].add_(l)
        sums[1].add_(m)
        count += c
    model.train()
    loss_sum, metric_sum = sums.tolist()
    return loss_sum / count, metric_sum / count


def params_sha256(model: torch.nn.Module) -> str:
    """Fingerprint of the parameters and buffers (names, dtypes and exact bytes)."""
    parts = []
    for name, t in model.state_dict().items():
        parts.append(name.encode() + str(t.dtype).encode() + t.detach().cpu().contiguous().numpy().tobytes())
    return sha256_bytes(b"\0".join(parts))
