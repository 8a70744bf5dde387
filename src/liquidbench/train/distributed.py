"""The distributed plumbing of a run: process group, collectives between ranks, the SIGTERM flag
and the ranks' agreement on it, fault injection for tests, and the communication probe.

A run on one process and a DDP run started by torchrun execute the same code: rank, local rank
and world size come from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE), as in nanoGPT;
with one process every collective here is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import HardwareError
from .settings import Hardware
from .tasks import loss_fn

# synchronised and no_sync steps each: the difference of two medians, a millisecond or two out of a
# step of several, needs more than a handful (10 gave 0.3-1.5 ms for one LSTM over three seeds)
COMM_PROBE_STEPS = 30
STOP_CHECK_STEPS = 10  # with several processes, ranks agree on a SIGTERM every this many steps


@dataclass(frozen=True)
class Place:
    """Where this process runs: its rank among ``world`` processes, its device, and whether the
    model is wrapped in DDP."""

    rank: int
    local_rank: int
    world: int
    device: torch.device
    ddp: bool


def sync(device: torch.device) -> None:
    """Wait for the device (before reading a clock)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def uses_ddp(hw: Hardware, world: int) -> bool:
    """DDP with more than one process, or with one when the entry names a backend (ddp-1gpu)."""
    return world > 1 or hw.backend is not None


