"""Command line: one subcommand per workflow rule.

    liquidbench download  --url URL --sha256 HEX [--sha256-of decompressed] [--mirror DIR]... --out FILE
    liquidbench download  --url URL --manifest SHA256SUMS [--also-name NAME]... [--mirror DIR]... --out FOLDER
    liquidbench prepare   --dataset NAME --kind KIND --params JSON [--raw FILE] --out DIR
    liquidbench train     --config FILE --run DATASET/MODEL/HARDWARE/SEED [--data DIR] [--out DIR]   (--study-run: the same)
    liquidbench train     --data DIR --dataset NAME --model NAME --model-params JSON ...
    liquidbench aggregate --out-runs CSV --out-history CSV [--expected JSON] METRICS.json...
    liquidbench summarize --runs CSV --out-csv CSV --out-md MD [--out-tex TEX]
    liquidbench scaling   --summary CSV --hardware-config JSON --threshold X --baselines JSON --out-csv CSV ...
    liquidbench ratios | time-to-target | claims | published | provenance ...   (one per table of results/registry.py)
    liquidbench gpu-check [--out results/gpu-check]   (a GPU node's sanity suite; not a workflow rule)
    liquidbench compare   REFERENCE [RESULTS] [--min-seeds N] [--out-csv CSV --out-md MD ...]   (a study against a reference)
    liquidbench export-reference RESULTS DEST [--command CMD]   (a finished study as a reference folder; not a workflow rule)
    liquidbench plot      --summary CSV --history CSV --scaling CSV --profiles CSV --out-dir DIR --datasets NAME...
    liquidbench prepare-eval --params JSON --settings JSON --out FILE      (the sine task's evaluation sets)
    liquidbench evaluate  --run-dir DIR --data DIR --settings JSON [--extra FILE] --out JSON
    liquidbench collect-evaluation EVALUATION.json... --out-rows CSV --out-runs CSV
    liquidbench plot-evaluation --evaluation CSV --out-dir DIR
    liquidbench select-trials TRIAL_METRICS.json... --points JSON --out SELECTED.json   (the tuning stage)
    liquidbench collect-trials SELECTED.json... --out CSV
    liquidbench plot-tuning --trials CSV --out-dir DIR
    liquidbench probe-step --model-params JSON (--data DIR | --features N --outputs N --task T --seq-len N)
                           --batches 1,2,...,B [--device cpu|cuda] --out JSON   (the scaling model's compute probe)
    liquidbench probe-allreduce (--world N | under torchrun) [--backend gloo|nccl] [--sizes BYTES,...] --out JSON
    liquidbench collect-probes --index JSON --out CSV
    liquidbench plot-scaling-model --table CSV --out-dir DIR
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

    sha256 = None if args.sha256 is None or args.sha256.lower() in ("null", "none") else args.sha256
    # the workflow passes config `data_mirror` through the environment (os.pathsep-separated)
    env_mirrors = [m for m in os.environ.get("LIQUIDBENCH_DATA_MIRROR", "").split(os.pathsep) if m]
    download(
        args.url, args.out, sha256, sha256_of=args.sha256_of, mirrors=[*args.mirror, *env_mirrors], name=args.name,
        retries=args.retries, backoff_s=args.backoff, timeout_s=args.timeout,
        manifest=args.manifest, other_names=args.also_name,
    )


def cmd_prepare(args) -> None:
    from .data import PREPARERS

    if args.kind not in PREPARERS:
        raise ValueError(f"data set '{args.dataset}': kind '{args.kind}' is unknown, expected one of {sorted(PREPARERS)}")
    sources = {"raw": args.raw} if args.raw else {}
    meta = PREPARERS[args.kind](args.params, args.out, **sources)
    logging.info("prepared %s: %s", args.dataset, json.dumps(meta["shapes"]))


def _run_from_config(args) -> dict:
    """The arguments of one run of a study file (--config FILE --run dataset/model/hardware/seed),
    as the workflow would pass them; data and output in the workflow's places unless given."""
    from .study import load_study, run_of

    explicit = [f"--{k.replace('_', '-')}" for k in ("dataset", "model", "hardware", "seed", "model_params",
                                                        "train_params", "hardware_params") if getattr(args, k) is not None]
    if explicit:
        raise ValueError(f"--config/--run name the run; leave out {', '.join(explicit)}")
    config = load_study(args.config, f"--config {args.config}")  # read as the workflow reads it
    run = run_of(config, args.run)  # names and seed the study selects: they make the run's folder
    root = Path(config.get("root") or ".")  # the study's outputs (config `root`), as in the workflow
    run["data_dir"] = args.data or root / "data/processed" / run["dataset"]
    check_prepared(run["data_dir"], run["dataset"], config["datasets"][run["dataset"]], args.config)
    run["out_dir"] = args.out or root / "results/runs" / run["dataset"] / run["model"] / run["hardware"] / f"seed{run['seed']}"
    return run


