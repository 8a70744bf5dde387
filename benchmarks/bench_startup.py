"""A training job's start-up before its first step: ``import torch``, the model, the first
optimizer, the command line's parser and the numerics settings.

Each repetition is a fresh interpreter (what a Snakemake job pays); medians over repetitions.
The optimizer's construction imports ``torch._dynamo`` (``Optimizer.add_param_group`` is wrapped
by ``torch._disable_dynamo``), which is most of its time. The parser and the numerics context are
what liquidbench adds: the parser must not import the results modules (pandas, scipy), and the
numerics context must not call ``torch.use_deterministic_algorithms`` where the flag does not
change (it imports ``torch._inductor``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from liquidbench.models import build_model
model = build_model({"type": "ltc", "units": 32, "impl": "fast"}, 7, 1, "regression_per_step")
t2 = time.perf_counter()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
t3 = time.perf_counter()
from liquidbench.cli import build_parser
build_parser()
t4 = time.perf_counter()
from liquidbench.train.numerics import numerics
with numerics(tf32=False, deterministic=False):
    pass
t5 = time.perf_counter()
print(json.dumps({"import_torch_s": t1 - t0, "liquidbench_and_model_s": t2 - t1, "adam_s": t3 - t2,
                  "cli_parser_s": t4 - t3, "numerics_s": t5 - t4, "total_s": t5 - t0,
                  "dynamo_imported": "torch._dynamo" in sys.modules, "pandas_imported": "pandas" in sys.modules}))
"""


def main(reps: int = 3) -> None:
    runs = [json.loads(subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1]) for _ in range(reps)]
    print(f"fresh interpreters: {reps}, medians")
    for key in ("import_torch_s", "liquidbench_and_model_s", "adam_s", "cli_parser_s", "numerics_s", "total_s"):
        print(f"{key:26} {statistics.median(r[key] for r in runs):7.2f} s")
    for module in ("dynamo", "pandas"):
        print(f"{module} imported by then: {all(r[module + '_imported'] for r in runs)}")


if __name__ == "__main__":
    main()
