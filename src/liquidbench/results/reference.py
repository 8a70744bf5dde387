"""Reference results: a finished study's results in one self-describing folder, and a study's
results compared with them (docs/reference.md).

A *reference folder* (``liquidbench export-reference RESULTS DEST``; the project's lie under
``reference/<name>/``) has the layout of a results folder, less what is large::

    reference.json   what it is: format, name, command, commits, machines, versions, study, files (sha256)
    README.md        the same for people, and how to compare a run with it
    tables/          every table of the study: CSV with every statistic, .md, .tex, .html
    runs/{dataset}/{model}/{hardware}/seed{seed}/   metrics.json, history.csv (and evaluation.json)
    figures/         every figure (PNG, PDF)

``liquidbench compare REFERENCE [RESULTS]`` reads the summary and provenance tables of both sides
(each side a reference folder or a results folder) and writes one row per data set x model x
hardware entry of either side (``compare_table``): reference and current test metric and training
time with their 95 % intervals and n, their difference and ratios, and two verdicts decided by the
rule every claim uses (verdicts.Comparison):

- metric: the difference of mean test metrics, current - reference, with the Welch-type t interval
  (stats.difference) against 0: ``better`` or ``worse`` when the whole interval lies on that side of
  0 (by the metric's direction: MSE lower is better, accuracy higher), ``consistent`` when it
  contains 0;
- time: the ratio of geometric-mean training times, current / reference, with the log-scale t
  interval (stats.ratio) against 1: ``faster`` or ``slower`` when the whole interval lies below or
  above 1, ``within noise`` when it contains 1;
- ``undecidable`` with fewer than ``min_seeds`` ok seeds on a side; rows of one side only say
  ``reference only`` or ``current only``;
- ``not comparable`` (both verdicts) when the sides' runs are different experiments: they differ in
  a setting that decides the result (``setting_labels``, from each side's runs table, i.e. every
  run's metrics.json): the data set (task, metric, training samples per epoch, and every parameter
  it was prepared with, ``data_params``), the training budget and settings (the global batch size
  and every recorded training setting but ``eval_batch_size``) or the model (every recorded model
  setting, the parameter count). The column ``settings_differ`` names each,
  ``name reference vs current``. A setting one side's runs recorded and the other's did not (a run
  of an older liquidbench) reads ``not recorded`` and is a difference: nothing shows that the sides
  agree in it, and a verdict asserts that they ran the same experiment. Two exceptions, for runs
  recorded before a kind of setting was: a training setting that joined later counts at the value
  such runs had (liquidbench.train.settings.LATER_DEFAULTS), and where one side's runs record no
  data set parameters at all, those are not compared (the task, metric and training samples per
  epoch still are).

Differences between the sides that leave the experiment the same (liquidbench, Python, torch, ncps
and CUDA versions, source commit, CPU, device, threads, world size, from each side's provenance
table; the prepared data's sha256 where both sides record it) are named in the row's ``differs``
column (with the metric and the parameter count, which are settings too) and the provenance ones in
the table's header lines; they never stop the comparison.

A reference is compared only when it is intact: reference.json records the sha256 of every exported
file (``files``), and each file compare reads must match it; a reference.json without them is
refused, since nothing could tell an edited reference from the exported one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import __version__
from ..envinfo import git_commit
from ..io import sha256_bytes, sha256_file, umask, write_json, write_text
from .reference_folder import COMPARED_TABLES, FORMAT, REFERENCE_FILE, is_reference, read_info, side_files
from .registry import TABLES
from .stats import difference, estimate_of, mean_of, ratio
from .summary import GROUP, LOWER_IS_BETTER
from .tables import FORMAT as TABLE_FORMAT
from .tables import FORMAT_COLUMN, compact, html_page, to_html, to_latex, to_markdown
from ..train.settings import LATER_DEFAULTS
from .verdicts import UNDECIDABLE, Comparison

# the tables every finished study writes (its registry tables without a `when`, and the aggregate
# rule's): an export refuses a results folder that lacks one
STUDY_TABLES = ("runs", "history", *(name for name, table in TABLES.items() if not table.when))
# what an export keeps of each run: its metrics and learning curve (the evaluation where there is one);
# not weights, checkpoints, telemetry samples or logs
RUN_FILES = ("metrics.json", "history.csv")
OPTIONAL_RUN_FILES = ("evaluation.json",)
FIGURE_SUFFIXES = (".png", ".pdf")

# verdicts
CONSISTENT, BETTER, WORSE = "consistent", "better", "worse"  # and verdicts.UNDECIDABLE
FASTER, SLOWER, WITHIN_NOISE = "faster", "slower", "within noise"
BOTH, REFERENCE_ONLY, CURRENT_ONLY = "both", "reference only", "current only"
NOT_COMPARABLE = "not comparable"  # both verdicts of a row whose sides ran different experiments
METRIC_VERDICTS = {"supports": BETTER, "contradicts": WORSE, "not significant": CONSISTENT,
                   "too few seeds": UNDECIDABLE}
TIME_VERDICTS = {"supports": FASTER, "contradicts": SLOWER, "not significant": WITHIN_NOISE,
                 "too few seeds": UNDECIDABLE}

# provenance table column -> CSV column suffix: what may differ between the sides' runs
PROVENANCE = {"liquidbench": "liquidbench", "commit": "commit", "python": "python", "torch": "torch", "ncps": "ncps",
              "cuda": "cuda", "CPU": "cpu", "device": "device", "device name": "device_name", "threads": "threads",
              "world size": "world_size"}
KEY = GROUP  # a summary row's key: data set, model, hardware entry
VERSIONS = ("liquidbench", "python", "torch", "ncps", "numpy", "cuda")  # recorded in reference.json, in this order
# the settings that decide whether two sides' runs are the same experiment: runs table columns
# (metrics.json fields, nested ones dotted) -> the name shown: the data set as the run saw it (and
# the parameters it was prepared with, data_params.params, where the run records them)
DATA_SETTINGS = {"task": "task", "metric_name": "metric", "samples_per_epoch": "training samples per epoch"}
BUDGET_SETTINGS = {"global_batch_size": "global batch size"}
DATA_PREFIX, TRAINING_PREFIX, MODEL_PREFIX = "data_params.params.", "train_params.", "model_params."
# the prepared splits' sha256 (data_params.sha256.{split}.{array}), as one digest per run: named in
# `differs` where both sides record it, never a reason for `not comparable` by itself, since the
# bytes of a floating-point preparation may differ between machines and library versions while the
# data set's parameters, its source pin and so the experiment are the same
HASH_PREFIX, DATA_DIGEST = "data_params.sha256.", "data_params.sha256"
# training settings that change neither the trained model nor the timed training: validation and
# test run after each epoch's timer stops, and their batching changes no result beyond rounding
UNCOMPARED_TRAINING = ("eval_batch_size",)
MODEL_SIZE = {"n_params": "parameters"}
NOT_RECORDED = "not recorded"  # a setting a side's runs lack (runs of an older liquidbench)
SUMMARY_COLUMNS = [*KEY, "runs", "metric_name", "n_params",
                   *(f"{m}_{f}" for m in ("test_metric", "train_time_s")
                     for f in ("n", "mean", "std", "gmean", "gsd", "ci_low", "ci_high"))]


# ---------------------------------------------------------------------------------------------- reading


def read_table(folder: str | Path, name: str, role: str, dtype=None, text: bool = False) -> pd.DataFrame:
    """tables/{name}.csv of a results or reference folder, checked: present, readable, of this table
    format; ``text``: every cell as it is written (no NaN)."""
    path = Path(folder) / "tables" / f"{name}.csv"
    if not path.is_file():
        raise ValueError(f"{role} {folder}: table tables/{name}.csv is missing; expected the {name} table of a "
                         "finished study (its results stage writes it)")
    try:
        table = pd.read_csv(path, dtype=str if text else dtype, keep_default_na=not text)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{role} table {path}: cannot read it ({exc})") from exc
    if FORMAT_COLUMN not in table:
        raise ValueError(f"{role} table {path}: no {FORMAT_COLUMN} column, expected table format {TABLE_FORMAT} "
                         "(written by an older liquidbench: run its results stage again)")
    found = sorted({str(v) for v in table[FORMAT_COLUMN]})
    if found and found != [str(TABLE_FORMAT)]:
        raise ValueError(f"{role} table {path}: table format {', '.join(found)}, expected {TABLE_FORMAT} "
                         "(written by another liquidbench)")
    return table


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its folder, reference.json (empty for a results folder), and the
    compared tables."""

    role: str  # reference or current
    folder: Path
    info: dict
    summary: pd.DataFrame
    provenance: pd.DataFrame
    rows: dict = field(default_factory=dict)  # (dataset, model, hardware) -> summary row
    machines: dict = field(default_factory=dict)  # hardware -> provenance row
    settings: dict = field(default_factory=dict)  # (dataset, model, hardware) -> {runs column: values} (run_settings)
    labels: dict = field(default_factory=dict)  # runs column -> name shown, of the settings it recorded