def check_prepared(data_dir, name: str, entry: dict, config_file) -> None:
    """Prepared data must be what the study file's data set entry asks for: its parameters, defaults
    filled in, equal those meta.json records (a data set prepared by another study is refused)."""
    from .data import expected_params, read_meta

    try:
        meta = read_meta(data_dir)
    except FileNotFoundError:
        raise ValueError(f"data set '{name}': {data_dir} holds no prepared data set (no meta.json); prepare it "
                         f"first, e.g. snakemake --cores 2 --configfile {config_file} --until prepare_synthetic "
                         "prepare_traffic prepare_har") from None
    recorded = {**(meta.get("params") or {}), **({"protocol": meta["protocol"]} if "protocol" in meta else {})}
    expected = expected_params(entry["kind"], entry.get("params") or {})
    # a parameter the kind gained after the data were prepared is not recorded: they were made with its default
    defaults = expected_params(entry["kind"], {})
    differ = {k: (v, recorded.get(k, "(not recorded)")) for k, v in expected.items()
              if recorded.get(k, defaults.get(k, "(not recorded)")) != v}
    if differ:
        detail = ", ".join(f"{k}: {want!r} in {config_file}, {got!r} in {data_dir}/meta.json"
                           for k, (want, got) in sorted(differ.items()))
        raise ValueError(f"data set '{name}': the prepared data in {data_dir} were made with other parameters "
                         f"({detail}); prepare them for this study first (or give --data DIR)")


def cmd_train(args) -> None:
    from .train.loop import RunSpec, train

    if args.config or args.run:
        if not (args.config and args.run):
            raise ValueError("--config and --run go together: --config FILE --run dataset/model/hardware/seed")
        run = _run_from_config(args)
    else:
        missing = [f"--{k.replace('_', '-')}" for k in ("data", "dataset", "model", "model_params", "hardware", "seed",
                                                         "out") if getattr(args, k) is None]
        if missing:
            raise ValueError(f"train: missing {', '.join(missing)} (or give --config FILE --run d/m/h/seed)")
        run = dict(dataset=args.dataset, model=args.model, hardware=args.hardware, seed=args.seed,
                   data_dir=args.data, out_dir=args.out, model_spec=args.model_params,
                   train_params=args.train_params or {}, hardware_spec=args.hardware_params or {})
    if args.tuned:  # a tuned run: the tuning stage's selection over the study's settings
        from .tune.selected import apply_selection, provenance, read_selection

        selection = read_selection(args.tuned)
        run["model_spec"], run["train_params"] = apply_selection(run["model_spec"], run["train_params"], selection)
        run["tuned"] = provenance(selection, args.tuned)
    metrics = train(RunSpec(**run))
    if metrics and "train_time_s" in metrics:
        logging.info("done: status %s, test %s %.6g, train time %.2fs",
                     metrics["status"], metrics["metric_name"], metrics["test_metric"], metrics["train_time_s"])
    elif metrics:  # not trained (liquidbench.train.loop.untrainable)
        logging.info("done: status %s: %s", metrics["status"], metrics.get("failed_reason"))


def cmd_gpu_check(args) -> None:
    from .gpucheck import gpu_check

    report = gpu_check(args.out, args.repo)
    for check in report["checks"]:
        result = "not run" if check["passed"] is None else ("pass" if check["passed"] else "FAIL")
        print(f"{result:8} {check['name']}: {check['figure']} {check['unit']} {check['detail']}".rstrip())
    print(f"gpu-check: {report['verdict']} (report: {args.out / 'report.md'})")
    if report["verdict"] != "pass":
        raise HardwareError(f"gpu-check: some checks failed, see {args.out / 'report.md'}")


