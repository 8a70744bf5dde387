"""Command line: one subcommand per workflow rule.

    liquidbench download  --url URL --sha256 HEX [--sha256-of decompressed] [--mirror DIR]... --out FILE
    liquidbench prepare   --dataset NAME --kind KIND --params JSON [--raw FILE] --out DIR
    liquidbench train     --data DIR --dataset NAME --model NAME --model-params JSON ...
    liquidbench aggregate --out-runs CSV --out-history CSV [--expected JSON] METRICS.json...
    liquidbench summarize --runs CSV --out-csv CSV --out-md MD [--out-tex TEX]
    liquidbench scaling   --summary CSV --hardware-config JSON [--threshold 0.7] --out-csv CSV ...
    liquidbench ratios    --summary CSV --model-types JSON --out-csv CSV ...
    liquidbench time-to-target --runs CSV --history CSV --targets JSON --out-csv CSV ...
    liquidbench claims    --summary CSV --scaling CSV --model-types JSON --out-csv CSV ...
    liquidbench published --summary CSV --published YAML --settings JSON --dataset-config JSON ...
    liquidbench provenance --runs CSV --out-csv CSV ...
    liquidbench plot      --summary CSV --history CSV --scaling CSV --out-dir DIR --datasets NAME...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .train.errors import HardwareError, Preempted


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def cmd_download(args) -> None:
    from .data.download import download

    sha256 = None if args.sha256.lower() in ("null", "none") else args.sha256
    # the workflow passes config `data_mirror` through the environment (os.pathsep-separated)
    env_mirrors = [m for m in os.environ.get("LIQUIDBENCH_DATA_MIRROR", "").split(os.pathsep) if m]
    download(
        args.url, args.out, sha256, sha256_of=args.sha256_of, mirrors=[*args.mirror, *env_mirrors], name=args.name,
        retries=args.retries, backoff_s=args.backoff, timeout_s=args.timeout,
    )


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
    from .study import study_runs

    expected = None
    if args.expected:
        try:
            expected = study_runs(args.expected)
        except ValueError as exc:
            raise ValueError(f"--expected: {exc}") from exc
    runs = load_runs(args.metrics, expected)
    with atomic_path(args.out_runs) as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(args.out_history) as tmp:
        load_histories(runs).to_csv(tmp, index=False)
    logging.info("aggregated %d runs (%s)", len(runs), runs["status"].value_counts().to_dict())


def _read_csv(path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cannot read table {path}: {exc}") from exc


def _write(args, raw, display, title, notes) -> None:
    from .results.tables import write_table

    write_table(raw, display, args.out_csv, args.out_md, args.out_tex, title, notes)


def cmd_summarize(args) -> None:
    from .results import summary as s

    table = s.summarize(_read_csv(args.runs))
    _write(args, table, s.display(table), "Summary over seeds", s.NOTES)


def cmd_scaling(args) -> None:
    from .results import scaling as sc

    if not 0 < args.threshold <= 1:
        raise ValueError(f"--threshold: the knee threshold is an efficiency in (0, 1], got {args.threshold}")
    table = sc.scaling_table(_read_csv(args.summary), args.hardware_config, args.threshold, args.baselines)
    _write(args, table, sc.display(table), "Scaling: speedup and parallel efficiency", sc.NOTES)


def cmd_ratios(args) -> None:
    from .results import compare

    table = compare.ratio_table(_read_csv(args.summary), args.model_types)
    _write(args, table, compare.ratio_display(table), "Ratios between models", compare.RATIO_NOTES)


def cmd_time_to_target(args) -> None:
    from .results import compare

    bad = {k: v for k, v in args.targets.items() if not isinstance(v, (int, float))}
    if bad:
        raise ValueError(f"--targets: each data set's target must be a number, got {bad}")
    table = compare.time_to_target(_read_csv(args.runs), _read_csv(args.history), args.targets)
    _write(args, table, compare.target_display(table), "Time to target", compare.TARGET_NOTES)


def cmd_claims(args) -> None:
    from .results import claims

    table = claims.check_claims(_read_csv(args.summary), _read_csv(args.scaling), args.model_types, args.settings)
    if args.published:
        import pandas as pd

        from .results.published import claim_rows

        table = pd.concat([table, pd.DataFrame(claim_rows(_read_csv(args.published)))], ignore_index=True)
    _write(args, table, claims.display(table), "Checked claims", claims.NOTES)


def cmd_published(args) -> None:
    from .results import published as pb

    settings = args.settings
    missing = [k for k in ("datasets", "models") if not isinstance(settings.get(k), dict)]
    if missing:
        raise ValueError(f"--settings: expected mappings {missing} (study name -> published name)")
    data = pb.load(args.published)
    sigmas = settings.get("sigmas", 2.0)
    table = pb.published_table(
        _read_csv(args.summary), data, settings["datasets"], settings["models"], args.dataset_config,
        args.study_models, sigmas=sigmas, min_seeds=settings.get("min_seeds", 2),
    )
    _write(args, table, pb.display(table), f"Published ({data['name']}) and reproduced results", pb.notes(data, sigmas))


def cmd_provenance(args) -> None:
    from .results import provenance

    table = provenance.provenance(_read_csv(args.runs))
    _write(args, table, table.fillna("n/a"), "What was run", provenance.NOTES)


def cmd_plot(args) -> None:
    from .results import figures

    summary = _read_csv(args.summary)
    history = _read_csv(args.history)
    scaling = _read_csv(args.scaling)
    out = Path(args.out_dir)
    figures.train_time(summary, out / "train_time", args.datasets)
    figures.metric(summary, out / "test_metric", args.datasets)
    figures.scaling(scaling, out / "scaling")
    figures.pareto(summary, out / "pareto", args.datasets)
    figures.gpu(summary, out / "gpu")
    figures.energy(summary, out / "energy")
    for ds in args.datasets:
        figures.loss_curves(history, ds, out / f"loss_curves_{ds}")


def _table_outputs(p) -> None:
    p.add_argument("--out-csv", type=Path, required=True, help="every raw column")
    p.add_argument("--out-md", type=Path, help="formatted Markdown")
    p.add_argument("--out-tex", type=Path, help="formatted LaTeX (booktabs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liquidbench", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"liquidbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="fetch one source file (mirror first), verified by sha256")
    p.add_argument("--url", required=True, help="https URL of the original file")
    p.add_argument("--sha256", required=True,
                   help="pinned sha256 (64 hex digits); 'null' (not pinned yet) only warns and logs the actual hash")
    p.add_argument("--sha256-of", choices=["file", "decompressed"], default="file",
                   help="hash the file's bytes, or its gzip-decompressed content")
    p.add_argument("--name", help="original file name looked up in the mirrors (default: from the URL)")
    p.add_argument("--mirror", action="append", default=[], type=Path, metavar="DIR",
                   help="directory searched first (DIR/NAME, DIR/*/NAME); may be repeated; "
                        "$LIQUIDBENCH_DATA_MIRROR (os.pathsep-separated) adds more after these")
    p.add_argument("--retries", type=int, default=4, help="network retries after the first attempt")
    p.add_argument("--backoff", type=float, default=2.0, help="seconds before the first retry, doubled each time")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout per attempt, seconds")
    p.add_argument("--out", type=Path, required=True, help="destination file")
    p.set_defaults(func=cmd_download)

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
    p.add_argument("metrics", nargs="*", type=Path)
    p.add_argument("--expected", type=_json_arg,
                   help='the study as JSON {"datasets": [...], "models": [...], "hardware": [...], "seeds": [...]}; '
                        "expected runs without metrics get status missing")
    p.add_argument("--out-runs", type=Path, required=True)
    p.add_argument("--out-history", type=Path, required=True)
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("summarize", help="mean, std and 95%% CI over seeds")
    p.add_argument("--runs", type=Path, required=True)
    _table_outputs(p)
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("scaling", help="speedup, efficiency and knee of DDP widths")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--hardware-config", type=_json_arg, required=True,
                   help="the study's hardware entries as JSON, in study order")
    p.add_argument("--threshold", type=float, default=0.7, help="knee: efficiency threshold (default 0.7)")
    p.add_argument("--baselines", type=_json_arg, default={}, help="JSON {hardware: baseline hardware} overrides")
    _table_outputs(p)
    p.set_defaults(func=cmd_scaling)

    p = sub.add_parser("ratios", help="time and metric ratios: CfC vs LTC, each model vs LSTM")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--model-types", type=_json_arg, required=True, help="JSON {model name: type}")
    _table_outputs(p)
    p.set_defaults(func=cmd_ratios)

    p = sub.add_parser("time-to-target", help="training time until the validation metric reaches a target")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--history", type=Path, required=True)
    p.add_argument("--targets", type=_json_arg, required=True, help="JSON {dataset: target validation metric}")
    _table_outputs(p)
    p.set_defaults(func=cmd_time_to_target)

    p = sub.add_parser("claims", help="check the thesis's claims on the data")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--scaling", type=Path, required=True)
    p.add_argument("--model-types", type=_json_arg, required=True, help="JSON {model name: type}")
    p.add_argument("--settings", type=_json_arg, default={}, help="JSON {min_seeds, metric_tolerance_std, speedup_min}")
    p.add_argument("--published", type=Path, help="the published table's CSV: adds one claim per data set")
    _table_outputs(p)
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("published", help="published results against the reproduced ones, with verdicts")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--published", type=Path, required=True, help="YAML file of published results")
    p.add_argument("--settings", type=_json_arg, required=True,
                   help="JSON {datasets: {study name: published name}, models: {...}, sigmas, min_seeds}")
    p.add_argument("--dataset-config", type=_json_arg, required=True, help="JSON {data set: its config entry}")
    p.add_argument("--study-models", nargs="*", default=[], help="the study's models, shown for every data set")
    _table_outputs(p)
    p.set_defaults(func=cmd_published)

    p = sub.add_parser("provenance", help="software versions and machines of the runs")
    p.add_argument("--runs", type=Path, required=True)
    _table_outputs(p)
    p.set_defaults(func=cmd_provenance)

    p = sub.add_parser("plot", help="figures from the summary, scaling table and histories")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--history", type=Path, required=True)
    p.add_argument("--scaling", type=Path, required=True)
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
    except Preempted as exc:
        # SIGTERM (time limit, preemption): a checkpoint was written; rerunning resumes from it.
        logging.getLogger("liquidbench").warning("%s", exc)
        return Preempted.exit_code
    except (ValueError, HardwareError, OSError) as exc:
        # Bad input or an impossible request: one clear line, no traceback.
        logging.getLogger("liquidbench").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
