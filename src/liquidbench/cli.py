"""Command line: one subcommand per workflow rule.

    liquidbench prepare   --dataset NAME --kind KIND --params JSON --out DIR
    liquidbench train     --data DIR --dataset NAME --model NAME --model-params JSON ...
    liquidbench aggregate --out-runs CSV --out-history CSV METRICS.json...
    liquidbench summarize --runs CSV --out-csv CSV --out-md MD
    liquidbench plot      --summary CSV --history CSV --out-dir DIR --datasets NAME...
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .train.errors import HardwareError


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def cmd_prepare(args) -> None:
    from .data import PREPARERS

    if args.kind not in PREPARERS:
        raise ValueError(f"data set '{args.dataset}': kind '{args.kind}' is unknown, expected one of {sorted(PREPARERS)}")
    sources = {"raw": args.raw} if args.raw else {}
    meta = PREPARERS[args.kind](args.params, args.out, **sources)
    logging.info("prepared %s: %s", args.dataset, json.dumps(meta["shapes"]))


def cmd_train(args) -> None:
    from .train.loop import RunSpec, train

    spec = RunSpec(
        dataset=args.dataset, model=args.model, hardware=args.hardware, seed=args.seed,
        data_dir=args.data, out_dir=args.out, model_spec=args.model_params,
        train_params=args.train_params, hardware_spec=args.hardware_params,
    )
    metrics = train(spec)
    if metrics:
        logging.info("done: status %s, test %s %.6g, train time %.2fs",
                     metrics["status"], metrics["metric_name"], metrics["test_metric"], metrics["train_time_s"])


def cmd_aggregate(args) -> None:
    from .io import atomic_path
    from .results.aggregate import load_histories, load_runs

    runs = load_runs(args.metrics)
    with atomic_path(args.out_runs) as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(args.out_history) as tmp:
        load_histories(runs).to_csv(tmp, index=False)
    logging.info("aggregated %d runs", len(runs))


def cmd_summarize(args) -> None:
    import pandas as pd

    from .io import atomic_path, write_text
    from .results.summary import summarize, to_markdown

    summary = summarize(pd.read_csv(args.runs))
    with atomic_path(args.out_csv) as tmp:
        summary.to_csv(tmp, index=False)
    write_text(args.out_md, to_markdown(summary))


def cmd_plot(args) -> None:
    import pandas as pd

    from .results import figures

    summary = pd.read_csv(args.summary)
    history = pd.read_csv(args.history)
    out = Path(args.out_dir)
    figures.train_time(summary, out / "train_time")
    figures.metric(summary, out / "test_metric")
    for ds in args.datasets:
        figures.loss_curves(history, ds, out / f"loss_curves_{ds}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liquidbench", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"liquidbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="generate or preprocess one data set")
    p.add_argument("--dataset", required=True, help="data set name in the config")
    p.add_argument("--kind", required=True, help="data set kind (generator or preprocessor)")
    p.add_argument("--params", type=_json_arg, default={}, help="the data set's parameters as JSON")
    p.add_argument("--raw", type=Path, help="downloaded source file or directory, for real data sets")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train one (dataset, model, hardware, seed) run")
    p.add_argument("--data", type=Path, required=True, help="prepared data set directory")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--model-params", type=_json_arg, required=True)
    p.add_argument("--hardware", required=True)
    p.add_argument("--hardware-params", type=_json_arg, default={})
    p.add_argument("--train-params", type=_json_arg, default={})
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("aggregate", help="collect run metrics and histories into tables")
    p.add_argument("metrics", nargs="+", type=Path)
    p.add_argument("--out-runs", type=Path, required=True)
    p.add_argument("--out-history", type=Path, required=True)
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("summarize", help="mean and std over seeds")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--out-csv", type=Path, required=True)
    p.add_argument("--out-md", type=Path, required=True)
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("plot", help="figures from the summary and histories")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--history", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--datasets", nargs="+", required=True)
    p.set_defaults(func=cmd_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except (ValueError, HardwareError, OSError) as exc:
        # Bad input or an impossible request: one clear line, no traceback.
        logging.getLogger("liquidbench").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