def _check_recorded(folder: Path, info: dict, role: str) -> None:
    """A reference's compared tables are the files it was exported with: their sha256 as
    reference.json records them (an edited or damaged reference would be compared as if it were the
    published one); a compared table it records no sha256 of could not be checked, and is refused."""
    recorded = info["files"]  # read_info checked it: a non-empty mapping of sha256s
    for name in COMPARED_TABLES:
        rel = f"tables/{name}.csv"
        if rel not in recorded:
            read = ", ".join(f"tables/{n}.csv" for n in COMPARED_TABLES)
            raise ValueError(f"{role} {folder}: {REFERENCE_FILE} records no sha256 of {rel}, so it cannot be checked; "
                             f"expected one for every file compare reads ({read}): export the reference again from "
                             "its results folder")
        if sha256_file(folder / rel) != recorded[rel]:
            raise ValueError(f"{role} {folder}: {rel} is not the file it was exported with (its sha256 differs "
                             f"from {REFERENCE_FILE}'s); restore it from version control or export the reference again")


def load_side(folder: str | Path, role: str) -> Side:
    """A side read and checked (side_files, read_table); one line naming the problem otherwise."""
    folder = Path(folder)
    side_files(folder, role)
    info = read_info(folder) if is_reference(folder) else {}
    summary = read_table(folder, "summary", role, dtype={k: str for k in KEY})  # names stay names ("1")
    missing = [c for c in SUMMARY_COLUMNS if c not in summary]
    if missing:
        raise ValueError(f"{role} table {folder / 'tables/summary.csv'}: missing column(s) {', '.join(missing)}; "
                         "expected a summary table (liquidbench summarize)")
    provenance = read_table(folder, "provenance", role, text=True)
    if "hardware" not in provenance:
        raise ValueError(f"{role} table {folder / 'tables/provenance.csv'}: no hardware column; expected a "
                         "provenance table (liquidbench provenance)")
    runs = read_runs(folder, role)
    if info:
        _check_recorded(folder, info, role)
    rows = {tuple(r[k] for k in KEY): r for r in summary.to_dict("records")}
    machines = {r["hardware"]: r for r in provenance.to_dict("records")}
    return Side(role, folder, info, summary, provenance, rows, machines, run_settings(runs),
                setting_labels(runs.columns))


