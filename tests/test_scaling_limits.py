"""The DDP scaling model under injected interconnect limits: two network namespaces joined by a veth
pair (tests/netpair.py), a tbf bandwidth limit on the link (none, 1 Gbit/s, 100 Mbit/s, 20 Mbit/s),
and per limit the all-reduce probe, the step probe and real DDP training steps of the same model across
the link. The model, fed the all-reduce fit measured under a limit, must predict the DDP step's
slowdown under that limit (step(limit) / step(none)).

Tolerances (the slowdown's relative error), from repeated runs on this 2-core machine while other
test runs loaded it (load average 3 to 24; ranks under SCHED_FIFO, see tests/netpair.py):

- TOL_CALIBRATED (15 %): the model with its compute term fitted once, on the unlimited link's DDP step
  (t_c' = step(none) - t_allreduce_none(2, g)), and each limit's own all-reduce fit. What remains is
  noise and the difference between DDP's all-reduce and the probe's: in 15 runs the errors were
  within 5 % except at 100 Mbit/s (-4 to -10 %: DDP's all-reduce there cost 0.5-1 ms more than the
  probe's). The measured slowdown's own 95 % interval (the two medians' order-statistic intervals)
  reached +-9 % under heavy load, the all-reduce fit's band at g 1 %, tbf's burst (which DDP gets
  and the probe mostly not) at most 2 % of the step.
- TOL_PROBES (40 %): the model from the probes alone (t_c(b) from the step probe, exposed 1). It misses
  DDP's own per-step cost (hooks, bucket copies, waiting for the peer: 0.25-0.9 ms of a 5 ms unlimited
  step here, 1.5-1.8 ms at load average 15-24); exposed cannot take that up (it exceeds the unlimited
  all-reduce several times over: the exposed factor it implies is 3-12). That cost raises the
  measured unlimited step and so the predicted slowdown is too high by up to its share: +3 to +16 %
  at 20 Mbit/s when the machine was lightly loaded, +30 to +36 % under heavy load, -11 to +10 % at
  the other limits.

The measurement runs in CI (root, network namespaces); elsewhere the tests skip, naming what they need.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import netpair
from conftest import missing_part

ROUNDS = 5  # interleaved rounds: every limit once per round
TOL_CALIBRATED = 0.15
TOL_PROBES = 0.40
WHAT = "interconnect-limit test (two network namespaces, a veth pair, tbf, SCHED_FIFO)"


def require_pair() -> None:
    problem = netpair.problem()
    if problem:
        missing_part(WHAT, problem)


def test_tbf_parameters():
    assert netpair.rate_bits("20mbit") == 20e6 and netpair.rate_bits("1gbit") == 1e9
    with pytest.raises(ValueError, match="expected a number"):
        netpair.rate_bits("20 MB/s")
    # one full frame at low rates, 25 us of the rate at high ones: small against the 16 kB messages
    assert netpair.burst_bytes("20mbit") == netpair.burst_bytes("100mbit") == 1600
    assert netpair.burst_bytes("1gbit") == 3125
    # the queue holds 1 MB: no drops for the messages probed
    assert netpair.queue_latency_ms("20mbit") == 420 and netpair.queue_latency_ms("1gbit") == 50


def test_pair_is_removed_after_a_failure():
    require_pair()
    with pytest.raises(RuntimeError, match="inside"):
        with netpair.NetPair() as pair:
            ns = pair.ns
            # a TCP connection from A to B's address, across the veth pair
            serve = (f"import socket; s = socket.create_server(('{pair.addr[1]}', 0)); "
                     "print(s.getsockname()[1], flush=True); c, _ = s.accept(); c.sendall(b'ok')")
            server = subprocess.Popen(pair.exec_argv(1, {}, [sys.executable, "-c", serve]), stdout=subprocess.PIPE,
                                      text=True)
            port = int(server.stdout.readline())
            ask = (f"import socket; "
                   f"print(socket.create_connection(('{pair.addr[1]}', {port}), timeout=5).recv(2).decode())")
            client = subprocess.run(pair.exec_argv(0, {}, [sys.executable, "-c", ask]), capture_output=True,
                                    text=True, timeout=30)
            assert client.stdout.strip() == "ok", client.stderr
            server.wait(timeout=10)
            sleeper = subprocess.Popen(pair.exec_argv(1, {}, ["sleep", "600"]))
            netpair.set_limit(pair, "20mbit")
            assert "tbf" in netpair.qdisc(pair, 1) and "rate 20Mbit" in netpair.qdisc(pair, 1)
            raise RuntimeError("a failure inside")
    assert sleeper.wait(timeout=10) != 0  # killed
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in ns)


@pytest.fixture(scope="module")
def limits():
    require_pair()
    t0 = time.monotonic()
    with netpair.NetPair() as pair, netpair.Ranks(pair) as ranks:
        ranks.measure(blocks=1, sizes=netpair.SIZES[:3])  # warm-up: imports, first steps, TCP
        phases = netpair.measure_limits(pair, ranks, rounds=ROUNDS)
    res = netpair.analyse(phases)
    base = res[None]
    print(f"\n{ROUNDS} interleaved rounds in {time.monotonic() - t0:.1f} s; LSTM {base['gradient_bytes']} "
          f"gradient bytes, per-process batch {base['batch']}; DDP step = t_c + t_allreduce(2, g) (exposed 1)")
    print(f"{'limit':>8} {'Mbit/s':>8} {'alpha us':>9} {'t_c ms':>7} {'t_ar ms':>8} {'DDP ms':>7} "
          f"{'slowdown [95 %]':>20} {'probes':>14} {'calibrated':>15}")
    for limit, r in res.items():
        ab = r["fit"].model
        lo, hi = r["slowdown_interval"]
        print(f"{netpair.label(limit):>8} {netpair.mbit(ab.beta.value):8.4g} {ab.alpha.value * 1e6:9.1f} "
              f"{r['compute'].median * 1e3:7.2f} {r['t_allreduce'] * 1e3:8.2f} {r['ddp'].median * 1e3:7.2f} "
              f"{r['slowdown']:7.3f} [{lo:.2f}, {hi:.2f}] {r['slowdown_probes']:6.3f} ({r['error_probes']:+6.1%}) "
              f"{r['slowdown_calibrated']:6.3f} ({r['error_calibrated']:+6.1%})")
    print(f"unlimited: DDP's own per-step cost {base['ddp_overhead'] * 1e3:.2f} ms, exposed factor it implies "
          f"{base['exposed_fit']:.2f} (1 used)")
    return res


@pytest.mark.slow
def test_beta_grows_as_the_limit_tightens(limits):
    for limit in ("1gbit", "100mbit", "20mbit"):
        assert limits[limit]["fit"].ok, limits[limit]["fit"].reason
    b1g, b20 = limits["1gbit"]["fit"].model.beta, limits["20mbit"]["fit"].model.beta
    b100 = limits["100mbit"]["fit"].model.beta
    assert b20.low > b100.high and b100.low > b1g.high  # intervals apart, in order
    assert b20.value > 10 * b1g.value
    # the implied bandwidth is the limit's, within a factor 2
    assert 10 <= netpair.mbit(b20.value) <= 40
    assert 50 <= netpair.mbit(b100.value) <= 200


@pytest.mark.slow
def test_ddp_step_slows_down_under_20mbit(limits):
    lo, _ = limits["20mbit"]["slowdown_interval"]
    assert lo > 1.5, f"slowdown under 20 Mbit/s: {limits['20mbit']['slowdown']:.2f}, 95 % interval from {lo:.2f}"


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["1gbit", "100mbit", "20mbit"])
def test_model_predicts_the_slowdown(limits, limit):
    r = limits[limit]
    assert abs(r["error_calibrated"]) <= TOL_CALIBRATED, (
        f"{limit}: measured slowdown {r['slowdown']:.3f}, calibrated model {r['slowdown_calibrated']:.3f}")
    assert abs(r["error_probes"]) <= TOL_PROBES, (
        f"{limit}: measured slowdown {r['slowdown']:.3f}, probes-only model {r['slowdown_probes']:.3f}")