def cmd_probe_step(args) -> None:
    import torch

    from .io import write_json
    from .train.numerics import numerics
    from .train.probes import parse_int_list, step_probe

    batches = parse_int_list(args.batches, "--batches")
    data = None if args.data is None or args.data.lower() in ("none", "null") else Path(args.data)
    flags = {"--features": args.features, "--outputs": args.outputs, "--task": args.task, "--seq-len": args.seq_len}
    if data is not None:
        from .data import read_meta

        given = [flag for flag, value in flags.items() if value is not None]
        if given or args.irregular:
            raise ValueError(f"probe-step: --data {data} gives the task, shapes and sampling (its meta.json); "
                             f"leave out {', '.join(given + ['--irregular'] * args.irregular)}")
        try:
            meta = read_meta(data)
        except FileNotFoundError:
            raise ValueError(f"--data: {data} holds no prepared data set (no meta.json); give a prepared data set's "
                             "folder, or none with --features, --outputs, --task and --seq-len") from None
        shape = dict(n_features=int(meta["n_features"]), n_outputs=int(meta["n_outputs"]), task=meta["task"],
                     seq_len=int(meta["seq_len"]), irregular=bool(meta.get("irregular", False)))
    else:
        missing = [flag for flag, value in flags.items() if value is None]
        if missing:
            raise ValueError(f"probe-step: without --data, give {', '.join(missing)}")
        shape = dict(n_features=args.features, n_outputs=args.outputs, task=args.task, seq_len=args.seq_len,
                     irregular=args.irregular)
    if args.threads < 1:
        raise ValueError(f"--threads: expected an integer >= 1, got {args.threads}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise HardwareError(f"probe-step: --device cuda, but CUDA is not available on this machine "
                            f"(torch {torch.__version__}); give --device cpu")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    model_params = args.model_params
    if args.tuned:  # a tuned model: the model its runs train, the selection's values over the entry
        from .tune.selected import apply_selection, read_selection

        model_params, _ = apply_selection(model_params, {}, read_selection(args.tuned))
    with numerics(tf32=args.tf32, deterministic=False):
        result = step_probe(model_params, batches=batches, device=device, warmup=args.warmup,
                            repeats=args.repeats, seed=args.seed, optimizer_impl=args.optimizer_impl, **shape)
    write_json(args.out, {**result.to_json(), "data": None if data is None else str(data)})
    logging.info("probe-step: %s, %d parameters, median step %s s at batches %s", args.model_params.get("type"),
                 result.n_params, ", ".join(f"{p.median_s:.3g}" for p in result.points), batches)


def cmd_probe_allreduce(args) -> None:
    import torch

    from .io import write_json
    from .train.distributed import teardown
    from .train.probes import (DEFAULT_SIZES_BYTES, allreduce_probe, check_backend, check_counts, check_sizes,
                               init_from_env, parse_int_list, run_allreduce_probe)

    sizes = list(DEFAULT_SIZES_BYTES) if args.sizes is None else parse_int_list(args.sizes, "--sizes")
    if args.threads < 1:
        raise ValueError(f"--threads: expected an integer >= 1, got {args.threads}")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # under torchrun: this process is one rank
        world = int(os.environ["WORLD_SIZE"])
        if args.world is not None and args.world != world:
            raise ValueError(f"--world {args.world}, but torchrun started WORLD_SIZE={world} processes; "
                             "leave out --world under torchrun")
        if world < 2:
            raise ValueError(f"probe-allreduce: expected a world of at least 2 processes, torchrun started {world}")
        check_sizes(sizes), check_counts(args.warmup, args.repeats), check_backend(args.backend)
        torch.set_num_threads(args.threads)
        place = init_from_env(args.backend, args.timeout)
        try:
            result = allreduce_probe(sizes, args.backend, place.device, args.warmup, args.repeats, args.timeout)
        finally:
            teardown()
        if result is None:  # rank 0 writes
            return
    else:
        if args.world is None:
            raise ValueError("--world: expected the number of processes to start on this host (at least 2), "
                             "or start probe-allreduce under torchrun")
        result = run_allreduce_probe(args.world, sizes, args.backend, args.warmup, args.repeats, args.threads,
                                     args.timeout)
    write_json(args.out, result.to_json())
    logging.info("probe-allreduce: world %d (%s), median %s s at sizes %s bytes", result.world, result.backend,
                 ", ".join(f"{p.median_s:.3g}" for p in result.points), sizes)


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