def read_runs(folder: Path, role: str) -> pd.DataFrame:
    """tables/runs.csv of a side (every run's metrics.json, nested fields dotted), every cell as it
    is written: the settings each run recorded. It carries no table format column (aggregate writes
    it from the runs' own files), so it is checked for what compare reads of it."""
    path = folder / "tables" / "runs.csv"
    if not path.is_file():
        raise ValueError(f"{role} {folder}: table tables/runs.csv is missing; expected the runs table of a finished "
                         "study (its aggregate step writes it)")
    try:
        runs = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{role} table {path}: cannot read it ({exc})") from exc
    missing = [c for c in (*KEY, "status") if c not in runs]
    if missing:
        raise ValueError(f"{role} table {path}: missing column(s) {', '.join(missing)}; expected a runs table "
                         "(liquidbench aggregate)")
    return _with_data_digest(runs)


def _with_data_digest(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table with DATA_DIGEST: one digest of each run's split hashes ('' where it records
    none), so that the prepared data is one value to compare and to name, not one per array."""
    columns = sorted(c for c in runs.columns if c.startswith(HASH_PREFIX))
    if not columns:
        return runs

    def digest(row) -> str:
        if not any(row[c] for c in columns):
            return ""
        return sha256_bytes("\n".join(f"{c}={row[c]}" for c in columns).encode())[:12]

    return runs.assign(**{DATA_DIGEST: runs[columns].apply(digest, axis=1)})


# ---------------------------------------------------------------------------------------------- settings


def setting_labels(columns) -> dict[str, str]:
    """The runs table columns that decide whether two runs are the same experiment, with the names
    shown, in the order shown: the data set (and its recorded parameters), the budget, every
    training setting but those that change nothing run or timed (UNCOMPARED_TRAINING), every model
    setting, the parameter count."""
    labels = {**DATA_SETTINGS, **{c: f"data {c[len(DATA_PREFIX):]}" for c in columns if c.startswith(DATA_PREFIX)},
              **BUDGET_SETTINGS}
    for column in columns:
        if column.startswith(TRAINING_PREFIX) and column[len(TRAINING_PREFIX):] not in UNCOMPARED_TRAINING:
            labels[column] = column[len(TRAINING_PREFIX):]
    labels.update({c: c[len(MODEL_PREFIX):] for c in columns if c.startswith(MODEL_PREFIX)})
    return {**labels, **MODEL_SIZE}


def _setting_value(cell: str) -> str:
    """A runs table cell as compared and shown: ``not recorded`` where empty; a whole number
    without its ``.0`` (a column with a gap is written as floats, 32 as 32.0, on one side only)."""
    if cell == "":
        return NOT_RECORDED
    try:
        number = float(cell)
    except ValueError:
        return cell
    return str(int(number)) if number.is_integer() else repr(number)


def run_settings(runs: pd.DataFrame) -> dict:
    """(dataset, model, hardware) -> {runs column: the distinct values its ok runs recorded}, for
    every column of setting_labels and DATA_DIGEST; the ok runs, as the summary's statistics are theirs."""
    columns = [*setting_labels(runs.columns), DATA_DIGEST]
    ok = runs[runs["status"] == "ok"]
    settings = {}
    for key, group in ok.groupby(KEY, sort=False):
        settings[tuple(key)] = {c: tuple(sorted({_setting_value(v) for v in group[c]})) if c in group
                                else (NOT_RECORDED,) for c in columns}
    return settings


