"""One training loop for every hardware configuration.

A run on one process and a DDP run started by torchrun execute the same code: the process group,
rank and device come from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE), as in nanoGPT.
Rank 0 alone writes outputs.

Timing: the device is synchronised before every clock read of an epoch; each optimisation step is
timed (perf_counter on CPU, CUDA events on GPU) and the per-step maximum over ranks is kept; the
first epoch is warm-up, the others steady state. The share of a step spent in gradient all-reduce
(``comm_fraction``) is measured after training by timing steps under DDP's ``no_sync`` against
synchronised steps on the same batch (see ``comm_probe``).

Checkpoints (checkpoint.py): after every epoch, and after the current step when SIGTERM arrives
(then the run raises Preempted, exit code 143). A rerun with the same arguments resumes, mid-epoch
if need be, and ends with the same parameters and metrics as an uninterrupted run.

Test hook: LIQUIDBENCH_TEST_SIGNAL="TERM@N" (or "KILL@N", optionally "@RANK") makes the process(es)
send themselves that signal just before global optimisation step N, to exercise the real signal
paths at a reproducible point.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import logging
import math
import os
import random
import resource
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler, TensorDataset

from ..data import load_split, read_meta
from ..envinfo import environment
from ..io import sha256_bytes, write_json, write_text
from ..models import build_model, count_parameters
from ..telemetry import Sampler, summarize, write_csv
from ..telemetry.nvml import open_gpu
from . import checkpoint as ckpt
from .errors import HardwareError, Preempted
from .tasks import better, loss_fn, metric_terms

log = logging.getLogger("liquidbench.train")

DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "eval_batch_size": 512,
    "lr": 0.005,
    "lr_decay": 1.0,
    "grad_clip": 1.0,
    "weight_decay": 0.0,
    "drop_last": False,
}
HARDWARE_DEFAULTS = {
    "device": "cpu",
    "nodes": 1,
    "nproc_per_node": 1,
    "threads": 1,
    "backend": None,
    "scaling": None,
    "timeout_s": 300,
    "telemetry_interval_s": 0.2,
}
COMM_PROBE_STEPS = 10

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_metric", "epoch_time_s"]


@dataclass
class RunSpec:
    dataset: str
    model: str
    hardware: str
    seed: int
    data_dir: Path
    out_dir: Path
    model_spec: dict
    train_params: dict = field(default_factory=dict)
    hardware_spec: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def uses_ddp(hw: dict, world: int) -> bool:
    """DDP with more than one process, or with one when the entry names a backend (ddp-1gpu)."""
    return world > 1 or hw.get("backend") is not None


def _setup(spec: RunSpec, hw: dict) -> tuple[int, int, int, torch.device]:
    """Rank, local rank, world size and device; starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    expected = hw["nodes"] * hw["nproc_per_node"]
    if world != expected:
        raise HardwareError(
            f"hardware '{spec.hardware}' expects {expected} process(es) "
            f"({hw['nodes']} node(s) x {hw['nproc_per_node']}), but WORLD_SIZE is {world}: "
            "start multi-process configurations through torchrun"
        )
    if hw["device"] == "cuda":
        if not torch.cuda.is_available():
            raise HardwareError(
                f"hardware '{spec.hardware}' asks for device 'cuda', but CUDA is not available on "
                f"this machine (torch {torch.__version__}); choose a CPU configuration"
            )
        if local_rank >= torch.cuda.device_count():
            raise HardwareError(
                f"hardware '{spec.hardware}': local rank {local_rank} has no GPU "
                f"({torch.cuda.device_count()} visible)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif hw["device"] == "cpu":
        device = torch.device("cpu")
    else:
        raise HardwareError(f"hardware '{spec.hardware}': device '{hw['device']}' is unknown, expected cpu or cuda")
    torch.set_num_threads(hw["threads"])
    if uses_ddp(hw, world):
        backend = hw["backend"] or ("nccl" if device.type == "cuda" else "gloo")
        if backend == "nccl" and device.type != "cuda":
            raise HardwareError(f"hardware '{spec.hardware}': backend nccl needs device cuda, got {device.type}")
        # one DDP process started without torchrun: an in-memory store instead of a rendezvous
        store = dict(store=dist.HashStore(), rank=0, world_size=1) if world == 1 and "MASTER_ADDR" not in os.environ else {}
        dist.init_process_group(
            backend=backend,
            timeout=timedelta(seconds=hw["timeout_s"]),
            device_id=device if device.type == "cuda" else None,
            **store,
        )
    return rank, local_rank, world, device


def _tensors(split: dict[str, np.ndarray]) -> list[torch.Tensor]:
    ts = [torch.from_numpy(split["x"]), torch.from_numpy(split["y"])]
    if "t" in split:
        ts.append(torch.from_numpy(split["t"]))
    return ts


@torch.no_grad()
def evaluate(model, tensors, task, batch_size, device) -> tuple[float, float]:
    """(mean loss, metric) of ``model`` over a whole split, in one process."""
    model.eval()
    loss_sum = metric_sum = count = 0.0
    n = len(tensors[0])
    for start in range(0, n, batch_size):
        batch = [t[start : start + batch_size].to(device) for t in tensors]
        out = model(batch[0], batch[2] if len(batch) > 2 else None)
        l, m, c = metric_terms(task, out, batch[1])
        loss_sum, metric_sum, count = loss_sum + l, metric_sum + m, count + c
    model.train()
    return loss_sum / count, metric_sum / count


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


class _StopFlag:
    """Set by SIGTERM (what Slurm sends before a time limit or preemption); read between steps."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        self.requested = True

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handler)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


class _Control:
    """CPU-side collectives between ranks on a gloo group (also under NCCL, so that stop flags,
    timing reductions and object gathering never synchronise the GPU)."""

    def __init__(self, world: int, timeout_s: int):
        self.world = world
        self.group = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s)) if world > 1 else None

    def any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        return bool(t.item())

    def all(self, flag: bool) -> bool:
        return not self.any(not flag)

    def max(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        return t.tolist()

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None on the other ranks."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if dist.get_rank() == 0 else None
        dist.gather_object(obj, out, dst=0, group=self.group)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=self.group)


def _test_signal(rank: int) -> tuple[int, int] | None:
    """(signal, global step) from LIQUIDBENCH_TEST_SIGNAL="TERM@N[@RANK]", for this rank."""
    text = os.environ.get("LIQUIDBENCH_TEST_SIGNAL")
    if not text:
        return None
    parts = text.split("@")
    try:
        sig = getattr(signal, f"SIG{parts[0].upper()}")
        step = int(parts[1])
        only = int(parts[2]) if len(parts) > 2 else None
    except (AttributeError, IndexError, ValueError) as exc:
        raise ValueError(f"LIQUIDBENCH_TEST_SIGNAL: expected SIGNAL@STEP[@RANK] such as TERM@5, got {text!r}") from exc
    return None if only is not None and only != rank else (sig, step)


def _params_sha256(model: torch.nn.Module) -> str:
    """Fingerprint of the parameters and buffers (names, dtypes and exact bytes)."""
    parts = []
    for name, t in model.state_dict().items():
        parts.append(name.encode() + str(t.dtype).encode() + t.detach().cpu().contiguous().numpy().tobytes())
    return sha256_bytes(b"\0".join(parts))


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def train(spec: RunSpec) -> dict | None:
    """Train one run; rank 0 writes metrics.json, history.csv, telemetry.csv and gets the metrics back.

    Raises Preempted (exit code 143) after writing a checkpoint when SIGTERM arrives.
    """
    unknown = set(spec.train_params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"training: unknown parameter(s) {sorted(unknown)}, expected {sorted(DEFAULTS)}")
    unknown = set(spec.hardware_spec) - set(HARDWARE_DEFAULTS) - {"resources"}
    if unknown:
        raise ValueError(f"hardware '{spec.hardware}': unknown key(s) {sorted(unknown)}")
    p = {**DEFAULTS, **spec.train_params}
    hw = {**HARDWARE_DEFAULTS, **{k: v for k, v in spec.hardware_spec.items() if k != "resources"}}
    if not hw["telemetry_interval_s"] > 0:
        raise ValueError(f"hardware '{spec.hardware}': telemetry_interval_s must be > 0, got {hw['telemetry_interval_s']}")
    stop = _StopFlag()
    stop.install()
    try:
        rank, _local_rank, world, device = _setup(spec, hw)
        try:
            return _train(spec, p, hw, rank, world, device, stop)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    finally:
        stop.restore()


def _comm_probe(net, model, batch: list[torch.Tensor], task: str, device: torch.device, ctrl: _Control,
                steps: int = COMM_PROBE_STEPS) -> dict:
    """Time forward+backward on one batch with gradient all-reduce (a normal DDP step) and without
    it (``no_sync``), interleaved; the difference of the medians (max over ranks) is the exposed
    communication time of a step. Gradients are discarded and RNG states restored, so training
    is unaffected."""
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    xb, yb, *tb = [t.to(device) for t in batch]

    def one(sync: bool) -> float:
        _sync(device)
        t0 = time.perf_counter()
        with contextlib.nullcontext() if sync else net.no_sync():
            loss_fn(task, net(xb, tb[0] if tb else None), yb).backward()
        _sync(device)
        dt = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return dt

    for _ in range(2):  # warm-up
        one(True), one(False)
    synced, unsynced = [], []
    for _ in range(steps):
        synced.append(one(True))
        unsynced.append(one(False))
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    t_sync, t_nosync = ctrl.max([statistics.median(synced), statistics.median(unsynced)])
    return {"method": "no_sync vs synchronised forward+backward on one batch, medians, max over ranks",
            "steps": steps, "synced_s": t_sync, "no_sync_s": t_nosync, "allreduce_s": max(0.0, t_sync - t_nosync)}


def _train(spec: RunSpec, p: dict, hw: dict, rank: int, world: int, device: torch.device,
           stop: _StopFlag) -> dict | None:
    meta = read_meta(spec.data_dir)
    task, metric_name = meta["task"], meta["metric"]
    train_t = _tensors(load_split(spec.data_dir, "train"))
    val_t = _tensors(load_split(spec.data_dir, "val"))
    test_t = _tensors(load_split(spec.data_dir, "test"))
    out_dir = Path(spec.out_dir)
    ctrl = _Control(world, hw["timeout_s"])
    fault = _test_signal(rank)
    run_fp = ckpt.fingerprint(
        dataset=spec.dataset, model=spec.model, hardware=spec.hardware, seed=spec.seed, model_spec=spec.model_spec,
        train_params=p, hardware_spec={k: v for k, v in hw.items() if k not in ("timeout_s", "telemetry_interval_s")},
        world=world, data=meta.get("sha256"),
    )

    seed_everything(spec.seed)
    model = build_model(spec.model_spec, meta["n_features"], meta["n_outputs"], task, meta["irregular"]).to(device)
    n_params = count_parameters(model)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=p["lr_decay"])

    state = ckpt.load(out_dir, run_fp)
    if not ctrl.all(state is not None):
        state = None
    history, epoch_times, warmup_steps, steady_steps = [], [], [], []
    best_val, best_epoch, best_state = None, None, None
    steps_done, segment, start_epoch, partial, rows = 0, 0, 1, None, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history, epoch_times = state["history"], state["epoch_times"]
        warmup_steps, steady_steps = state["warmup_step_times"], state["steady_step_times"]
        best_val, best_epoch, best_state = state["best_val"], state["best_epoch"], state["best_state"]
        steps_done, segment, rows = state["steps_done"], state["segments"], state["telemetry"]
        partial = state["partial"]
        start_epoch = state["epoch"] if partial is not None else state["epoch"] + 1
        ckpt.set_rng_state(state["rng"][rank], device)
        log.info("resuming from checkpoint: epoch %d, step %d of the epoch (%d steps done, segment %d)",
                 start_epoch if partial else start_epoch - 1, partial["step_in_epoch"] if partial else 0,
                 steps_done, segment)
        del state

    ddp = uses_ddp(hw, world)
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp else model
    batch = per_process_batch(p["batch_size"], world, hw["scaling"], spec.hardware)
    dataset = TensorDataset(*train_t)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=spec.seed)
    # drop_last: each process leaves out its last, incomplete batch (as the LTC paper's code does)
    per_rank = len(sampler) - (len(sampler) % batch if p["drop_last"] else 0)
    if per_rank == 0:
        raise ValueError(f"training: drop_last with batch {batch} leaves no batch of the {len(sampler)} "
                         "training sequences per process; lower batch_size or set drop_last false")
    samples_per_epoch = per_rank * world

    gpu_reader, gpu_reason = (open_gpu(device.index) if device.type == "cuda" else (None, None))
    if gpu_reason:
        log.warning("no GPU telemetry: %s", gpu_reason)
    telemetry = Sampler(hw["telemetry_interval_s"], rank, segment, gpu_reader)
    sent = 0  # telemetry rows of this rank already gathered into ``rows`` on rank 0

    def gather_rows():
        nonlocal sent, rows
        n = len(telemetry.rows)
        new = ctrl.gather(telemetry.rows[sent:n])
        sent = n
        if rank == 0:
            rows = rows + [r for part in new for r in part]

    def save_checkpoint(epoch: int, partial_state: dict | None, status: str) -> None:
        rng = ctrl.gather(ckpt.rng_state(device))
        gather_rows()
        if rank == 0:
            ckpt.save(out_dir, {
                "fingerprint": run_fp, "epoch": epoch, "partial": partial_state, "steps_done": steps_done,
                "segments": segment + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": rng, "sampler_epoch": epoch, "history": history,
                "epoch_times": epoch_times, "warmup_step_times": warmup_steps, "steady_step_times": steady_steps,
                "best_val": best_val, "best_epoch": best_epoch, "best_state": best_state, "status": status,
                "telemetry": rows,
            })
        ctrl.barrier()

    log.info("rank %d/%d on %s: %s %s, %d parameters, batch %d per process, %d epochs",
             rank, world, device, spec.dataset, spec.model, n_params, batch, p["epochs"])
    status = "ok"
    ctrl.barrier()
    telemetry.start()
    try:
        for epoch in range(start_epoch, p["epochs"] + 1):
            sampler.set_epoch(epoch)
            order = list(sampler)
            batches = [order[i : i + batch] for i in range(0, per_rank, batch)]
            first, elapsed_before, step_times = 0, 0.0, []
            loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
            if partial is not None:
                first, elapsed_before = partial["step_in_epoch"], partial["elapsed_s"]
                step_times, loss_sum = list(partial["step_times"]), partial["loss_sum"].to(device)
                partial = None
            events, stopped_at = [], None
            _sync(device)
            t0 = time.perf_counter()
            for k in range(first, len(batches)):
                if fault and steps_done + 1 == fault[1]:
                    os.kill(os.getpid(), fault[0])
                idx = torch.tensor(batches[k])
                xb, yb, *tb = [t[idx].to(device, non_blocking=True) for t in train_t]
                if device.type == "cuda":
                    ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                    ev[0].record()
                else:
                    ts = time.perf_counter()
                loss = loss_fn(task, net(xb, tb[0] if tb else None), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if p["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
                opt.step()
                if device.type == "cuda":
                    ev[1].record()
                    events.append(ev)
                else:
                    step_times.append(time.perf_counter() - ts)
                loss_sum += torch.stack([loss.detach().double() * len(xb),
                                         torch.tensor(len(xb), dtype=torch.float64, device=device)])
                steps_done += 1
                if ctrl.any(stop.requested):
                    stopped_at = k + 1
                    break
            _sync(device)
            elapsed = elapsed_before + time.perf_counter() - t0
            step_times += [a.elapsed_time(b) / 1000 for a, b in events]
            # the slowest rank sets the pace: per-step and epoch times are maxima over ranks
            elapsed, *step_times = ctrl.max([elapsed] + step_times)
            if stopped_at is not None and stopped_at < len(batches):
                telemetry.stop()  # its last sample closes this process's window
                save_checkpoint(epoch, {"step_in_epoch": stopped_at, "elapsed_s": elapsed, "step_times": step_times,
                                        "loss_sum": loss_sum.cpu()}, status)
                log.warning("SIGTERM: checkpoint written at epoch %d step %d; exiting", epoch, stopped_at)
                raise Preempted(f"stopped by SIGTERM at epoch {epoch}, step {stopped_at}; checkpoint written")
            sched.step()
            if ddp:
                dist.all_reduce(loss_sum)
            train_loss = float(loss_sum[0] / loss_sum[1])
            epoch_times.append(elapsed)
            (warmup_steps if epoch == 1 else steady_steps).extend(step_times)
            val_loss, val_metric = evaluate(model, val_t, task, p["eval_batch_size"], device)
            history.append(dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_metric=val_metric,
                                epoch_time_s=elapsed))
            if rank == 0:  # the same figures on every rank (losses are averaged over ranks)
                log.info("epoch %d: train_loss %.6f val_loss %.6f val_%s %.6f time %.3fs",
                         epoch, train_loss, val_loss, metric_name, val_metric, elapsed)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                status = "diverged"
                log.warning("loss is not finite at epoch %d: stopping", epoch)
                break
            if better(metric_name, val_metric, best_val):
                best_val, best_epoch = val_metric, epoch
                best_state = copy.deepcopy(model.state_dict())
            stopping = ctrl.any(stop.requested) and epoch < p["epochs"]
            if stopping:
                telemetry.stop()
            save_checkpoint(epoch, None, status)
            if stopping:
                log.warning("SIGTERM: checkpoint written after epoch %d; exiting", epoch)
                raise Preempted(f"stopped by SIGTERM after epoch {epoch}; checkpoint written")

        comm = None
        if world > 1:
            first_batch = [t[torch.tensor(list(sampler)[:batch])] for t in train_t]
            comm = _comm_probe(net, model, first_batch, task, device, ctrl)
    finally:
        telemetry.stop()
    gather_rows()
    final_sha = _params_sha256(model)
    torch_mem = None
    if device.type == "cuda":
        mems = ctrl.gather(torch.cuda.max_memory_allocated(device) / 2**20)
        torch_mem = max(mems) if mems else None

    test_metric = float("nan")
    if best_state is not None:
        model.load_state_dict(best_state)
        test_metric = evaluate(model, test_t, task, p["eval_batch_size"], device)[1]
    if rank != 0:
        return None

    steady = epoch_times[1:] or epoch_times
    steps = steady_steps or warmup_steps
    step_median = statistics.median(steps) if steps else None
    comm_fraction = None
    if comm is not None and step_median:
        comm_fraction = min(1.0, comm["allreduce_s"] / step_median)
    metrics = {
        "dataset": spec.dataset,
        "model": spec.model,
        "model_type": spec.model_spec.get("type"),
        "hardware": spec.hardware,
        "seed": spec.seed,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "world_size": world,
        "nodes": hw["nodes"],
        "nproc_per_node": hw["nproc_per_node"],
        "backend": dist.get_backend() if ddp else None,
        "ddp": ddp,
        "threads": torch.get_num_threads(),
        "scaling": hw["scaling"],
        "batch_size_per_process": batch,
        "global_batch_size": batch * world,
        "epochs": p["epochs"],
        "epochs_run": len(history),
        "n_params": n_params,
        "task": task,
        "metric_name": metric_name,
        "final_train_loss": history[-1]["train_loss"],
        "best_val_metric": best_val,
        "best_epoch": best_epoch,
        "test_metric": test_metric,
        "final_params_sha256": final_sha,
        "train_time_s": sum(epoch_times),
        "warmup_time_s": epoch_times[0],
        "steady_epoch_time_s": float(np.mean(steady)),
        "epoch_times_s": epoch_times,
        "samples_per_epoch": samples_per_epoch,
        "throughput_samples_per_s": samples_per_epoch * len(steady) / sum(steady),
        "steps_per_epoch": math.ceil(len(sampler) / batch),
        "step_time_median_s": step_median,
        "step_time_p95_s": _percentile(steps, 95),
        "step_timer": "cuda_events" if device.type == "cuda" else "perf_counter",
        "comm_fraction": comm_fraction,
        "comm_probe": comm,
        "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "segments": segment + 1,
        "telemetry": summarize(rows, interval_s=hw["telemetry_interval_s"], epochs=len(history), device=device.type,
                               gpu_reason=gpu_reason, torch_max_memory_allocated_mb=torch_mem),
        "status": status,
        "train_params": p,
        "model_params": spec.model_spec,
        "env": environment(),
    }
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_csv(out_dir / "telemetry.csv", rows)
    write_text(out_dir / "history.csv", buf.getvalue())
    write_json(out_dir / "metrics.json", metrics)
    ckpt.remove(out_dir)
    return metrics