def cmd_table(args) -> None:
    """One table of the registry: read its input tables, build it, write CSV, Markdown and LaTeX."""
    from .results.registry import TABLES, resolve
    from .results.tables import write_table

    table = TABLES[args.table]
    inputs = {name: _read_csv(getattr(args, name)) for name in table.inputs}
    inputs |= {name: _read_csv(getattr(args, name)) for name in table.optional if getattr(args, name) is not None}
    settings = {name: getattr(args, name) for name in table.settings}
    raw, display, notes = resolve(table.build)(**inputs, **settings)
    write_table(raw, display, args.out_csv, args.out_md, args.out_tex, table.title, notes, args.out_html)


def cmd_plot(args) -> None:
    from .results.registry import FIGURES, figure_inputs, resolve

    tables = {name: _read_csv(getattr(args, name)) for name in figure_inputs()}
    out = Path(args.out_dir)
    for name, figure in FIGURES.items():
        draw = resolve(figure.draw)
        inputs = [tables[i] for i in figure.inputs]
        settings = {key: getattr(args, key) for key in figure.settings}
        if figure.per_dataset:
            for ds in args.datasets:
                draw(*inputs, ds, out / f"{name}_{ds}", **settings)
        elif figure.datasets:
            draw(*inputs, out / name, args.datasets, **settings)
        else:
            draw(*inputs, out / name, **settings)


def cmd_prepare_eval(args) -> None:
    import io

    import numpy as np

    from .data.sine import evaluation_sets
    from .evaluate.settings import Evaluation, Grid
    from .io import atomic_path

    settings = Evaluation.from_settings(args.settings)
    shift = settings.families.get("shift", Grid(levels=(), n_sequences=0))
    horizon = settings.families.get("horizon", Grid(steps=0, n_sequences=0))
    arrays = evaluation_sets(args.params, list(shift.levels), shift.n_sequences, horizon.steps,
                             horizon.n_sequences, settings.seed)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(buf.getvalue())


def cmd_evaluate(args) -> None:
    from .evaluate.stage import evaluate_run, write

    result = evaluate_run(args.run_dir, args.data, args.settings, args.extra)
    write(result, args.out)
    logging.info("evaluated %s/%s/%s/seed%s: %d rows%s", result["dataset"], result["model"], result["hardware"],
                 result["seed"], len(result["rows"]),
                 "".join(f"; {k} skipped ({v})" for k, v in result["skipped"].items()))


def cmd_collect_evaluation(args) -> None:
    from .io import atomic_path
    from .evaluate.identity import check_evaluations
    from .results.robustness import collect

    check_evaluations(args.evaluations)  # each its folder's run, once, from its metrics.json as it is
    rows, runs = collect(args.evaluations)
    with atomic_path(args.out_rows) as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_path(args.out_runs) as tmp:
        runs.to_csv(tmp, index=False)


def _draw_each(figures: dict, table, out_dir) -> None:
    """Every figure of a stage's registry (``{name: module:function}``) from its one table."""
    from .results.registry import resolve

    for name, draw in figures.items():
        resolve(draw)(table, Path(out_dir) / name)


def cmd_plot_evaluation(args) -> None:
    from .results.registry import EVALUATION_FIGURES

    _draw_each(EVALUATION_FIGURES, _read_csv(args.evaluation), args.out_dir)


def cmd_select_trials(args) -> None:
    from .io import write_json
    from .tune.trials import selection

    try:
        points = json.loads(args.points)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--points: not valid JSON ({exc})") from None
    result = selection(args.metrics, points)
    write_json(args.out, result)
    logging.info("%s/%s/%s: %s", result["dataset"], result["model"], result["hardware"],
                 f"trial {result['trial']} of {result['n_trials']} selected" if result["status"] == "selected"
                 else result["reason"])


def cmd_collect_trials(args) -> None:
    from .io import atomic_path
    from .results.tuning import collect

    trials = collect(args.selections)
    with atomic_path(args.out) as tmp:
        trials.to_csv(tmp, index=False)