def setting_differences(ref: Side, cur: Side, key: tuple) -> list[str]:
    """What makes a row's sides different experiments, each ``name reference vs current`` (a side's
    values joined by commas where its runs differ among themselves); a setting one side lacks reads
    ``not recorded`` and counts. A side without an ok run has no settings and no verdict either
    (undecidable): nothing to tell."""
    if key not in ref.settings or key not in cur.settings:
        return []
    a, b = ref.settings[key], cur.settings[key]
    out = []
    for column, label in setting_labels([*ref.labels, *cur.labels]).items():
        if column.startswith(DATA_PREFIX) and not (records_data(ref) and records_data(cur)):
            continue  # a side from before runs recorded their data parameters (module docstring)
        x, y = (_later_default(column, side.get(column, (NOT_RECORDED,))) for side in (a, b))
        if x != y:
            out.append(f"{label} {', '.join(x)} vs {', '.join(y)}")
    return out


def records_data(side: Side) -> bool:
    """Whether a side's runs record the parameters of their prepared data (data_params)."""
    return any(c.startswith(DATA_PREFIX) for c in side.labels)


def _later_default(column: str, values: tuple) -> tuple:
    """A training setting a run did not record because it joined later: the value the run had
    (liquidbench.train.settings.LATER_DEFAULTS)."""
    name = column[len(TRAINING_PREFIX):]
    if values == (NOT_RECORDED,) and column.startswith(TRAINING_PREFIX) and name in LATER_DEFAULTS:
        return (_setting_value(str(LATER_DEFAULTS[name])),)
    return values


def data_differs(ref: Side, cur: Side, key: tuple) -> bool:
    """Whether both sides recorded their prepared data's hashes and these differ (DATA_DIGEST)."""
    a, b = (side.settings.get(key, {}).get(DATA_DIGEST, (NOT_RECORDED,)) for side in (ref, cur))
    return NOT_RECORDED not in (*a, *b) and a != b


# ---------------------------------------------------------------------------------------------- comparing


def _stats(prefix: str, row: dict | None) -> dict:
    """A side's metric and time columns of a compare row."""
    nan = float("nan")
    get = (lambda k: nan) if row is None else (lambda k: row.get(k, nan))  # noqa: E731
    out = {f"{prefix}_runs": "" if row is None else row["runs"]}
    for f in ("n", "mean", "std", "ci_low", "ci_high"):
        out[f"{prefix}_metric_{f}"] = get(f"test_metric_{f}")
    for f in ("n", "gmean", "ci_low", "ci_high"):
        out[f"{prefix}_time_{f}"] = get(f"train_time_s_{f}")
    for n in (f"{prefix}_metric_n", f"{prefix}_time_n"):
        out[n] = 0 if pd.isna(out[n]) else int(out[n])
    return out


def _machine(side: Side, hardware: str) -> dict:
    row = side.machines.get(hardware) or {}
    return {label: str(row.get(label, "")) for label in PROVENANCE}


def _differs(ref: dict | None, cur: dict | None, ref_machine: dict, cur_machine: dict) -> list[str]:
    """What differs between the sides of a row: provenance fields, metric, parameter count (the
    prepared data: compare_table, from the runs' settings)."""
    names = [label for label in PROVENANCE if ref_machine[label] != cur_machine[label]]
    if ref is not None and cur is not None:
        if str(ref.get("metric_name")) != str(cur.get("metric_name")):
            names.append("metric")
        a, b = ref.get("n_params"), cur.get("n_params")
        if not (pd.isna(a) and pd.isna(b)) and (pd.isna(a) or pd.isna(b) or float(a) != float(b)):
            names.append("parameters")
    return names