def setup(hw: Hardware) -> Place:
    """Rank, device and DDP of this process; starts the process group under torchrun."""
    hardware = hw.name
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    expected = hw.world
    if world != expected:
        raise HardwareError(
            f"hardware '{hardware}' expects {expected} process(es) "
            f"({hw.nodes} node(s) x {hw.nproc_per_node}), but WORLD_SIZE is {world}: "
            "start multi-process configurations through torchrun"
        )
    if hw.device == "cuda":
        if not torch.cuda.is_available():
            raise HardwareError(
                f"hardware '{hardware}' asks for device 'cuda', but CUDA is not available on "
                f"this machine (torch {torch.__version__}); choose a CPU configuration"
            )
        if local_rank >= torch.cuda.device_count():
            raise HardwareError(
                f"hardware '{hardware}': local rank {local_rank} has no GPU "
                f"({torch.cuda.device_count()} visible)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif hw.device == "cpu":
        device = torch.device("cpu")
    else:
        raise HardwareError(f"hardware '{hardware}': device '{hw.device}' is unknown, expected cpu or cuda")
    torch.set_num_threads(hw.threads)
    ddp = uses_ddp(hw, world)
    if ddp:
        backend = hw.backend or ("nccl" if device.type == "cuda" else "gloo")
        if backend == "nccl" and device.type != "cuda":
            raise HardwareError(f"hardware '{hardware}': backend nccl needs device cuda, got {device.type}")
        # one DDP process started without torchrun: an in-memory store instead of a rendezvous
        store = dict(store=dist.HashStore(), rank=0, world_size=1) if world == 1 and "MASTER_ADDR" not in os.environ else {}
        dist.init_process_group(
            backend=backend,
            timeout=timedelta(seconds=hw.timeout_s),
            device_id=device if device.type == "cuda" else None,
            **store,
        )
    return Place(rank, local_rank, world, device, ddp)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class Control:
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


class StopFlag:
    """Set by SIGTERM (what Slurm sends before a time limit or preemption); read between steps.
    A context manager: the handler is installed on entry (main thread only) and restored on exit."""

    def __init__(self):
        self.requested = False
        self._previous = None
        self._note = b""

    def _handler(self, signum, frame):
        if not self.requested:
            # Which rank received it, on which host: a multi-node job's log shows that the signal
            # reached every rank (os.write: no logging lock is taken inside a signal handler).
            os.write(2, self._note)
        self.requested = True

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._note = f"SIGTERM received by rank {os.environ.get('RANK', '0')} on {socket.gethostname()}\n".encode()
            self._previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


class StopAgreement:
    """When to stop after a SIGTERM, agreed by all ranks without a blocking collective in the timed
    epoch.

    One process reads its own flag after every step. With several processes every rank must stop
    after the same step (DDP's gradient all-reduce would otherwise hang), so the ranks all-reduce
    their flags. A blocking all-reduce after each step sat inside the timed epoch and charged every
    DDP step a round trip that the one-process baseline does not pay (docs/measurements-history.md,
    "Issue 10"). Instead, after every ``every``-th optimisation step (counted over the run, so the
    same steps on every rank) the flag goes into a non-blocking all-reduce (async_op on the gloo
    control group) that runs while the next step computes, and is waited for after that step,
    where it has normally completed: every rank reads the same reduced value after the same step,
    so all stop together, at most ``every`` + 1 steps after the signal -- seconds, against the minutes
    between Slurm's SIGTERM and the time limit. Checking only every ``every`` steps also divides
    the remaining cost (starting the collective, the gloo thread's CPU time) by ``every``. At an
    epoch's end the outstanding all-reduce is drained outside the timed region, and the epoch-end
    check still agrees on the flag, so a signal late in an epoch stops after that epoch."""

    def __init__(self, ctrl: Control, stop: StopFlag, every: int = STOP_CHECK_STEPS):
        self.ctrl, self.stop, self.every = ctrl, stop, every
        self._flag = self._work = None

    def after_step(self, steps_done: int) -> bool:
        """True when every rank is to stop now (call after each optimisation step, with the number
        of steps done in the run)."""
        if self.ctrl.world == 1:
            return self.stop.requested
        agreed = self.drain()
        if not agreed and steps_done % self.every == 0:
            self._flag = torch.tensor([int(self.stop.requested)], dtype=torch.int32)
            self._work = dist.all_reduce(self._flag, op=dist.ReduceOp.MAX, group=self.ctrl.group, async_op=True)
        return agreed

    def drain(self) -> bool:
        """Wait for the outstanding all-reduce (before other collectives on the group); its result."""
        if self._work is None:
            return False
        self._work.wait()
        agreed, self._flag, self._work = bool(self._flag.item()), None, None
        return agreed

    def at_epoch_end(self, epoch: int, epochs: int) -> bool:
        """Every rank's verdict after an epoch: stop (checkpoint and exit) if any rank has the flag
        and epochs remain."""
        return self.ctrl.any(self.stop.requested) and epoch < epochs


class FaultInjector:
    """Test hook: LIQUIDBENCH_TEST_SIGNAL="TERM@N" (or "KILL@N", optionally "@RANK") makes the
    process(es) send themselves that signal just before global optimisation step N, to exercise the
    real signal paths at a reproducible point."""

    def __init__(self, rank: int, text: str | None = None):
        text = os.environ.get("LIQUIDBENCH_TEST_SIGNAL") if text is None else text
        self.signal = self.step = None
        if not text:
            return
        parts = text.split("@")
        try:
            sig = getattr(signal, f"SIG{parts[0].upper()}")
            step = int(parts[1])
            only = int(parts[2]) if len(parts) > 2 else None
        except (AttributeError, IndexError, ValueError) as exc:
            raise ValueError(f"LIQUIDBENCH_TEST_SIGNAL: expected SIGNAL@STEP[@RANK] such as TERM@5, got {text!r}") from exc
        if only is None or only == rank:
            self.signal, self.step = sig, step

    def before_step(self, step: int) -> None:
        """Call with the number of the global step about to run (1-based)."""
        if self.signal is not None and step == self.step:
            os.kill(os.getpid(), self.signal)


def comm_probe(net, model, batch: list[torch.Tensor], task: str, device: torch.device, ctrl: Control,
               steps: int = COMM_PROBE_STEPS) -> dict:
    """Time forward+backward on one batch with gradient all-reduce (a normal DDP step) and without
    it (``no_sync``), interleaved; the difference of the medians (max over ranks) is the exposed
    communication time of a step. Gradients are discarded and RNG states restored, so training
    is unaffected."""
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    xb, yb, *tb = [t.to(device) for t in batch]

    def one(synced: bool) -> float:
        sync(device)
        t0 = time.perf_counter()
        with contextlib.nullcontext() if synced else net.no_sync():
            loss_fn(task, net(xb, tb[0] if tb else None), yb).backward()
        sync(device)
        dt = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return dt

    for _ in range(2):  # warm-up
        one(True), one(False)
    with_sync, without = [], []
    for _ in range(steps):
        with_sync.append(one(True))
        without.append(one(False))
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    t_sync, t_nosync = ctrl.max([statistics.median(with_sync), statistics.median(without)])
    return {"method": "no_sync vs synchronised forward+backward on one batch, medians, max over ranks",
            "steps": steps, "synced_s": t_sync, "no_sync_s": t_nosync, "allreduce_s": max(0.0, t_sync - t_nosync)}
