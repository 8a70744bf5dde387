"""One training loop for every hardware configuration.

A run on one process and a DDP run started by torchrun execute the same code: the process group,
rank and device come from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE), as in nanoGPT.
Rank 0 alone writes outputs.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import os
import random
import resource
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ..data import load_split, read_meta
from ..envinfo import environment
from ..io import write_json, write_text
from ..models import build_model, count_parameters
from .errors import HardwareError
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
}
HARDWARE_DEFAULTS = {
    "device": "cpu",
    "nodes": 1,
    "nproc_per_node": 1,
    "threads": 1,
    "backend": None,
    "scaling": None,
    "timeout_s": 300,
}

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
    if world > 1:
        backend = hw["backend"] or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(
            backend=backend,
            timeout=timedelta(seconds=hw["timeout_s"]),
            device_id=device if device.type == "cuda" else None,
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


def train(spec: RunSpec) -> dict | None:
    """Train one run; rank 0 writes metrics.json and history.csv and gets the metrics back."""
    unknown = set(spec.train_params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"training: unknown parameter(s) {sorted(unknown)}, expected {sorted(DEFAULTS)}")
    unknown = set(spec.hardware_spec) - set(HARDWARE_DEFAULTS) - {"resources"}
    if unknown:
        raise ValueError(f"hardware '{spec.hardware}': unknown key(s) {sorted(unknown)}")
    p = {**DEFAULTS, **spec.train_params}
    hw = {**HARDWARE_DEFAULTS, **{k: v for k, v in spec.hardware_spec.items() if k != "resources"}}
    rank, _local_rank, world, device = _setup(spec, hw)
    try:
        return _train(spec, p, hw, rank, world, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(spec: RunSpec, p: dict, hw: dict, rank: int, world: int, device: torch.device) -> dict | None:
    meta = read_meta(spec.data_dir)
    task, metric_name = meta["task"], meta["metric"]
    train_t = _tensors(load_split(spec.data_dir, "train"))
    val_t = _tensors(load_split(spec.data_dir, "val"))
    test_t = _tensors(load_split(spec.data_dir, "test"))

    seed_everything(spec.seed)
    model = build_model(spec.model_spec, meta["n_features"], meta["n_outputs"], task, meta["irregular"]).to(device)
    n_params = count_parameters(model)
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=p["lr_decay"])

    batch = per_process_batch(p["batch_size"], world, hw["scaling"], spec.hardware)
    dataset = TensorDataset(*train_t)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=spec.seed)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=0)
    samples_per_epoch = len(sampler) * world

    log.info("rank %d/%d on %s: %s %s, %d parameters, batch %d per process, %d epochs",
             rank, world, device, spec.dataset, spec.model, n_params, batch, p["epochs"])
    history, epoch_times = [], []
    best_val, best_epoch, best_state = None, None, None
    status = "ok"
    for epoch in range(1, p["epochs"] + 1):
        sampler.set_epoch(epoch)
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        _sync(device)
        t0 = time.perf_counter()
        for xb, yb, *tb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            elapsed = tb[0].to(device, non_blocking=True) if tb else None
            loss = loss_fn(task, net(xb, elapsed), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if p["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
            opt.step()
            loss_sum += torch.stack([loss.detach().double() * len(xb), torch.tensor(len(xb), dtype=torch.float64, device=device)])
        _sync(device)
        epoch_time = time.perf_counter() - t0
        sched.step()
        if world > 1:
            dist.all_reduce(loss_sum)
            t = torch.tensor([epoch_time], dtype=torch.float64, device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            epoch_time = float(t)
        train_loss = float(loss_sum[0] / loss_sum[1])
        epoch_times.append(epoch_time)
        val_loss, val_metric = evaluate(model, val_t, task, p["eval_batch_size"], device)
        history.append(dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_metric=val_metric,
                            epoch_time_s=epoch_time))
        log.info("epoch %d: train_loss %.6f val_loss %.6f val_%s %.6f time %.3fs",
                 epoch, train_loss, val_loss, metric_name, val_metric, epoch_time)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            status = "diverged"
            log.warning("loss is not finite at epoch %d: stopping", epoch)
            break
        if better(metric_name, val_metric, best_val):
            best_val, best_epoch = val_metric, epoch
            best_state = copy.deepcopy(model.state_dict())

    test_metric = float("nan")
    if best_state is not None:
        model.load_state_dict(best_state)
        test_metric = evaluate(model, test_t, task, p["eval_batch_size"], device)[1]
    if rank != 0:
        return None

    steady = epoch_times[1:] or epoch_times
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
        "train_time_s": sum(epoch_times),
        "warmup_time_s": epoch_times[0],
        "steady_epoch_time_s": float(np.mean(steady)),
        "epoch_times_s": epoch_times,
        "samples_per_epoch": samples_per_epoch,
        "throughput_samples_per_s": samples_per_epoch * len(steady) / sum(steady),
        "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "status": status,
        "train_params": p,
        "model_params": spec.model_spec,
        "env": environment(),
    }
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(Path(spec.out_dir) / "history.csv", buf.getvalue())
    write_json(Path(spec.out_dir) / "metrics.json", metrics)
    return metrics