def compare_table(ref: Side, cur: Side, min_seeds: int) -> pd.DataFrame:
    """One row per data set x model x hardware entry of either side (module docstring)."""
    nan = float("nan")
    rows = []
    for key in sorted(set(ref.rows) | set(cur.rows)):
        r, c = ref.rows.get(key), cur.rows.get(key)
        side = BOTH if r is not None and c is not None else REFERENCE_ONLY if r is not None else CURRENT_ONLY
        metric = next((s["metric_name"] for s in (c, r) if s is not None and isinstance(s.get("metric_name"), str)), "")
        row = {**dict(zip(KEY, key)), "side": side, "metric_name": metric, **_stats("reference", r), **_stats("current", c)}
        diff = {"value": nan, "ci_low": nan, "ci_high": nan}
        metric_ratio = time_ratio = {"value": nan, "ci_low": nan, "ci_high": nan}
        metric_verdict = time_verdict = side
        ref_machine, cur_machine = _machine(ref, key[2]), _machine(cur, key[2])
        differs = _differs(r, c, ref_machine, cur_machine) if side == BOTH else []
        if side == BOTH and data_differs(ref, cur, key):
            differs.append("prepared data")
        if side == BOTH:
            name = "/".join(key)
            diff = difference(mean_of(c, "test_metric"), mean_of(r, "test_metric"))
            lower = LOWER_IS_BETTER.get(metric, True)
            outcome = Comparison(name, "metric difference current - reference", diff["value"], diff["ci_low"],
                                 diff["ci_high"], (row["current_metric_n"], row["reference_metric_n"]), 0.0,
                                 "less" if lower else "greater").outcome(min_seeds)
            metric_verdict = METRIC_VERDICTS[outcome]
            metric_ratio = ratio(estimate_of(c, "test_metric"), estimate_of(r, "test_metric"))
            time_ratio = ratio(estimate_of(c, "train_time_s"), estimate_of(r, "train_time_s"))
            outcome = Comparison(name, "time ratio current / reference", time_ratio["value"], time_ratio["ci_low"],
                                 time_ratio["ci_high"], (row["current_time_n"], row["reference_time_n"]), 1.0,
                                 "less").outcome(min_seeds)
            time_verdict = TIME_VERDICTS[outcome]
        settings = setting_differences(ref, cur, key) if side == BOTH else []
        if settings:  # different experiments: the CSV keeps the numbers, no verdict is drawn from them
            metric_verdict = time_verdict = NOT_COMPARABLE
        row.update({
            "metric_difference": diff["value"], "metric_difference_ci_low": diff["ci_low"],
            "metric_difference_ci_high": diff["ci_high"], "metric_ratio": metric_ratio["value"],
            "metric_ratio_ci_low": metric_ratio["ci_low"], "metric_ratio_ci_high": metric_ratio["ci_high"],
            "metric_verdict": metric_verdict, "time_ratio": time_ratio["value"], "time_ratio_ci_low": time_ratio["ci_low"],
            "time_ratio_ci_high": time_ratio["ci_high"], "time_verdict": time_verdict, "min_seeds": min_seeds,
            "differs": ", ".join(differs), "settings_differ": "; ".join(settings),
            **{f"reference_{col}": ref_machine[label] for label, col in PROVENANCE.items()},
            **{f"current_{col}": cur_machine[label] for label, col in PROVENANCE.items()},
        })
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = [*KEY, "side", "metric_name",
           *(f"{s}_{c}" for s in ("reference", "current") for c in (
               "runs", "metric_n", "metric_mean", "metric_std", "metric_ci_low", "metric_ci_high",
               "time_n", "time_gmean", "time_ci_low", "time_ci_high")),
           "metric_difference", "metric_difference_ci_low", "metric_difference_ci_high",
           "metric_ratio", "metric_ratio_ci_low", "metric_ratio_ci_high", "metric_verdict",
           "time_ratio", "time_ratio_ci_low", "time_ratio_ci_high", "time_verdict", "min_seeds", "differs",
           "settings_differ", *(f"{s}_{col}" for s in ("reference", "current") for col in PROVENANCE.values())]