def cmd_collect_probes(args) -> None:
    from .io import atomic_path
    from .results.scaling_table import collect

    index = args.index
    if not isinstance(index, dict) or set(index) != {"step", "allreduce"}:
        raise ValueError("--index: expected JSON {step: [[identity, file], ...], allreduce: [[identity, file], ...]}")
    probes = collect([(ident, Path(f)) for ident, f in index["step"]],
                     [(ident, Path(f)) for ident, f in index["allreduce"]])
    with atomic_path(args.out) as tmp:
        probes.to_csv(tmp, index=False)


def cmd_plot_scaling_model(args) -> None:
    from .results.registry import SCALING_MODEL_FIGURES

    _draw_each(SCALING_MODEL_FIGURES, _read_csv(args.table), args.out_dir)


def cmd_plot_tuning(args) -> None:
    from .results.registry import TUNING_FIGURES

    _draw_each(TUNING_FIGURES, _read_csv(args.trials), args.out_dir)


def _study_results(config) -> Path:
    """The results folder of a study file: results/ under its root (config `root`, default .)."""
    from .study import load_study

    study = load_study(config, f"--config {config}")  # read as the workflow reads it
    return Path(study.get("root") or ".") / "results"


def cmd_compare(args) -> None:
    from .results import reference

    if args.results is not None and args.config is not None:
        raise ValueError("compare: give RESULTS or --config, not both")
    results = args.results or (_study_results(args.config) if args.config else Path("results"))
    outs = {ext: getattr(args, f"out_{ext}") for ext in ("csv", "md", "tex", "html")}
    if not any(outs.values()):
        outs = {ext: results / "tables" / f"compare.{ext}" for ext in outs}
    raw, shown, heading, header, notes = reference.compare(args.reference, results, args.min_seeds)
    reference.write(raw, shown, heading, header, notes, **outs)
    counts = raw["metric_verdict"].value_counts().to_dict()
    logging.info("compared %d rows with %s: metric %s; time %s; written: %s", len(raw), args.reference, counts,
                 raw["time_verdict"].value_counts().to_dict(), ", ".join(str(p) for p in outs.values() if p))


def cmd_export_reference(args) -> None:
    from .results.reference import export

    info = export(args.results, args.dest, args.command)
    logging.info("exported %d runs and %d files of %s to %s", info["study"]["runs"], len(info["files"]), args.results,
                 args.dest)


