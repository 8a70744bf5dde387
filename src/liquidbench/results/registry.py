"""What the results stage writes: every table and figure, each in one entry.

Adding a table is one entry in ``TABLES`` plus its caption ``workflow/report/{name}.rst`` (a table
with ``when`` exists only in studies that set that key of config ``results``); adding
a figure is one entry in ``FIGURES`` plus its caption ``workflow/report/fig_{name}.rst``. From
these entries the workflow declares one rule per table (workflow/rules/results.smk) and the
targets, the command line one subcommand per table (cli.py), and ``liquidbench plot`` draws every
figure. A table's ``build`` function (``module:function`` under liquidbench.results) takes the
input tables as DataFrames, named by ``inputs``, plus its ``settings`` as keyword arguments, and
returns ``(raw, display)``: every raw column for the CSV, formatted strings for Markdown and
LaTeX. A figure's ``draw`` function takes its input tables (and the data sets) and a file stem, plus
its ``settings`` as keyword arguments.

Entries are built by keyword (the dataclasses are keyword-only), so that a field added or moved
cannot silently shift another entry's values.

Plain Python (no pandas, no matplotlib), so that the workflow can import it at start.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import import_module

# Where each table or figure input comes from: the aggregate rule writes runs and history, the
# table rules the rest (results/tables/{name}.csv); the evaluation stage's inputs evaluation and
# evaluation_runs come from its collect_evaluation rule.
INPUTS = ("runs", "history", "summary", "scaling", "profiles")


@dataclass(frozen=True, kw_only=True)
class Setting:
    """A value of the study a table needs, passed on the command line."""

    flag: str
    json: bool
    help: str


# Every setting a table may take: its command-line flag (JSON object or number). The workflow
# fills each from the validated config (workflow/rules/common.smk, table_settings).
SETTINGS = {
    "hardware": Setting(flag="--hardware-config", json=True,
                        help="the study's hardware entries as JSON, in study order"),
    "threshold": Setting(flag="--threshold", json=False,
                         help="knee: efficiency threshold (config results.knee_threshold)"),
    "baselines": Setting(flag="--baselines", json=True,
                         help="JSON {hardware: baseline hardware} (config results.scaling_baselines)"),
    "model_types": Setting(flag="--model-types", json=True,
                           help="JSON {model name: type, or {type, impl} for impl other than ncps}"),
    "targets": Setting(flag="--targets", json=True,
                       help="JSON {dataset: target validation metric} (config results.targets)"),
    "settings": Setting(flag="--settings", json=True,
                        help="JSON {min_seeds, metric_tolerance_std, speedup_min} (config results.claims)"),
    "scaling_model": Setting(flag="--scaling-model", json=True,
                             help="JSON {widths, exposed, interconnect, seed} (config scaling_model, checked)"),
    "published": Setting(flag="--published-settings", json=True,
                         help="JSON {file, datasets, models, sigmas, min_seeds, dataset_config, study_models} "
                              "(config results.published; the published numbers are in file)"),
}


@dataclass(frozen=True, kw_only=True)
class Table:
    command: str  # the liquidbench subcommand
    help: str
    title: str  # heading of the Markdown table, caption of the LaTeX one
    inputs: tuple[str, ...]
    build: str  # module:function under liquidbench.results
    settings: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()  # input tables used when the study writes them
    when: str | None = None  # written only when this key of config `results` is set


TABLES = {
    "headline": Table(command="headline",
                      help="the answers first: fastest and most accurate model per data set, Pareto set, "
                           "time vs LSTM, the claims' verdicts",
                      title="Headline results", inputs=("summary", "claims"), build="headline:build",
                      settings=("model_types",)),
    "summary": Table(command="summarize", help="mean, std and 95%% CI over seeds", title="Summary over seeds",
                     inputs=("runs",), build="summary:build"),
    "scaling": Table(command="scaling", help="speedup, efficiency and knee of DDP widths",
                     title="Scaling: speedup and parallel efficiency", inputs=("summary",), build="scaling:build",
                     settings=("hardware", "threshold", "baselines")),
    "ratios": Table(command="ratios",
                    help="time and metric ratios: CfC vs LTC, each model vs LSTM, fast vs ncps implementation",
                    title="Ratios between models", inputs=("summary",), build="compare:build_ratios",
                    settings=("model_types",)),
    "time_to_target": Table(command="time-to-target",
                            help="training time until the validation metric reaches a target",
                            title="Time to target", inputs=("runs", "history"), build="compare:build_time_to_target",
                            settings=("targets",)),
    "profiles": Table(command="profiles",
                      help="performance profiles (Dolan and Moré) of time to target and test metric over the "
                           "workloads (data set x hardware)",
                      title="Performance profiles", inputs=("summary", "time_to_target"), build="profiles:build"),
    "claims": Table(command="claims", help="check the study's claims on the data (interval-aware rule)",
                    title="Checked claims", inputs=("summary", "scaling"), build="claims:build",
                    settings=("model_types", "settings"),
                    optional=("published", "robustness_claims", "scaling_model")),
    "published": Table(command="published", help="published results against the reproduced ones, with verdicts",
                       title="Published and reproduced results", inputs=("summary",), build="published:build",
                       settings=("published",), when="published"),
    "provenance": Table(command="provenance", help="software versions and machines of the runs",
                        title="What was run", inputs=("runs",), build="provenance:build"),
    # The evaluation stage (config `evaluation`; workflow/rules/evaluate.smk writes the evaluation
    # and evaluation_runs tables from every run's evaluation.json).
    "robustness": Table(command="robustness", help="metric per model and perturbation level, and its degradation",
                        title="Robustness under perturbations", inputs=("evaluation",),
                        build="robustness:build_robustness", when="evaluation"),
    "memory": Table(command="memory", help="parameters, peak memory and activation memory per sequence step",
                    title="Memory efficiency", inputs=("runs", "evaluation_runs"), build="robustness:build_memory",
                    when="evaluation"),
    "robustness_claims": Table(command="robustness-claims",
                               help="the comparisons behind the evaluation stage's claims",
                               title="Evaluation claims: comparisons",
                               inputs=("evaluation", "evaluation_runs", "summary"),
                               build="robustness:build_claims", settings=("model_types", "settings"),
                               when="evaluation"),
    # The tuning stage (config `tuning`; workflow/rules/tune.smk writes the trials table from every
    # data set x model x hardware's selected.json).
    "tuning": Table(command="tuning", help="every tuning trial: its setting, validation metric, time and status",
                    title="Tuning trials", inputs=("trials",), build="tuning:build_trials", when="tuning"),
    "tuned": Table(command="tuned", help="the setting selected per data set x model x hardware, and the spread",
                   title="Tuned settings", inputs=("trials",), build="tuning:build_tuned", when="tuning"),
    # The scaling model (config `scaling_model`; workflow/rules/probes.smk writes the probes table from
    # every step and all-reduce probe).
    "scaling_model": Table(command="scaling-model",
                           help="the DDP scaling model: fitted step and all-reduce costs, predicted speedup to "
                                "the widest width against the measured one, the knee and what bounds it",
                           title="Scaling model: predicted and measured speedup",
                           inputs=("probes", "runs", "scaling", "summary"),
                           build="scaling_table:build", settings=("hardware", "threshold", "scaling_model"),
                           when="scaling_model"),
}


@dataclass(frozen=True, kw_only=True)
class Figure:
    inputs: tuple[str, ...]
    draw: str  # module:function under liquidbench.results
    per_dataset: bool = False  # one figure per data set, {name}_{dataset}
    datasets: bool = False  # draw(...) takes the study's data sets (one row of panels each)
    settings: tuple[str, ...] = ()  # SETTINGS keys, passed to draw(...) as keyword arguments


FIGURES = {
    "train_time": Figure(inputs=("summary",), draw="figures:train_time", datasets=True),
    "test_metric": Figure(inputs=("summary",), draw="figures:metric", datasets=True),
    "scaling": Figure(inputs=("scaling",), draw="figures:scaling"),
    "pareto": Figure(inputs=("summary",), draw="figures:pareto", datasets=True),
    "gpu": Figure(inputs=("summary",), draw="figures:gpu"),
    "energy": Figure(inputs=("summary",), draw="figures:energy"),
    "impl_speedup": Figure(inputs=("summary",), draw="figures:impl_speedup", settings=("model_types",)),
    "loss_curves": Figure(inputs=("history",), draw="figures:loss_curves", per_dataset=True),
    "performance_profile": Figure(inputs=("profiles", "summary"), draw="profiles:performance_profile"),
}


# The evaluation stage's figures (`liquidbench plot-evaluation`, from the evaluation table): metric
# against perturbation level per family, and the error per horizon step; captions fig_{name}.rst.
EVALUATION_FIGURES = {
    "robustness_noise": "robustness:noise_figure",
    "robustness_drop": "robustness:drop_figure",
    "robustness_shift": "robustness:shift_figure",
    "horizon_error": "robustness:horizon_curves",
}


# The tuning stage's figures (`liquidbench plot-tuning`, from the trials table): validation metric
# against each searched value; captions fig_{name}.rst.
TUNING_FIGURES = {
    "tuning_search": "tuning:search_figure",
}


# The scaling model's figure (`liquidbench plot-scaling-model`, from its table): predicted speedup to
# the widest width with its band, the measured points and the knee; caption fig_scaling_model.rst.
SCALING_MODEL_FIGURES = {
    "scaling_model": "scaling_table:figure",
}


def figure_stems(datasets: list[str]) -> list[str]:
    """Every figure the plot step writes, without extension."""
    stems = [name for name, fig in FIGURES.items() if not fig.per_dataset]
    return stems + [f"{name}_{d}" for name, fig in FIGURES.items() if fig.per_dataset for d in datasets]


def figure_kind(stem: str) -> str:
    """The FIGURES entry a stem belongs to (loss_curves_sine -> loss_curves)."""
    if stem in FIGURES:
        return stem
    return next(name for name, fig in FIGURES.items() if fig.per_dataset and stem.startswith(f"{name}_"))


def figure_inputs() -> list[str]:
    """The tables the figures read, in INPUTS order."""
    return [name for name in INPUTS if any(name in fig.inputs for fig in FIGURES.values())]


def figure_settings() -> list[str]:
    """The settings the figures take, in SETTINGS order."""
    return [key for key in SETTINGS if any(key in fig.settings for fig in FIGURES.values())]


def resolve(target: str):
    """The function named ``module:function`` under liquidbench.results."""
    module, function = target.split(":")
    return getattr(import_module(f"{__package__}.{module}"), function)


def setting_args(keys, values: dict) -> str:
    """Settings of a table or figure as shell-quoted command-line arguments (``values``: what each
    setting is in the study, liquidbench.study.table_settings)."""
    return " ".join(f"{SETTINGS[key].flag} {shlex.quote(str(values[key]))}" for key in keys)