SETTINGS_COLUMN = "settings differ (reference vs current)"


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Compact cells: centre [95 % interval] n=k; — where a side has no row, and for the difference
    and ratios of a row that is not comparable (the CSV keeps them: a figure between different
    experiments is no finding to read off the table)."""
    out = []
    for r in table.to_dict("records"):
        cells = {}
        for s in ("reference", "current"):
            present = r["side"] in (BOTH, f"{s} only")
            cells[f"{s} metric"] = (compact(r[f"{s}_metric_mean"], r[f"{s}_metric_ci_low"], r[f"{s}_metric_ci_high"],
                                            r[f"{s}_metric_n"]) if present else "—")
            cells[f"{s} time [s]"] = (compact(r[f"{s}_time_gmean"], r[f"{s}_time_ci_low"], r[f"{s}_time_ci_high"],
                                              r[f"{s}_time_n"]) if present else "—")
        settings = r["settings_differ"] if isinstance(r["settings_differ"], str) else ""
        both = r["side"] == BOTH and not settings  # no difference or ratio shown between different experiments
        out.append({
            "data set": r["dataset"], "model": r["model"], "hardware": r["hardware"], "metric": r["metric_name"] or "n/a",
            "reference": cells["reference metric"], "current": cells["current metric"],
            "difference": compact(r["metric_difference"], r["metric_difference_ci_low"],
                                  r["metric_difference_ci_high"], digits=3) if both else "—",
            "metric ratio": compact(r["metric_ratio"], r["metric_ratio_ci_low"], r["metric_ratio_ci_high"],
                                    digits=3) if both else "—",
            "metric verdict": r["metric_verdict"],
            "reference time [s]": cells["reference time [s]"], "current time [s]": cells["current time [s]"],
            "time ratio": compact(r["time_ratio"], r["time_ratio_ci_low"], r["time_ratio_ci_high"],
                                  digits=3) if both else "—",
            "time verdict": r["time_verdict"],
            "differs": r["differs"] if isinstance(r["differs"], str) and r["differs"] else "—",
            SETTINGS_COLUMN: settings or "—",
        })
    return pd.DataFrame(out, columns=["data set", "model", "hardware", "metric", "reference", "current", "difference",
                                      "metric ratio", "metric verdict", "reference time [s]", "current time [s]",
                                      "time ratio", "time verdict", "differs", SETTINGS_COLUMN])


def _short(value: str) -> str:
    """Commits shortened to 12 characters in the header lines."""
    return ", ".join(v[:12] if len(v) == 40 and all(ch in "0123456789abcdef" for ch in v) else v
                     for v in value.split(", "))


def header_lines(ref: Side, cur: Side) -> list[str]:
    """What each side is, and what differs between them per hardware entry (versions, commit, CPU, device)."""
    lines = []
    for side in (ref, cur):
        info = side.info
        what = f"{side.role}: {side.folder}"
        if info:
            what += f" (reference {info.get('name')}"
            if info.get("command"):
                what += f", made by `{info['command']}`"
            what += ")"
        commits = sorted({c for m in side.machines.values() for c in str(m.get("commit", "")).split(", ") if c})
        versions = sorted({v for m in side.machines.values() for v in str(m.get("liquidbench", "")).split(", ") if v})
        what += f"; commit {_short(', '.join(commits)) or 'n/a'}, liquidbench {', '.join(versions) or 'n/a'}"
        lines.append(what)
    for hardware in sorted(set(ref.machines) & set(cur.machines)):
        a, b = _machine(ref, hardware), _machine(cur, hardware)
        differ = [f"{label} {_short(a[label]) or 'n/a'} (reference) vs {_short(b[label]) or 'n/a'} (current)"
                  for label in PROVENANCE if a[label] != b[label]]
        lines.append(f"hardware {hardware}: " + ("; ".join(differ) if differ else
                                                 "same versions, commit, CPU and device on both sides"))
    only = [f"{h} ({s.role} only)" for s, o in ((ref, cur), (cur, ref)) for h in sorted(set(s.machines) - set(o.machines))]
    if only:
        lines.append("hardware entries on one side only: " + ", ".join(only))
    return lines


def notes(min_seeds: int) -> str:
    return ("Rows: every data set x model x hardware entry of either side (reference only / current only where the "
            "other side has none). Cells: centre [95 % interval] n = ok seeds; metric: mean; time: geometric mean "
            "training time. Metric verdict: difference of mean test metrics, current - reference, with a "
            "Welch-type 95 % t interval (min(n1, n2) - 1 d.f.): better / worse when the whole interval lies on "
            "that side of 0 (mse: lower is better, accuracy: higher), consistent when it contains 0. Time verdict: "
            "ratio of geometric-mean training times, current / reference, with the log-scale 95 % t interval: "
            "faster / slower when the whole interval lies below / above 1, within noise when it contains 1. "
            f"undecidable: fewer than {min_seeds} ok seeds on a side. not comparable (both verdicts, no difference or "
            "ratio shown): the sides ran different experiments; the last column names each setting that differs, "
            "reference vs current: the data set (task, metric, training samples per epoch, and its recorded "
            "parameters: data ...), the training budget and settings (global batch size and every recorded "
            "training setting but eval_batch_size: epochs, batch_size, lr and the others), the model (every "
            "recorded model setting, the parameter count); "
            "'not recorded' where a side's runs lack the setting (an older liquidbench), which counts as a "
            "difference. differs: the names of what differs between the sides' runs (versions, commit, CPU, "
            "device, threads, world size, prepared data: the splits' sha256, which do not stop the comparison; "
            "metric, parameter count); compare.csv holds every statistic and both sides' values.")


def title(ref: Side) -> str:
    name = ref.info.get("name") if ref.info else None
    return f"Comparison with reference {name}" if name else f"Comparison with {ref.folder}"


def compare(reference: str | Path, results: str | Path, min_seeds: int) -> tuple:
    """(raw, display, title, header lines, notes) of REFERENCE against RESULTS, every input checked first."""
    if not (isinstance(min_seeds, int) and min_seeds >= 1):
        raise ValueError(f"compare: --min-seeds must be a positive integer, got {min_seeds!r}")
    ref, cur = load_side(reference, "reference"), load_side(results, "current")
    table = compare_table(ref, cur, min_seeds)
    return table, display(table), title(ref), header_lines(ref, cur), notes(min_seeds)


def write(raw: pd.DataFrame, shown: pd.DataFrame, heading: str, header: list[str], note: str, csv: Path | None = None,
          md: Path | None = None, tex: Path | None = None, html: Path | None = None) -> None:
    """The compare table as CSV (with its table format), Markdown and HTML (header lines above the
    table) and LaTeX, each atomically."""
    from .tables import write_table

    if csv:
        write_table(raw, shown, csv)
    bullets = "\n".join(f"- {line}" for line in header)
    if md:
        write_text(md, to_markdown(shown, heading, None).replace("\n\n", f"\n\n{bullets}\n\n", 1) + f"\n{note}\n")
    if tex:
        write_text(tex, to_latex(shown, heading, label="tab:compare"))
    if html:
        from html import escape

        items = "".join(f"<li>{escape(line)}</li>" for line in header)
        write_text(html, html_page(to_html(shown, heading, note).replace("</h3>\n", f"</h3>\n<ul>{items}</ul>\n", 1)))


# ---------------------------------------------------------------------------------------------- exporting


def _distinct(series: pd.Series | None) -> list:
    if series is None:
        return []
    values = []
    for v in series.dropna():
        v = v.item() if hasattr(v, "item") else v
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if v != "" and v not in values:
            values.append(v)
    return values


def describe_runs(runs: pd.DataFrame) -> dict:
    """Commits, versions, machines and the study of a runs table (every run's recorded provenance)."""
    col = lambda name: runs[name] if name in runs else None  # noqa: E731
    machines = {}
    for hardware, g in runs.groupby("hardware", sort=False):
        get = lambda name: g[name] if name in g else None  # noqa: E731
        machines[str(hardware)] = {
            "device": _distinct(get("device")), "device_name": _distinct(get("device_name")),
            "cpu_model": _distinct(get("env.cpu_model")), "threads": _distinct(get("threads")),
            "world_size": _distinct(get("world_size")), "hosts": _distinct(get("env.hostname")),
        }
    return {
        "commits": _distinct(col("env.git_commit")),
        "versions": {k: _distinct(col(f"env.{k}")) for k in VERSIONS},
        "machines": machines,
        "study": {"datasets": _distinct(col("dataset")), "models": _distinct(col("model")),
                  "hardware": _distinct(col("hardware")), "seeds": sorted(_distinct(col("seed"))), "runs": len(runs)},
    }


def _refuse_link(results: Path, rel: Path) -> None:
    """Neither a file an export copies nor a folder between it and RESULTS is a symbolic link. A
    reference holds the study's own files: a link may lead anywhere on the machine (a table that is
    a link to /etc/passwd would be published as a table), and a link inside RESULTS puts one file in
    another's place (one run's history exported as another's). So every link is refused, wherever it
    leads; RESULTS itself may be one (it is the folder the user named)."""
    path = results
    for part in rel.parts:
        path = path / part
        if path.is_symlink():
            raise ValueError(f"export-reference: {path} is a symbolic link (to {os.readlink(path)}); expected the "
                             "study's own file or folder there: replace the link by what the study wrote (or run "
                             "the study again) and export again")


def _table_files(results: Path) -> list[Path]:
    """What an export keeps of tables/ (relative to results): every file but hidden ones; a link
    among them is refused (_refuse_link) before any table is read."""
    _refuse_link(results, Path("tables"))
    files = []
    for path in sorted((results / "tables").iterdir()):
        if not path.name.startswith("."):
            _refuse_link(results, Path("tables") / path.name)
            if path.is_file():
                files.append(Path("tables") / path.name)
    return files


def _figure_files(results: Path) -> list[Path]:
    """What an export keeps of figures/ (relative to results): its PNG and PDF files, none a link."""
    if not (results / "figures").is_dir():
        return []
    _refuse_link(results, Path("figures"))
    files = []
    for path in sorted((results / "figures").iterdir()):
        if path.suffix in FIGURE_SUFFIXES:
            _refuse_link(results, Path("figures") / path.name)
            if path.is_file():
                files.append(Path("figures") / path.name)
    return files


def _check_results(results: Path) -> tuple[pd.DataFrame, list[Path]]:
    """A results folder of a finished study whose every run is ok: its runs table, and the table
    files an export keeps."""
    where = f"export-reference: {results}"
    if not results.is_dir():
        raise ValueError(f"{where} is not a folder; expected the results/ folder of a finished study")
    if not ((results / "tables").is_dir() and (results / "runs").is_dir()):
        raise ValueError(f"{where} is not a results folder; expected the results/ folder of a finished study "
                         "(tables/ and runs/ in it)")
    tables = _table_files(results)
    _refuse_link(results, Path("runs"))
    missing = [f"tables/{name}.csv" for name in STUDY_TABLES if not (results / "tables" / f"{name}.csv").is_file()]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}; expected every table of a finished study (run its "
                         "workflow to the end)")
    for name in TABLES:
        if (results / "tables" / f"{name}.csv").is_file():
            read_table(results, name, "export-reference: results")
    try:
        runs = pd.read_csv(results / "tables/runs.csv", dtype={k: str for k in (*KEY, "env.git_commit")})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{where}/tables/runs.csv: cannot read it ({exc})") from exc
    need = [c for c in ("dataset", "model", "hardware", "seed", "status") if c not in runs]
    if need or not len(runs):
        raise ValueError(f"{where}/tables/runs.csv: expected one row per run with dataset, model, hardware, seed "
                         f"and status{'; missing ' + ', '.join(need) if need else '; it has no row'}")
    bad = runs[runs["status"] != "ok"]
    if len(bad):
        named = [f"{r.dataset}/{r.model}/{r.hardware}/seed{r.seed} ({r.status})" for r in bad.itertuples()]
        raise ValueError(f"{where}: {len(bad)} run(s) not ok: {', '.join(named[:5])}{' ...' if len(named) > 5 else ''}; "
                         "a reference holds a finished study whose every run is ok")
    return runs, tables


