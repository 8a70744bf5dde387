"""Wall time of the smoke study's sine part through `snakemake --profile profiles/slurm` on the test cluster,
with and without grouping the one-process CPU jobs (`--group-components cpu-short=N`).

    tests/slurm/cluster.sh start
    .venv/bin/python tests/slurm/measure_grouping.py --pairs 3 --components 4
    tests/slurm/cluster.sh stop

Runs are interleaved (A B, B A, ...) in fresh copies of the workflow; each prints one JSON line and
the end prints the medians and the median of the per-pair ratios. The wall time is that of the
whole `snakemake` command (submission, queue, jobs, local aggregation).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
FAST_STATUS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
               "--seconds-between-status-checks", "1"]


def workflow_copy(dest: Path) -> Path:
    for name in ("workflow", "config", ".test", "profiles"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["study"] = {"datasets": ["sine"], "models": config["study"]["models"],
                       "hardware": ["cpu", "ddp-cpu-2"], "seeds": [0]}
    (dest / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def one_run(grouped: bool, components: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="lb-grouping-") as tmp:
        wd = workflow_copy(Path(tmp))
        cmd = ["bash", str(CLUSTER), "exec", sys.executable, "-m", "snakemake", "--profile", "profiles/slurm",
               "--configfile", "study.yaml", *FAST_STATUS]
        if grouped:
            cmd += ["--group-components", f"cpu-short={components}"]
        # The jobs call `liquidbench`: this interpreter's environment goes first on PATH.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        log = proc.stdout + proc.stderr
        if proc.returncode:
            rule_logs = "".join(f"\n--- {p.relative_to(wd)}\n{p.read_text()[-2000:]}"
                                for p in sorted((wd / "logs").rglob("*.log")))
            raise SystemExit(f"snakemake failed:\n{log[-4000:]}{rule_logs}")
        submissions = len(re.findall(r"has been submitted with SLURM jobid", log))
    return {"grouped": grouped, "components": components if grouped else None, "wall_s": round(wall, 2),
            "slurm_jobs": submissions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--components", type=int, default=4)
    args = ap.parse_args()
    runs = []
    for i in range(args.pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        pair = {}
        for grouped in order:
            r = one_run(grouped, args.components)
            print(json.dumps(r), flush=True)
            pair[grouped] = r
        runs.append(pair)
    plain = [p[False]["wall_s"] for p in runs]
    grouped = [p[True]["wall_s"] for p in runs]
    print(json.dumps({
        "pairs": args.pairs, "components": args.components,
        "median_wall_s_ungrouped": statistics.median(plain), "median_wall_s_grouped": statistics.median(grouped),
        "median_ratio_grouped_over_ungrouped": round(statistics.median(g / p for g, p in zip(grouped, plain)), 3),
        "slurm_jobs": {"ungrouped": runs[0][False]["slurm_jobs"], "grouped": runs[0][True]["slurm_jobs"]},
    }))


if __name__ == "__main__":
    main()