def _table_outputs(p) -> None:
    p.add_argument("--out-csv", type=Path, required=True, help="every raw column")
    p.add_argument("--out-md", type=Path, help="formatted Markdown")
    p.add_argument("--out-tex", type=Path, help="formatted LaTeX (booktabs)")
    p.add_argument("--out-html", type=Path, help="formatted HTML (the report's page of the table)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liquidbench", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"liquidbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="fetch one source file (mirror first), verified by sha256")
    p.add_argument("--url", required=True, help="https URL of the original file")
    pin = p.add_mutually_exclusive_group(required=True)
    pin.add_argument("--sha256",
                     help="pinned sha256 (64 hex digits); 'null' (not pinned yet) only warns and logs the actual hash")
    pin.add_argument("--manifest", type=Path, metavar="SHA256SUMS",
                     help="a zip archive pinned member by member (sha256sum format, one top folder): --out is "
                          "that folder, filled with the verified members; a mirror may hold the extracted folder")
    p.add_argument("--sha256-of", choices=["file", "decompressed"], default="file",
                   help="hash the file's bytes, or its gzip-decompressed content")
    p.add_argument("--name", help="original file name looked up in the mirrors (default: from the URL)")
    p.add_argument("--also-name", action="append", default=[], metavar="NAME",
                   help="with --manifest: another file name a mirror may hold the archive under (a re-packed copy)")
    p.add_argument("--mirror", action="append", default=[], type=Path, metavar="DIR",
                   help="directory searched first (DIR/NAME, DIR/*/NAME); may be repeated; "
                        "$LIQUIDBENCH_DATA_MIRROR (os.pathsep-separated) adds more after these")
    p.add_argument("--retries", type=int, default=4, help="network retries after the first attempt")
    p.add_argument("--backoff", type=float, default=2.0, help="seconds before the first retry, doubled each time")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout per attempt, seconds")
    p.add_argument("--out", type=Path, required=True, help="destination file (with --manifest: folder)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("prepare", help="generate or preprocess one data set")
    p.add_argument("--dataset", required=True, help="data set name in the config")
    p.add_argument("--kind", required=True, help="data set kind (generator or preprocessor)")
    p.add_argument("--params", type=_json_arg, default={}, help="the data set's parameters as JSON")
    p.add_argument("--raw", type=Path, help="downloaded source file or directory, for real data sets")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train one (dataset, model, hardware, seed) run",
                       description="Either name the run of a study file (--config FILE --run dataset/model/"
                                   "hardware/seed; data and run directory default to the workflow's) or give "
                                   "every setting as the train rule does.")
    p.add_argument("--config", type=Path, help="a study file, e.g. config/local.yaml")
    p.add_argument("--run", "--study-run", dest="run",
                   help="with --config: dataset/model/hardware/seed, e.g. sine/cfc/cpu/0 (under torchrun write "
                        "--study-run: torchrun takes --run for its own --run-path)")
    p.add_argument("--data", type=Path, help="prepared data set directory (default with --config: ROOT/data/processed/DATASET, "
                        "ROOT the study file's `root`)")
    p.add_argument("--dataset")
    p.add_argument("--model")
    p.add_argument("--model-params", type=_json_arg)
    p.add_argument("--hardware")
    p.add_argument("--hardware-params", type=_json_arg)
    p.add_argument("--train-params", type=_json_arg)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", type=Path, help="run directory (default with --config: ROOT/results/runs/D/M/H/seedS)")
    p.add_argument("--tuned", type=Path, metavar="SELECTED_JSON",
                   help="a tuning selection (results/tuning/D/M/H/selected.json): its values over the model and "
                        "training settings; where no trial was ok, the run is recorded as failed, saying so")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("gpu-check", help="prove a GPU node: GPU tests, tiny gpu/ddp-1gpu study, NVML, timing")
    p.add_argument("--out", type=Path, default=Path("results/gpu-check"), help="report.md, report.json and runs/")
    p.add_argument("--repo", type=Path, default=Path("."), help="repository root with tests/ (absent in the image)")
    p.set_defaults(func=cmd_gpu_check)

    p = sub.add_parser("aggregate", help="collect run metrics and histories into tables")
    p.add_argument("metrics", nargs="*", type=Path)
    p.add_argument("--expected", type=_json_arg,
                   help='the study as JSON {"datasets": [...], "models": [...], "hardware": [...], "seeds": [...]}; '
                        "expected runs without metrics get status missing")
    p.add_argument("--out-runs", type=Path, required=True)
    p.add_argument("--out-history", type=Path, required=True)
    p.set_defaults(func=cmd_aggregate)

    # one subcommand per table of the registry (liquidbench.results.registry)
    from .results.registry import SETTINGS, TABLES, figure_inputs, figure_settings

    for name, table in TABLES.items():
        p = sub.add_parser(table.command, help=table.help)
        for inp in table.inputs:
            p.add_argument(f"--{inp}", type=Path, required=True, help=f"the {inp} table (CSV)")
        for inp in table.optional:
            p.add_argument(f"--{inp}", type=Path, help=f"the {inp} table (CSV), where the study writes it")
        for key in table.settings:
            setting = SETTINGS[key]
            p.add_argument(setting.flag, dest=key, type=_json_arg if setting.json else float, required=True,
                           help=setting.help)
        _table_outputs(p)
        p.set_defaults(func=cmd_table, table=name)

    from .results.verdicts import MIN_SEEDS  # not .reference: pandas and scipy at every command's start

    p = sub.add_parser("compare", help="compare a study's results with a reference (metric and time verdicts)",
                       description="One row per data set x model x hardware entry of either side: test metric and "
                                   "training time of the reference and of RESULTS with 95 %% intervals and n, their "
                                   "difference and ratios, a metric verdict (consistent, better, worse, undecidable) "
                                   "and a time verdict (faster, slower, within noise, undecidable); "
                                   "docs/reference.md.")
    p.add_argument("reference", type=Path, help="a reference folder (reference/<name>) or another results folder")
    p.add_argument("results", type=Path, nargs="?",
                   help="the results folder to compare (default: results, or that of --config's study)")
    p.add_argument("--config", type=Path, help="a study file: RESULTS is ROOT/results, ROOT its `root`")
    p.add_argument("--min-seeds", type=int, default=MIN_SEEDS,
                   help=f"ok seeds per side for a verdict (default {MIN_SEEDS}; the workflow passes results.claims.min_seeds)")
    p.add_argument("--out-csv", type=Path, help="every statistic (default, with no --out-*: RESULTS/tables/compare.csv)")
    p.add_argument("--out-md", type=Path, help="formatted Markdown (default as --out-csv: compare.md)")
    p.add_argument("--out-tex", type=Path, help="formatted LaTeX (booktabs; default compare.tex)")
    p.add_argument("--out-html", type=Path, help="formatted HTML, the report's page (default compare.html)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export-reference", help="a finished study's results as a reference folder (reference/<name>)",
                       description="Copies the tables, every run's metrics.json and history.csv and the figures into "
                                   "DEST with reference.json and README.md (commit, machines, versions, command); "
                                   "refuses a RESULTS that is not a finished study's results folder, a run that is "
                                   "not ok, and a DEST that exists, writing nothing.")
    p.add_argument("results", type=Path, help="the results folder of a finished study (ROOT/results)")
    p.add_argument("dest", type=Path, help="the new reference folder, e.g. reference/paper")
    p.add_argument("--command", help="the command that produced the results, recorded in reference.json")
    p.set_defaults(func=cmd_export_reference)

    p = sub.add_parser("plot", help="every figure of the registry, from the tables it reads")
    for inp in figure_inputs():
        p.add_argument(f"--{inp}", type=Path, required=True, help=f"the {inp} table (CSV)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--datasets", nargs="+", required=True)
    for key in figure_settings():
        setting = SETTINGS[key]
        p.add_argument(setting.flag, dest=key, type=_json_arg if setting.json else float, required=True,
                       help=setting.help)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("prepare-eval", help="the sine task's evaluation sets (shifted distribution, long horizon)")
    p.add_argument("--params", type=_json_arg, required=True, help="the sine data set's parameters as JSON")
    p.add_argument("--settings", type=_json_arg, required=True, help="the study's evaluation section as JSON")
    p.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    p.set_defaults(func=cmd_prepare_eval)

    p = sub.add_parser("evaluate", help="test one run's kept weights under the study's perturbations")
    p.add_argument("--run-dir", type=Path, required=True, help="the run folder (metrics.json, weights.pt)")
    p.add_argument("--data", type=Path, required=True, help="the prepared data set directory")
    p.add_argument("--settings", type=_json_arg, required=True, help="the study's evaluation section as JSON")
    p.add_argument("--extra", type=Path, help="the sine task's evaluation sets (prepare-eval), if any")
    p.add_argument("--out", type=Path, required=True, help="evaluation.json to write")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("collect-evaluation", help="every run's evaluation.json into two tables")
    p.add_argument("evaluations", nargs="*", type=Path)
    p.add_argument("--out-rows", type=Path, required=True, help="one row per run x family x level (CSV)")
    p.add_argument("--out-runs", type=Path, required=True, help="one row per run: memory figures (CSV)")
    p.set_defaults(func=cmd_collect_evaluation)

    p = sub.add_parser("select-trials", help="the best tuning trial of a data set x model x hardware (validation only)")
    p.add_argument("metrics", nargs="+", type=Path, help="every trial's metrics.json, in trial order")
    p.add_argument("--points", required=True,
                   help='JSON list, in trial order, of each trial\'s searched values: [{"model": {...}, "training": {...}}]')
    p.add_argument("--out", type=Path, required=True, help="selected.json to write")
    p.set_defaults(func=cmd_select_trials)

    p = sub.add_parser("collect-trials", help="every tuning trial of a study, one row each")
    p.add_argument("selections", nargs="*", type=Path, help="every selected.json of the study")
    p.add_argument("--out", type=Path, required=True, help="the trials table (CSV)")
    p.set_defaults(func=cmd_collect_trials)

    p = sub.add_parser("collect-probes", help="every scaling-model probe point of a study, one row each")
    p.add_argument("--index", type=_json_arg, required=True,
                   help="JSON {step: [[{dataset, model, device}, FILE], ...], allreduce: [[{hardware}, FILE], ...]}")
    p.add_argument("--out", type=Path, required=True, help="the probes table (CSV)")
    p.set_defaults(func=cmd_collect_probes)

    p = sub.add_parser("plot-scaling-model", help="the scaling model's figure")
    p.add_argument("--table", type=Path, required=True, help="the scaling_model table (CSV)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=cmd_plot_scaling_model)

    p = sub.add_parser("plot-tuning", help="the tuning stage's figures")
    p.add_argument("--trials", type=Path, required=True, help="the trials table (CSV)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=cmd_plot_tuning)

    p = sub.add_parser("plot-evaluation", help="the evaluation stage's figures")
    p.add_argument("--evaluation", type=Path, required=True, help="the evaluation table (CSV)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=cmd_plot_evaluation)

    from .train.settings import OPTIMIZER_IMPLS, TRAINING_DEFAULTS

    p = sub.add_parser("probe-step", help="one optimisation step's time against the per-process batch size (JSON)",
                       description="Times forward, loss, backward, clipping and Adam on a synthetic batch at each "
                                   "batch size (warm-up steps untimed; device synchronised before each clock "
                                   "reading): per batch the samples, their median and its 95 %% order-statistic "
                                   "interval, with the model's gradient bytes and the environment.")
    p.add_argument("--model-params", type=_json_arg, required=True,
                   help='the model entry as JSON, with its type, e.g. {"type": "cfc", "units": 32}')
    p.add_argument("--data", help="a prepared data set's folder: task, features, outputs, sequence length and "
                                  "sampling from its meta.json (none: give them as flags)")
    p.add_argument("--features", type=int, help="input features per step (without --data)")
    p.add_argument("--outputs", type=int, help="outputs, or classes (without --data)")
    p.add_argument("--task", help="regression_per_step, classification_per_step or classification_per_sequence "
                                  "(without --data)")
    p.add_argument("--seq-len", type=int, help="steps per sequence (without --data)")
    p.add_argument("--irregular", action="store_true", help="irregular sampling: elapsed times too (without --data)")
    p.add_argument("--batches", required=True, help="per-process batch sizes, increasing, e.g. 1,2,4,8,16,32,64")
    p.add_argument("--tuned", type=Path, metavar="SELECTED_JSON",
                   help="a tuning selection: its model values over --model-params (the model the runs train)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: GPU 0")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 on a GPU (default: float32 throughout)")
    p.add_argument("--optimizer-impl", choices=list(OPTIMIZER_IMPLS), default=TRAINING_DEFAULTS["optimizer_impl"],
                   help=f"Adam and clipping as the training setting (default {TRAINING_DEFAULTS['optimizer_impl']})")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per batch size (default 3)")
    p.add_argument("--repeats", type=int, default=20, help="timed steps per batch size, at least 6 (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model and the synthetic batch")
    p.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    p.set_defaults(func=cmd_probe_step)

    p = sub.add_parser("probe-allreduce", help="one all_reduce's time against the message size (JSON)",
                       description="Starts --world processes on this host (gloo on the CPU, nccl on GPUs), or runs "
                                   "as one rank under torchrun (RANK, WORLD_SIZE set; rank 0 writes): per size the "
                                   "samples (max over ranks), their median and its 95 %% order-statistic interval.")
    p.add_argument("--world", type=int, help="processes to start on this host (at least 2); not under torchrun")
    p.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    p.add_argument("--sizes", help="message sizes in bytes, increasing multiples of 4 (default 4096,8192,...,1048576)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--warmup", type=int, default=5, help="untimed all_reduces per size (default 5)")
    p.add_argument("--repeats", type=int, default=20, help="timed all_reduces per size, at least 6 (default 20)")
    p.add_argument("--timeout", type=int, default=300, help="seconds a collective may wait (default 300)")
    p.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    p.set_defaults(func=cmd_probe_allreduce)
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
    except Exception as exc:  # noqa: BLE001 - every other failure of a job: one line too, the traceback with -v
        log = logging.getLogger("liquidbench")
        log.debug("traceback", exc_info=True)
        log.error("liquidbench %s: %s", args.command, failure_line(exc))
        return 1
    return 0


def failure_line(exc: BaseException) -> str:
    """What failed and what to do, in one line: out of memory (host or device) names the settings
    that decide memory; anything else names its type and asks for -v."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    oom = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or any(
        s in str(exc) for s in ("can't allocate memory", "out of memory", "not enough memory"))
    if oom:
        return (f"out of memory ({text}): lower training.batch_size or eval_batch_size, or the model's size, or ask "
                "for more memory (the hardware entry's resources.mem_mb, or a GPU with more memory)")
    return f"failed with {type(exc).__name__}: {text} (run with -v for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