def _run_files(results: Path, runs: pd.DataFrame) -> list[Path]:
    """Every run's files an export keeps (relative to results), each run's metrics checked."""
    from .aggregate import read_run

    files = []
    for r in runs.itertuples():
        folder = Path("runs") / str(r.dataset) / str(r.model) / str(r.hardware) / f"seed{r.seed}"
        for name in RUN_FILES + OPTIONAL_RUN_FILES:
            _refuse_link(results, folder / name)
        for name in RUN_FILES:
            if not (results / folder / name).is_file():
                raise ValueError(f"export-reference: {results / folder / name} is missing; expected every ok run's "
                                 f"{' and '.join(RUN_FILES)}")
        if read_run(results / folder / "metrics.json")["status"] != "ok":
            raise ValueError(f"export-reference: {results / folder / 'metrics.json'}: status is not ok, but "
                             "tables/runs.csv says ok; run the results stage again")
        files += [folder / name for name in RUN_FILES + OPTIONAL_RUN_FILES if (results / folder / name).is_file()]
    return files


def export(results: str | Path, dest: str | Path, command: str | None = None) -> dict:
    """Copy a finished study's results into a new reference folder ``dest`` (module docstring):
    every check first (a symbolic link among what it copies is refused: _refuse_link), then written
    into a temporary folder beside ``dest`` and renamed onto it, so that a refusal or failure leaves
    nothing. Returns reference.json's content."""
    results, dest = Path(results), Path(dest)
    if dest.exists() or dest.is_symlink():
        raise ValueError(f"export-reference: {dest} exists; expected a new folder (a reference is never "
                         "overwritten: remove it or give another name)")
    runs, files = _check_results(results)
    files += _run_files(results, runs)
    files += _figure_files(results)
    info = {
        "format": FORMAT, "table_format": TABLE_FORMAT, "name": dest.name, "command": command,
        "source": str(results),
        # the code that exports is the code that made the tables (the workflow's aggregate rules),
        # which may be later than the commits the runs were trained at
        "exported": {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "by": f"liquidbench {__version__}",
                     "commit": git_commit()},
        **describe_runs(runs),
    }
    made = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(results / rel, tmp / rel)
        info["files"] = {str(rel): sha256_file(tmp / rel) for rel in files}
        write_json(tmp / REFERENCE_FILE, info)
        write_text(tmp / "README.md", readme(info, tmp))
        for folder in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            folder.chmod(0o777 & ~umask())
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:  # the parents this export made, innermost first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return info


