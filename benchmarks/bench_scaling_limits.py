"""The DDP scaling model under injected interconnect limits (tests/test_scaling_limits.py with more repeats).

Two network namespaces joined by a veth pair, a tbf limit on the link (none, 1 Gbit/s, 100 Mbit/s,
20 Mbit/s), and per limit, interleaved over rounds: the all-reduce probe (gloo, world 2, 16 kB ..
256 kB), the step probe at per-process batches 8, 16 and 32, and DDP training steps of the same LSTM
(batch 16) across the link (tests/netpair.py; the ranks under SCHED_FIFO, see there). Printed per limit:
the all-reduce fit (alpha, beta and the bandwidth it implies, 95 % intervals), t_allreduce(2, g) with its
band, the step probe's t_c(16), the measured DDP step (median, 95 % interval), the predicted step and
slowdown (probes only; compute term calibrated once on the unlimited DDP step) against the measured one,
and the knee ``predict`` gives per limit (widths 1..64, weak scaling, batch 16, the 7352 training samples
of UCI HAR, exposed 1).

Needs root, iproute2 and util-linux (tests/netpair.py's ``problem``); says why and returns otherwise.
LIQUIDBENCH_BENCH_SHARED=1 adds a pass without real-time priority (what the machine's other load does
to the synchronous step).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

# tests/netpair.py (the namespace pair and the 2-rank job) is shared with the test: the tests folder
# goes on the path, as benchmarks/bench_data.py does for tests/har_archive.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

ROUNDS = 8
BATCHES = (8, 16, 32)
SIZES = tuple(16384 * 2 ** k for k in range(5))  # 16 kB .. 256 kB
N_TRAIN = 7352  # UCI HAR's training windows
WIDTHS = range(1, 65)
SHOW_WIDTHS = (2, 4, 8, 16, 32, 64)


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f}"


def _interval(lo: float, hi: float, scale: float = 1e3, fmt: str = ".3f") -> str:
    return f"[{lo * scale:{fmt}}, {hi * scale:{fmt}}]"


def measure(realtime: bool, rounds: int) -> tuple[dict, float]:
    import netpair

    t0 = time.monotonic()
    with netpair.NetPair() as pair, netpair.Ranks(pair, realtime=realtime) as ranks:
        ranks.measure(batches=BATCHES, blocks=1, sizes=SIZES[:3])  # warm-up: imports, first steps, TCP
        phases = netpair.measure_limits(pair, ranks, rounds=rounds, batches=BATCHES, sizes=SIZES,
                                        ar_repeats=6, blocks=3, step_repeats=6, ddp_steps=8)
    return phases, time.monotonic() - t0


def report(phases: dict, seconds: float, rounds: int, realtime: bool) -> None:
    import netpair
    from liquidbench.results.scaling_model import fit_compute, given_compute, predict

    res = netpair.analyse(phases)
    base = res[None]
    g, b = base["gradient_bytes"], base["batch"]
    print(f"-- ranks {'under SCHED_FIFO' if realtime else 'at normal priority'}: {rounds} interleaved rounds "
          f"in {seconds:.0f} s; {netpair.MODEL} seq_len {netpair.SHAPE['seq_len']}, gradient {g} bytes, "
          f"per-process batch {b}")
    print("   tbf: " + "; ".join(f"{lim} burst {netpair.burst_bytes(lim)} B latency {netpair.queue_latency_ms(lim)} ms"
                                 for lim in netpair.LIMITS if lim))
    for limit, r in res.items():
        fit, ab = r["fit"], r["fit"].model
        lo, hi = r["slowdown_interval"]
        print(f"\n   limit {netpair.label(limit)} ({r['phases']} phases)")
        print(f"     all-reduce fit ({fit.form}{'' if fit.ok else ', UNFIT: ' + fit.reason}): "
              f"alpha {ab.alpha.value * 1e6:.1f} us {_interval(ab.alpha.low, ab.alpha.high, 1e6, '.1f')}, "
              f"beta {ab.beta.value * 1e9:.4g} ns/B -> {netpair.mbit(ab.beta.value):.4g} Mbit/s "
              f"[{netpair.mbit(ab.beta.high):.4g}, {netpair.mbit(ab.beta.low):.4g}]")
        band = r["t_allreduce_band"]
        print(f"     t_allreduce(2, g) {_ms(r['t_allreduce'])} ms {_interval(*band)}; "
              f"t_c({b}) {_ms(r['compute'].median)} ms {_interval(r['compute'].lo, r['compute'].hi)}")
        print(f"     DDP step measured {_ms(r['ddp'].median)} ms {_interval(r['ddp'].lo, r['ddp'].hi)}; predicted "
              f"{_ms(r['pred_probes'])} ms (probes), {_ms(r['pred_calibrated'])} ms (calibrated)")
        print(f"     slowdown measured {r['slowdown']:.3f} [{lo:.3f}, {hi:.3f}]; predicted "
              f"{r['slowdown_probes']:.3f} (probes, error {r['error_probes']:+.1%}), "
              f"{r['slowdown_calibrated']:.3f} (calibrated, error {r['error_calibrated']:+.1%})")
    print(f"\n   unlimited link: DDP's own per-step cost (step - t_c - t_allreduce) {_ms(base['ddp_overhead'])} ms; "
          f"the exposed fraction it implies {base['exposed_fit']:.2f} (outside [0, 1]: exposed 1 is used)")

    print(f"\n   predicted knee per limit (weak scaling, batch {b}, n_train {N_TRAIN}, widths 1..64, efficiency "
          f">= 0.7, exposed 1); efficiency at widths {', '.join(map(str, SHOW_WIDTHS))}")
    for limit, r in res.items():
        samples = {bb: [s for ph in phases[limit] for s in netpair.compute_samples(ph, bb)] for bb in BATCHES}
        comp = fit_compute(list(samples), list(samples.values()), where=f"netpair, limit {netpair.label(limit)}")
        if not (comp.ok and r["fit"].ok):
            print(f"     {netpair.label(limit):>8}: unfit ({comp.reason or r['fit'].reason})")
            continue
        calibrated = given_compute(comp.c0.value + max(base["ddp_overhead"], 0.0), comp.c1.value,
                                   where="calibrated")
        for name, compute in (("probes", comp), ("calibrated", calibrated)):
            p = predict(compute, r["fit"], batch_size=b, n_train=N_TRAIN, gradient_bytes=g, scaling="weak",
                        widths=WIDTHS, exposed=1.0)
            eff = p.table.set_index("width")["efficiency"]
            extra = (f"c0 {comp.c0.value * 1e3:.3f} ms, c1 {comp.c1.value * 1e6:.1f} us/sample"
                     if name == "probes" else f"c0 + {_ms(max(base['ddp_overhead'], 0.0))} ms")
            print(f"     {netpair.label(limit):>8} {name:>10}: knee {p.knee.width:>2} ({p.knee.dominant}, "
                  f"{p.knee.cause} at {p.knee.at}); E = {' '.join(f'{eff[w]:.2f}' for w in SHOW_WIDTHS)}; {extra}")


def main() -> None:
    import netpair

    print(f"bench_scaling_limits {datetime.now().isoformat(timespec='seconds')} on {platform.node()}, "
          f"kernel {platform.release()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    problem = netpair.problem()
    if problem:
        print(f"   not measured: {problem}")
        return
    phases, seconds = measure(True, ROUNDS)
    report(phases, seconds, ROUNDS, True)
    if os.environ.get("LIQUIDBENCH_BENCH_SHARED"):
        phases, seconds = measure(False, ROUNDS // 2)
        print()
        report(phases, seconds, ROUNDS // 2, False)
    print(f"   (load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
