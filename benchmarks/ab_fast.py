"""A/B of the fast models' training step against another revision, in one process (not part of
``make bench``): the fast LTC or CfC of git revision ``--before`` (its ``src/liquidbench`` exported
with ``git archive`` and imported as ``liquidbench_before``), this tree's fast model with torch's
default Adam and with ``optimizer_impl: fused``, and ncps's model with both, built from the same
seed at the reference shape (B=64, T=32, 7 inputs, 32 units, CfC backbone 64), their steps
(forward, backward, clip, Adam) alternating, one thread. Prints medians and 20th percentiles of
each step's thread CPU time (``--clock cpu``: the time the step ran, which a loaded machine's
waiting for a core does not inflate) or wall time (``--clock wall``), and the load average.

    python benchmarks/ab_fast.py cfc --before main --steps 80
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SPECS = {
    "ltc": {"type": "ltc", "units": 32, "wiring": "fully_connected", "ode_unfolds": 6},
    "cfc": {"type": "cfc", "units": 32, "wiring": "fully_connected", "mode": "default", "backbone_units": 64},
}


def export(revision: str, into: Path) -> None:
    """``src/liquidbench`` of ``revision`` as package ``liquidbench_before`` under ``into``."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "src/liquidbench"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / "liquidbench_before"
    (into / "src" / "liquidbench").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\bliquidbench(?=[. ])", "liquidbench_before", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(SPECS))
    parser.add_argument("--before", default="main", help="git revision to compare with (default main)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    tmp = tempfile.TemporaryDirectory()
    export(args.before, Path(tmp.name))
    sys.path.insert(0, tmp.name)
    import liquidbench_before.models as before  # noqa: PLC0415

    import liquidbench.models as after  # noqa: PLC0415
    from liquidbench.train.optim import adam, clip_gradients  # noqa: PLC0415
    from liquidbench.train.tasks import loss_fn  # noqa: PLC0415

    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 32, 7, generator=gen), torch.randn(64, 32, 1, generator=gen)

    def runner(models, impl: str, optimizer_impl: str):
        torch.manual_seed(0)
        model = models.build_model({**SPECS[args.model], "impl": impl}, 7, 1, "regression_per_step")
        opt = adam(model.parameters(), optimizer_impl, lr=1e-3)

        def step() -> float:
            t0 = clock()
            loss = loss_fn("regression_per_step", model(x), y)
            opt.zero_grad()
            loss.backward()
            clip_gradients(model.parameters(), 1.0, optimizer_impl)
            opt.step()
            return clock() - t0
        return step

    runners = {"before": runner(before, "fast", "default"), "after": runner(after, "fast", "default"),
               "after+fused": runner(after, "fast", "fused"), "ncps": runner(after, "ncps", "default"),
               "ncps+fused": runner(after, "ncps", "fused")}
    times = {name: [] for name in runners}
    for i in range(args.warmup + args.steps):
        for name in (list(runners) if i % 2 == 0 else list(runners)[::-1]):
            t = runners[name]()
            if i >= args.warmup:
                times[name].append(t)
    print(f"{args.model}: {args.clock} ms per step, {args.steps} steps after {args.warmup}, before = {args.before}, "
          f"load average {os.getloadavg()[0]:.2f}")
    for label, stat in (("median", statistics.median), ("20th pct", lambda v: sorted(v)[len(v) // 5])):
        ms = {name: 1000 * stat(v) for name, v in times.items()}
        print(f"{label:9}", " ".join(f"{name} {v:.2f}" for name, v in ms.items()),
              f"| after/before {ms['after'] / ms['before']:.3f} | ratio to ncps: default "
              f"{ms['ncps'] / ms['after']:.2f}x, fused {ms['ncps+fused'] / ms['after+fused']:.2f}x")


if __name__ == "__main__":
    main()
