"""Two "nodes" on one machine for interconnect tests: network namespaces joined by a veth pair,
a tbf bandwidth limit on the link, and a 2-process gloo job across it (tests/test_scaling_limits.py,
benchmarks/bench_scaling_limits.py).

- :func:`problem`: why a pair cannot be made here (None when it can);
- :class:`NetPair`: a context manager creating namespaces ``lbsm-a-<pid>-<k>`` and ``lbsm-b-<pid>-<k>``
  joined by a veth pair (``lbsm0`` in A, ``lbsm1`` in B) on 10.213.X.0/24, X derived from the pid (the
  addresses live only inside the two namespaces, so they clash with nothing outside them), loopback
  up; on exit, also after a failure, every process still in the namespaces is killed and the
  namespaces are deleted, which removes the veth pair with them (as tests/slurm/cluster.sh's
  make_network builds its nodes' link);
- :func:`set_limit` / :func:`clear_limit`: a tbf qdisc on both ends' egress, so both directions are limited;
- :class:`Ranks`: rank 0 in namespace A, rank 1 in B (``ip netns exec NS chrt --fifo 1 env -i ... python``),
  told their places as torchrun tells its workers (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR = A's
  address, MASTER_PORT), GLOO_SOCKET_IFNAME the veth of their namespace, one thread each. The two
  processes live for the whole measurement and run one *phase* per :meth:`Ranks.measure` (the caller
  sets the limit in between: :func:`measure_limits` interleaves the limits), so that no phase pays
  torch's start-up. A phase, in both ranks at once:

  1. the all-reduce probe (:func:`liquidbench.train.probes.allreduce_probe`, gloo, world 2, in the group
     :func:`~liquidbench.train.probes.init_from_env` joined: what ``python -m liquidbench.train.probes``
     runs under torchrun), over the link as it is now;
  2. in alternating blocks, so that both see the same state of the machine: the step probe
     (:func:`liquidbench.train.probes.step_probe`: no DDP, no all-reduce) in both ranks at once, and
     real DDP training steps of the same model, wrapped as the training loop wraps it
     (``DistributedDataParallel``, gloo): forward, loss (``liquidbench.train.tasks.loss_fn``),
     zero_grad, backward with DDP's gradient all-reduce, clip, Adam, as the step probe times them; per
     step the slower rank's seconds.

- :func:`analyse`: per limit the fits (``fit_allreduce`` on the all-reduce samples, one width: ring)
  and the model's prediction of the DDP step, step = t_c(b) + exposed * t_allreduce(2, g), with the
  slowdown against the unlimited link, next to the measured one.

Real-time priority. The ranks run under SCHED_FIFO at the lowest real-time priority, so that each
has a CPU to itself whenever it is runnable, as a rank has its node. Without it, on a machine
shared with other work, a rank that blocks in a collective waits milliseconds to be scheduled again
(measured here: a gloo barrier after each step cost 2-6 ms instead of 0.2 ms; steps that took 1.7 ms
alone took 4-8 ms in lock-step), so the synchronous DDP step's median measured the machine's other
load, not the model's terms. The ranks sleep while they wait (gloo does not spin), and the kernel
keeps 5 % of each CPU for everything else (sched_rt_runtime_us).

Run as a script this file is one rank's process (``python tests/netpair.py '<json>'``, what
:class:`Ranks` starts).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALL = "apt-get install iproute2 util-linux"  # ip and tc (iproute2); nsenter and chrt (util-linux)
TOOLS = ("ip", "tc", "nsenter", "chrt")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
IFNAMES = ("lbsm0", "lbsm1")
SRC = Path(__file__).resolve().parents[1] / "src"
_counter = itertools.count()

# The measured job: an LSTM of 14 002 parameters (a 56 kB float32 gradient, inside the probed message
# sizes, one DDP bucket) whose step at per-process batch 16 takes about 5 ms on one CPU thread here.
MODEL = {"type": "lstm", "hidden_size": 56}
SHAPE = {"n_features": 4, "n_outputs": 2, "task": "regression_per_step", "seq_len": 256}
BATCH = 16  # per process
SIZES = tuple(16384 * 2 ** k for k in range(4))  # 16 kB .. 128 kB around the gradient's 56 kB
LIMITS = (None, "1gbit", "100mbit", "20mbit")  # None: no qdisc of ours


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=SBIN_PATH)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([_which(argv[0]) or argv[0], *argv[1:]], capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc


def problem() -> str | None:
    """Why the pair and its job cannot run here, or None. Tries it: a namespace with a veth pair and a
    tbf qdisc is made and removed, and a process is started under SCHED_FIFO."""
    missing = [tool for tool in TOOLS if not _which(tool)]
    if missing:
        return f"missing {', '.join(missing)} (install: {INSTALL})"
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth links, tc qdiscs, real-time priority)"
    name = f"lbsm-check-{os.getpid()}-{next(_counter)}"
    made = _run("ip", "netns", "add", name, check=False)
    if made.returncode:
        return f"cannot create a network namespace here (ip netns add: {made.stderr.strip()})"
    try:
        for argv in (("ip", "-n", name, "link", "add", "lbsmv0", "type", "veth", "peer", "name", "lbsmv1"),
                     ("tc", "-n", name, "qdisc", "add", "dev", "lbsmv0", "root", "tbf", "rate", "20mbit",
                      "burst", "1600", "latency", "50ms")):
            proc = _run(*argv, check=False)
            if proc.returncode:
                return (f"'{' '.join(argv[:4])} ...' failed in a test namespace: {proc.stderr.strip()} (the "
                        f"kernel's veth and sch_tbf are needed)")
    finally:
        _run("ip", "netns", "del", name, check=False)
    rt = _run("chrt", "--fifo", "1", "true", check=False)
    if rt.returncode:
        return f"cannot run a process under SCHED_FIFO (chrt --fifo 1: {rt.stderr.strip()}; needs CAP_SYS_NICE)"
    return None


# -- the namespace pair ----------------------------------------------------------------------------


class NetPair:
    """Two network namespaces joined by a veth pair (module docstring); ``with NetPair() as pair:``."""

    def __init__(self):
        pid = os.getpid()
        k = next(_counter)
        self.ns = (f"lbsm-a-{pid}-{k}", f"lbsm-b-{pid}-{k}")
        subnet = 1 + (pid * 7 + k) % 250
        self.addr = (f"10.213.{subnet}.1", f"10.213.{subnet}.2")
        self.ifname = IFNAMES
        self._made: list[str] = []

    def __enter__(self) -> NetPair:
        try:
            for ns in self.ns:
                _run("ip", "netns", "add", ns)
                self._made.append(ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            # created in A, its peer moved to B: no interface of the machine's own namespace is involved
            _run("ip", "-n", self.ns[0], "link", "add", self.ifname[0], "type", "veth", "peer", "name",
                 self.ifname[1], "netns", self.ns[1])
            for ns, ifname, addr in zip(self.ns, self.ifname, self.addr):
                _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
                _run("ip", "-n", ns, "link", "set", ifname, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill what still runs in the namespaces, then delete them (the veth pair goes with them)."""
        for ns in reversed(self._made):
            for _ in range(100):
                pids = [int(p) for p in _run("ip", "netns", "pids", ns, check=False).stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            _run("ip", "netns", "del", ns, check=False)
        self._made.clear()

    def exec_argv(self, side: int, env: dict, argv: list[str], realtime: bool = False) -> list[str]:
        """``argv`` run in namespace ``side`` (0: A, 1: B) with exactly ``env`` as its environment; with
        ``realtime``, under SCHED_FIFO at the lowest real-time priority (module docstring)."""
        rt = [_which("chrt"), "--fifo", "1"] if realtime else []
        return [_which("ip"), "netns", "exec", self.ns[side], *rt, "env", "-i",
                *(f"{k}={v}" for k, v in env.items()), *argv]


# -- bandwidth limits ------------------------------------------------------------------------------

_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


def rate_bits(rate: str) -> float:
    """'20mbit' -> 2e7 (bits per second; tc's decimal units)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)", rate.strip().lower())
    if not m:
        raise ValueError(f"rate {rate!r}: expected a number and bit, kbit, mbit or gbit (e.g. 20mbit)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def burst_bytes(rate: str) -> int:
    """tbf's bucket for ``rate``: 25 microseconds of the rate, at least 1600 bytes (one full frame).

    Bytes that find tokens in the bucket leave at the veth's own speed, so every all-reduce that starts
    with a full bucket gets its first ``burst`` bytes free: t(m) = 2 alpha + m beta - burst / rate.
    Why small: (1) the probe's all-reduces are a barrier apart, DDP's a step's compute apart, so at low
    rates the bucket refills for DDP and not for the probe, and the DDP step comes out faster than the
    probe predicts by up to burst / rate (measured at 20 Mbit/s: a 12 kB bucket made the DDP step 3.7 ms
    faster and left the probe unchanged); (2) where it refills for both (high rates), burst / rate is
    subtracted from the fitted intercept, i.e. from 2 alpha, and alpha sets the knee at large widths
    (2 (n - 1) alpha): with 12.5 kB at 1 Gbit/s the fitted alpha came out 0 (50 us without a limit) and
    the predicted knee moved out to 64 instead of in. 25 us of the rate keeps the shift of alpha at
    12.5 us; one frame keeps (1) below 0.7 ms at 20 Mbit/s (2 % of the step), 0.13 ms at 100 Mbit/s.
    Why not smaller: the bucket must hold a whole frame (MTU 1500 + 14 bytes of Ethernet header; tbf
    splits larger GSO packets into frames), else tbf drops it, and at 1 Gbit/s a bucket of one frame
    (a timer wake-up per frame) delivered only 500-560 Mbit/s here, 3 kB 885-900 Mbit/s. The kernel's
    qdisc watchdog is a high-resolution timer, so the old rule burst >= rate / HZ does not apply."""
    return max(1600, int(rate_bits(rate) / 8 * 25e-6))


def queue_latency_ms(rate: str, queue_bytes: int = 1 << 20) -> int:
    """tbf's ``latency`` (how long a packet may wait, which sizes the queue): long enough to hold
    ``queue_bytes`` (1 MB, several of the largest messages), so that TCP is slowed by the queue and not
    by drops and retransmissions (timer-driven delays of 200 ms, not bandwidth)."""
    return max(50, int(queue_bytes * 8 / rate_bits(rate) * 1000) + 1)


def set_limit(pair: NetPair, rate: str | None) -> None:
    """A tbf of ``rate`` (e.g. '20mbit') on both ends' egress; None: no limit (:func:`clear_limit`)."""
    if rate is None:
        clear_limit(pair)
        return
    for ns, ifname in zip(pair.ns, pair.ifname):
        _run("tc", "-n", ns, "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", rate,
             "burst", str(burst_bytes(rate)), "latency", f"{queue_latency_ms(rate)}ms")


def clear_limit(pair: NetPair) -> None:
    """Remove our qdisc from both ends (the veth's default comes back); nothing to remove is fine."""
    for ns, ifname in zip(pair.ns, pair.ifname):
        proc = _run("tc", "-n", ns, "qdisc", "del", "dev", ifname, "root", check=False)
        if proc.returncode and not any(s in proc.stderr for s in ("No such file", "handle of zero")):
            raise RuntimeError(f"tc qdisc del dev {ifname} root in {ns} failed: {proc.stderr.strip()}")


def qdisc(pair: NetPair, side: int = 0) -> str:
    """``tc -s qdisc show`` of one end (sent, dropped, overlimits)."""
    return _run("tc", "-n", pair.ns[side], "-s", "qdisc", "show", "dev", pair.ifname[side]).stdout.strip()


# -- the two ranks ---------------------------------------------------------------------------------


def free_port(pair: NetPair) -> int:
    """A TCP port free in namespace A (its own port space: nothing else listens there)."""
    code = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"
    argv = pair.exec_argv(0, {"PATH": os.environ.get("PATH", "")}, [sys.executable, "-c", code])
    return int(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


class Ranks:
    """Rank 0 in A, rank 1 in B, each running this file as a script; ``with Ranks(pair) as ranks:``,
    then :meth:`measure` per phase. Rank 0 takes commands on its stdin and answers on its stdout (one
    JSON line each); both ranks' stderr goes to log files, whose last lines an error shows."""

    def __init__(self, pair: NetPair, *, timeout_s: int = 300, model=MODEL, shape=SHAPE, seed: int = 0,
                 realtime: bool = True):
        self.pair, self.timeout_s, self.realtime = pair, timeout_s, realtime
        self.config = {"model": dict(model), **shape, "seed": seed, "timeout_s": timeout_s}
        self.procs: list[subprocess.Popen] = []
        self.tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Ranks:
        self.tmp = tempfile.TemporaryDirectory(prefix="liquidbench-netpair-")
        try:
            port = free_port(self.pair)
            pythonpath = os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
            for rank in (0, 1):
                env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
                       "PYTHONPATH": pythonpath, "RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2",
                       "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": self.pair.addr[0], "MASTER_PORT": str(port),
                       "GLOO_SOCKET_IFNAME": self.pair.ifname[rank], "OMP_NUM_THREADS": "1",
                       "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
                with open(os.path.join(self.tmp.name, f"rank{rank}.log"), "wb") as log:
                    argv = [sys.executable, str(Path(__file__).resolve()), json.dumps(self.config)]
                    self.procs.append(subprocess.Popen(
                        self.pair.exec_argv(rank, env, argv, self.realtime),
                        stdin=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
                        stdout=subprocess.PIPE if rank == 0 else log, stderr=log, text=True))
            self._read("ready")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.procs and self.procs[0].poll() is None:
            try:
                self.procs[0].stdin.write(json.dumps({"stop": True}) + "\n")
                self.procs[0].stdin.flush()
                self.procs[0].wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs.clear()
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None

    def _logs(self) -> str:
        out = []
        for rank, p in enumerate(self.procs):
            path = os.path.join(self.tmp.name, f"rank{rank}.log")
            lines = [x for x in open(path, errors="replace").read().splitlines() if x.strip()]
            out.append(f"rank {rank} (exit {p.poll()}): " + (" | ".join(lines[-4:]) or "(no output)"))
        return "; ".join(out)

    def _fail(self, why: str):
        for p in self.procs:  # the other rank may wait in a collective its peer left
            if p.poll() is None:
                p.kill()
            p.wait()
        raise RuntimeError(f"the 2-rank job across {self.pair.ns[0]} and {self.pair.ns[1]} {why}: {self._logs()}")

    def _read(self, expect: str) -> dict:
        out = self.procs[0].stdout
        ready, _, _ = select.select([out], [], [], self.timeout_s)
        if not ready:
            self._fail(f"sent no '{expect}' within {self.timeout_s} s")
        line = out.readline()
        if not line:
            self._fail(f"ended before '{expect}'")
        msg = json.loads(line)
        if msg.get("what") != expect:
            self._fail(f"answered {msg} instead of '{expect}'")
        return msg

    def measure(self, *, batches=(BATCH,), ddp_batch: int = BATCH, sizes=SIZES, ar_warmup: int = 2,
                ar_repeats: int = 6, blocks: int = 3, step_warmup: int = 2, step_repeats: int = 6,
                ddp_warmup: int = 3, ddp_steps: int = 6) -> dict:
        """One phase (module docstring) under whatever limit is set now: ``allreduce`` ([size, seconds per
        repetition, the slower rank's]), ``step`` (per rank, per batch size of ``batches``: the step
        probe's seconds, ``blocks`` times ``step_repeats``), ``ddp`` (seconds per DDP step at ``ddp_batch``,
        the slower rank's, ``blocks`` times ``ddp_steps``), ``n_params`` and ``gradient_bytes``."""
        if ddp_batch not in batches:
            raise ValueError(f"ddp_batch {ddp_batch}: expected one of the step probe's batches {list(batches)}")
        cmd = {"batches": list(batches), "ddp_batch": ddp_batch, "sizes": list(sizes), "ar_warmup": ar_warmup,
               "ar_repeats": ar_repeats, "blocks": blocks, "step_warmup": step_warmup,
               "step_repeats": step_repeats, "ddp_warmup": ddp_warmup, "ddp_steps": ddp_steps}
        try:
            self.procs[0].stdin.write(json.dumps(cmd) + "\n")
            self.procs[0].stdin.flush()
        except OSError:
            self._fail("could not be given a phase")
        return self._read("phase")


def measure_limits(pair: NetPair, ranks: Ranks, limits=LIMITS, rounds: int = 4, **measure) -> dict:
    """``rounds`` phases per limit (None: no limit), interleaved: round r measures every limit once, in
    the order of ``limits`` rotated by r, so that a slow spell of the machine falls on all limits alike.
    Returns {limit: [phase, ...]}; the link is left without a limit."""
    limits = list(limits)
    phases = {limit: [] for limit in limits}
    try:
        for r in range(rounds):
            for limit in limits[r % len(limits):] + limits[:r % len(limits)]:
                set_limit(pair, limit)
                phases[limit].append(ranks.measure(**measure))
    finally:
        clear_limit(pair)
    return phases


# -- one rank's process ----------------------------------------------------------------------------


def _rank_main(config_json: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from liquidbench.train.distributed import Control
    from liquidbench.train.optim import adam, clip_gradients
    from liquidbench.train.probes import (FLOAT32_BYTES, GRAD_CLIP, LR, allreduce_probe, init_from_env,
                                          seeded_model, step_probe, synthetic_batch)
    from liquidbench.train.settings import TRAINING_DEFAULTS
    from liquidbench.train.tasks import loss_fn

    c = json.loads(config_json)
    torch.set_num_threads(1)
    place = init_from_env("gloo", c["timeout_s"])
    ctrl = Control(2, c["timeout_s"])
    impl = TRAINING_DEFAULTS["optimizer_impl"]
    shape = {k: c[k] for k in ("n_features", "n_outputs", "task", "seq_len")}

    def say(msg: dict) -> None:
        if place.rank == 0:
            sys.stdout.write(json.dumps(msg) + "\n")
            sys.stdout.flush()

    def ddp_stepper(batch: int):
        """A DDP model built from the seed, its Adam and a batch; returns the function timing one step."""
        model = seeded_model(c["model"], shape["n_features"], shape["n_outputs"], shape["task"], False,
                             c["seed"], place.device)
        net = DDP(model)  # as liquidbench.train.loop wraps it on the CPU
        opt = adam(net.parameters(), impl, lr=LR)
        gen = torch.Generator().manual_seed(c["seed"] + place.rank)
        x, y = synthetic_batch(batch, shape["seq_len"], shape["n_features"], shape["n_outputs"], shape["task"],
                               False, gen)

        def step() -> float:
            t0 = time.perf_counter()
            loss = loss_fn(shape["task"], net(x, None), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP's all-reduce of the gradient is waited for before backward returns
            clip_gradients(net.parameters(), GRAD_CLIP, impl)
            opt.step()
            return time.perf_counter() - t0

        return step

    say({"what": "ready"})
    while True:
        cmd = [None]
        if place.rank == 0:
            line = sys.stdin.readline()
            cmd[0] = json.loads(line) if line.strip() else {"stop": True}
        dist.broadcast_object_list(cmd, src=0, group=ctrl.group)
        cmd = cmd[0]
        if cmd.get("stop"):
            break
        ctrl.barrier()
        ar = allreduce_probe(cmd["sizes"], "gloo", place.device, cmd["ar_warmup"], cmd["ar_repeats"], c["timeout_s"])
        ddp_step = ddp_stepper(cmd["ddp_batch"])
        for _ in range(cmd["ddp_warmup"]):
            ddp_step()
        step, ddp, n_params = [[] for _ in cmd["batches"]], [], None
        for _ in range(cmd["blocks"]):
            ctrl.barrier()
            sp = step_probe(c["model"], batches=cmd["batches"], device="cpu", warmup=cmd["step_warmup"],
                            repeats=cmd["step_repeats"], seed=c["seed"], optimizer_impl=impl, **shape)
            n_params = sp.n_params
            for i, p in enumerate(sp.points):
                step[i].extend(p.samples_s)
            ctrl.barrier()
            ddp.extend(ctrl.max([ddp_step() for _ in range(cmd["ddp_steps"])]))  # per step the slower rank
        step = ctrl.gather(step)
        say({"what": "phase", "n_params": n_params, "gradient_bytes": FLOAT32_BYTES * n_params,
             "batches": cmd["batches"], "ddp_batch": cmd["ddp_batch"], "step": step,
             "allreduce": [[p.x, list(p.samples_s)] for p in ar.points] if ar else None, "ddp": ddp})
    dist.destroy_process_group()


# -- from phases to fits and predictions -----------------------------------------------------------


def compute_samples(phase: dict, batch: int) -> list[float]:
    """The step probe's seconds at ``batch``, per repetition the slower rank's (as the all-reduce probe
    takes the slower rank's): a DDP step waits for the slower rank's compute."""
    i = phase["batches"].index(batch)
    return [max(xs) for xs in zip(*(rank[i] for rank in phase["step"]))]


def allreduce_band(fit, width: int, message_bytes: float) -> tuple[float, float]:
    """The 95 % interval of t(width, m) from the fitted alpha and beta (standard errors, correlation, and
    the t quantile their intervals were made with), cut at 0."""
    from liquidbench.results.scaling_model import coefficients

    ab = fit.model
    ca, cb = (float(v) for v in coefficients(fit.form, width))
    cb *= message_bytes
    point = ca * ab.alpha.value + cb * ab.beta.value
    var = (ca * ab.alpha.se) ** 2 + (cb * ab.beta.se) ** 2 + 2 * ca * cb * ab.corr * ab.alpha.se * ab.beta.se
    q = max(((e.high - e.low) / (2 * e.se) for e in (ab.alpha, ab.beta) if e.se > 0), default=0.0)
    half = q * math.sqrt(max(var, 0.0))
    return max(point - half, 0.0), point + half


def analyse(phases: dict, baseline=None) -> dict:
    """Per limit (the keys of ``phases``; its phases pooled): the all-reduce fit (``fit_allreduce``, width 2:
    ring), t_c(b) (the step probe's median at the DDP batch, per repetition the slower rank), t_allreduce(2, g)
    with its 95 % band, the measured DDP step (median, 95 % interval) and two predictions of it, each with
    its slowdown against ``baseline`` (the key of the unlimited link):

    - ``probes``: the model fed by the probes measured under that limit alone: t_c(b) + exposed *
      t_allreduce(2, g), exposed = 1 (one bucket, launched when the backward pass ends: nothing to hide it
      behind);
    - ``calibrated``: the compute term fitted once, on the unlimited link's DDP step:
      t_c' = step(none) - t_allreduce_none(2, g) (t_c(b) plus DDP's own per-step cost), then
      t_c' + t_allreduce_L(2, g) with that limit's all-reduce fit.

    The baseline's entry also has ``exposed_fit`` = (step(none) - t_c(b)) / t_allreduce_none(2, g), the
    exposed factor the unlimited case implies (above 1 when DDP costs more per step than compute plus
    all-reduce: then exposed cannot explain the difference, and 1 is used) and ``ddp_overhead``
    = step(none) - t_c(b) - t_allreduce_none(2, g)."""
    from liquidbench.results.scaling_model import fit_allreduce
    from liquidbench.train.probes import median_interval

    out = {}
    for limit, phs in phases.items():
        b, g = phs[0]["ddp_batch"], phs[0]["gradient_bytes"]
        fit = fit_allreduce([(2, float(size), samples) for ph in phs for size, samples in ph["allreduce"]],
                            where=f"netpair, limit {limit or 'none'}")
        t_ar = fit.time(2, g) if fit.ok else math.nan
        out[limit] = {"fit": fit, "t_allreduce": t_ar,
                      "t_allreduce_band": allreduce_band(fit, 2, g) if fit.ok else (math.nan, math.nan),
                      "compute": median_interval([s for ph in phs for s in compute_samples(ph, b)]),
                      "ddp": median_interval([s for ph in phs for s in ph["ddp"]]),
                      "gradient_bytes": g, "batch": b, "phases": len(phs)}
    base = out[baseline]
    tc_cal = base["ddp"].median - base["t_allreduce"]
    for r in out.values():
        r["pred_probes"] = r["compute"].median + r["t_allreduce"]
        r["pred_calibrated"] = tc_cal + r["t_allreduce"]
        r["slowdown"] = r["ddp"].median / base["ddp"].median
        r["slowdown_interval"] = (r["ddp"].lo / base["ddp"].hi, r["ddp"].hi / base["ddp"].lo)
        r["slowdown_probes"] = r["pred_probes"] / base["pred_probes"]
        r["slowdown_calibrated"] = r["pred_calibrated"] / base["ddp"].median
        r["error_probes"] = r["slowdown_probes"] / r["slowdown"] - 1
        r["error_calibrated"] = r["slowdown_calibrated"] / r["slowdown"] - 1
    base["exposed_fit"] = (base["ddp"].median - base["compute"].median) / base["t_allreduce"]
    base["ddp_overhead"] = base["ddp"].median - base["compute"].median - base["t_allreduce"]
    base["tc_calibrated"] = tc_cal
    return out


def mbit(beta: float) -> float:
    """The bandwidth (Mbit/s) a beta (s per byte) implies; inf for 0."""
    return 8 / beta / 1e6 if beta > 0 else math.inf


def label(limit) -> str:
    return limit or "none"


if __name__ == "__main__":
    _rank_main(sys.argv[1])
