"""`make bench`: run every benchmark module in this folder and print its figures.

Each ``bench_*.py`` has a ``main()`` that prints a small table. Benchmarks measure; they never
fail on a threshold (targets are printed next to the figures instead).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    names = sys.argv[1:]
    for path in sorted(here.glob("bench_*.py")):
        if names and path.stem not in names:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {path.stem}", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