def _listing(values: list) -> str:
    return ", ".join(str(v) for v in values) or "not recorded"


def readme(info: dict, folder: Path) -> str:
    """README.md of a reference folder: what reference.json says, for people, and its summary table."""
    name = info["name"]
    study = info["study"]
    lines = [
        f"# Reference results: {name}", "",
        "The results of a finished liquidbench study, exported by `liquidbench export-reference` "
        f"(format {info['format']}, table format {info['table_format']}); `{REFERENCE_FILE}` holds the same "
        "facts and every file's sha256.", "",
        f"- Command: `{info['command']}`" if info.get("command") else "- Command: not given",
        f"- Commits the runs were trained at: {_listing(info['commits'])}",
        # in VERSIONS' order, not the file's (reference.json's keys are sorted): the README is the
        # same whether written at export or again from reference.json
        "- Versions: " + "; ".join(f"{k} {_listing(info['versions'][k])}" for k in VERSIONS if k in info["versions"]),
        f"- Study: data sets {_listing(study['datasets'])}; models {_listing(study['models'])}; hardware "
        f"{_listing(study['hardware'])}; seeds {_listing(study['seeds'])}; {study['runs']} runs, every one ok",
        f"- Exported from `{info['source']}` at {info['exported']['at']} by {info['exported']['by']} "
        f"(commit {info['exported'].get('commit', 'not recorded')})",
        "", "## Machines", "",
        "| hardware | device | device name | CPU | threads | world size | hosts |", "|---|---|---|---|---|---|---|",
    ]
    for hardware, m in info["machines"].items():
        lines.append(f"| {hardware} | {_listing(m['device'])} | {_listing(m['device_name'])} | {_listing(m['cpu_model'])} "
                     f"| {_listing(m['threads'])} | {_listing(m['world_size'])} | {_listing(m['hosts'])} |")
    lines += [
        "", "## Layout", "",
        f"- `{REFERENCE_FILE}`: format, name, command, commits, versions, machines, study, files (sha256)",
        "- `tables/`: every table of the study, `.csv` (every statistic) and `.md`, `.tex`, `.html`",
        "- `runs/{dataset}/{model}/{hardware}/seed{seed}/`: each run's `metrics.json` and `history.csv`",
        "- `figures/`: every figure, PNG and PDF", "",
        "## Comparing a run with it", "",
        "```bash", f"liquidbench compare reference/{name} RESULTS    # RESULTS: a study's results folder", "```", "",
        f"or in a study file: `results: {{reference: reference/{name}}}` (the workflow then writes "
        "`tables/compare.*` and shows the table in its report). The repository's docs/reference.md states the "
        "verdict rule.",
    ]
    summary = folder / "tables/summary.md"
    if summary.is_file():
        lines += ["", "## Summary", "", summary.read_text().replace("### Summary over seeds\n\n", "", 1).rstrip()]
    return "\n".join(lines) + "\n"

