# Config lookups and input functions shared by the rules. The config is validated (config.smk);
# everything that computes lives in the liquidbench package.

import os
import re
import shlex

from liquidbench.data.sources import Source, collect_sources, manifest_path, source_key
from liquidbench.evaluate.settings import horizon_datasets
from liquidbench.results.reference_folder import COMPARED_TABLES, side_files
from liquidbench.results.registry import (
    EVALUATION_FIGURES,
    SCALING_MODEL_FIGURES,
    TABLES,
    TUNING_FIGURES,
    figure_inputs,
    figure_kind,
    figure_settings,
    figure_stems,
    setting_args,
)
from liquidbench.slurm import KEYS as RESOURCE_KEYS
from liquidbench.results.scaling_settings import ScalingModel, probe_plan
from liquidbench.slurm import SHORT_CPU_GROUP, SHORT_CPU_TRIALS, job_group, job_resources, launcher
from liquidbench.study import as_json, check_not_empty, model_of, study_runs, table_settings, training_of
from liquidbench.data import expected_params
from liquidbench.train.recorded import STALE, stale_reason
from liquidbench.train.settings import Hardware, Training
from liquidbench.tune.space import Tuning, split_point, trial_points, trial_settings
from liquidbench.tune.selected import apply_selection, read_selection

STUDY = config["study"]
RESULTS = config["results"]  # every default filled in by the schema
EVALUATION = config.get("evaluation")  # absent: the study has no evaluation stage
REFERENCE = RESULTS["reference"]  # absent: no compare job
# every hardware entry with its defaults (liquidbench.train.settings, their one home)
HARDWARE = {name: Hardware.from_entry(name, entry) for name, entry in config["hardware"].items()}
# the product less study.exclude, whose names must be defined (a typo fails here)
RUNS = study_runs(STUDY, {section: list(config[section]) for section in ("datasets", "models", "hardware")})
check_not_empty(RUNS, STUDY)
# data/raw/ name -> liquidbench.data.sources.Source; data/raw/ and logs/download/ are shared by studies
SOURCES = collect_sources(config["datasets"], workflow.basedir)
# the tables of this study: one with `when` only where that key of `results` or a top-level section is set
STUDY_TABLES = {
    name: t for name, t in TABLES.items() if not t.when or RESULTS.get(t.when) or config.get(t.when) is not None
}
TABLE_FORMATS = ("csv", "md", "tex", "html")
# what each table and figure setting is in this study (liquidbench.results.registry.SETTINGS)
TABLE_SETTINGS = table_settings(config, {name: hw.as_dict() for name, hw in HARDWARE.items()})
# the data sets the closed-loop horizon runs on
HORIZON_DATASETS = horizon_datasets(EVALUATION, config["datasets"])
# the tuning stage (liquidbench.tune), absent: every model trains at its given settings
TUNING = (
    Tuning.from_settings(config["tuning"], config["models"], STUDY["models"], config["hardware"])
    if config.get("tuning")
    else None
)


# the scaling model's probes (liquidbench.results.scaling_settings), absent: no probes, no model
SCALING_MODEL = ScalingModel.from_section(config["scaling_model"]) if config.get("scaling_model") is not None else None
# device -> the entry its step probes run as; (data set, model, device) step probes; DDP entries probed
PROBE_ENTRIES, STEP_PROBES, ALLREDUCE_PROBES = (
    probe_plan(RUNS, {name: HARDWARE[name] for name in STUDY["hardware"]}, RESULTS["scaling_baselines"])
    if SCALING_MODEL
    else ({}, [], [])
)


def study_path(path):
    """``path`` under this study's root (config `root`): studies of other roots never meet."""
    return os.path.normpath(os.path.join(config["root"], path))


RUN_DIR = study_path("results/runs/{dataset}/{model}/{hardware}/seed{seed}")
# the tuning stage's trials of a data set x model x hardware and the setting selected among them
TUNING_DIR = study_path("results/tuning/{dataset}/{model}/{hardware}")
TRIAL_DIR = f"{TUNING_DIR}/trial{{trial}}"
SELECTED = f"{TUNING_DIR}/selected.json"
# the scaling model's probes: a step probe per data set x model x device, an all-reduce probe per DDP entry
STEP_PROBE = study_path("results/probes/step/{dataset}/{model}/{device}.json")
ALLREDUCE_PROBE = study_path("results/probes/allreduce/{hardware}.json")
# the sine task's extra test sets, beside (not inside) the prepared data set's folder
EVALUATION_FILE = study_path("data/processed/{dataset}.evaluation.npz")


def any_of(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(map(re.escape, names)) or "(?!)"


def datasets_of_kind(kind):
    return any_of([name for name, d in config["datasets"].items() if d["kind"] == kind])


def processed_dir(dataset):
    return study_path(f"data/processed/{dataset}")


def dataset_files(dataset):
    return [f"{processed_dir(dataset)}/{name}" for name in ("meta.json", "train.npz", "val.npz", "test.npz")]


def data_params(w):
    return as_json(config["datasets"][w.dataset].get("params", {}))


def raw_file(w):
    """Where a real data set's source lies: a file, or the folder of its verified members."""
    source = Source.from_entry(w.dataset, config["datasets"][w.dataset]["source"])
    return f"data/raw/{source_key(w.dataset, source, workflow.basedir)}"


def stale_runs():
    """{folder: why its finished run is not this study's, or None} of every run and tuning trial of
    the study: a finished run whose metrics.json records other settings than the study's is stale
    (liquidbench.train.recorded), found without Snakemake's records too."""
    found = {}
    for dataset, model, hardware, seed in RUNS:
        run_dir = RUN_DIR.format(dataset=dataset, model=model, hardware=hardware, seed=seed)
        spec, training = model_of(config, model), training_of(config, dataset, model)
        if tuned(model):  # the study's settings are those of its selection, once there is one
            selected = selection_file(dataset, model, hardware)
            if not os.path.exists(selected):
                found[run_dir] = None  # the selection will be newer than the run: it trains again
                continue
            spec, training = apply_selection(spec, training, read_selection(selected))
        found[run_dir] = recorded_differs(run_dir, dataset, hardware, spec, training)
    for dataset, model, hardware in tuned_workloads() if TUNING else []:
        for k in range(TUNING.trials):
            spec, training = trial_settings(TUNING, model_of(config, model), training_of(config, dataset, model), k)
            trial_dir = TRIAL_DIR.format(dataset=dataset, model=model, hardware=hardware, trial=k)
            found[trial_dir] = recorded_differs(trial_dir, dataset, hardware, spec, training)
    return found


def recorded_differs(folder, dataset, hardware, spec, training):
    """Why the run in ``folder`` records other settings than these, or None."""
    entry = config["datasets"][dataset]
    return stale_reason(
        folder,
        model=spec,
        training=Training.from_params(training).as_dict(),
        hardware=HARDWARE[hardware].as_dict(),
        data=expected_params(entry["kind"], entry.get("params") or {}),
    )


def with_stale_marker(files, folder):
    """``files``, and the stale marker of ``folder`` where there is one (the Snakefile writes it)."""
    marker = f"{folder}/{STALE}"
    return files + ([marker] if os.path.exists(marker) else [])


def tuned(model):
    """Whether the study tunes this model (config `tuning.models`, every model by default, or
    `tuning.share`)."""
    return TUNING is not None and TUNING.tunes(model)


def selection_file(dataset, model, hardware):
    """The selected.json a tuned run trains at: its own data set x model x hardware's, or the one
    `tuning.share` names."""
    d, m, h = TUNING.source(dataset, model, hardware)
    return SELECTED.format(dataset=d, model=m, hardware=h)


def train_inputs(w):
    """The run's prepared data set; its tuning selection where the model is tuned; its stale marker
    where there is one (the Snakefile writes it for a finished run of other settings, so that the
    run is trained again)."""
    selected = [selection_file(w.dataset, w.model, w.hardware)] if tuned(w.model) else []
    return with_stale_marker(dataset_files(w.dataset) + selected, RUN_DIR.format(**w))


def trial_inputs(w):
    """A trial's prepared data set, and its stale marker where there is one (as train_inputs)."""
    return with_stale_marker(dataset_files(w.dataset), TRIAL_DIR.format(**w))


def tuned_arg(w):
    """`--tuned selected.json` for a tuned model's run, else nothing."""
    return f"--tuned {shlex.quote(selection_file(w.dataset, w.model, w.hardware))}" if tuned(w.model) else ""


def tuned_workloads():
    """(dataset, model, hardware) whose trials select the setting of a tuned run, in study order,
    each once (a run's own, or the one `tuning.share` names)."""
    return list(dict.fromkeys(TUNING.source(d, m, h) for d, m, h, _ in RUNS if tuned(m)))


def trial_files(w, name="metrics.json"):
    """The trials' files of one data set x model x hardware."""
    return [f"{TRIAL_DIR}/{name}".format(trial=k, **w) for k in range(TUNING.trials)]


def trial_run(w):
    """(model entry, training settings) of one trial (liquidbench.tune.space.trial_settings)."""
    return trial_settings(TUNING, model_of(config, w.model), training_of(config, w.dataset, w.model), int(w.trial))


def trial_points_of(w):
    """Every trial's searched values, split into model and training keys, in trial order: what
    `liquidbench select-trials` applies of the trial it selects."""
    space = TUNING.params(model_of(config, w.model)["type"])
    return [split_point(space, point) for point in trial_points(space, TUNING.trials, TUNING.seed)]


def probe_entry(w):
    """The hardware entry a step probe runs as (its threads and Slurm request)."""
    return HARDWARE[PROBE_ENTRIES[w.device]]


def step_probe_inputs(w):
    """A step probe's prepared data set, and the tuning selection its model trains at where tuned
    (the selection of the entry it runs as: the model it times is the one that entry trains)."""
    entry = PROBE_ENTRIES[w.device]
    selected = [selection_file(w.dataset, w.model, entry)] if tuned(w.model) else []
    return dataset_files(w.dataset) + selected


def step_probe_args(w):
    """The step probe's settings: its model, its batch grid up to the runs' batch, the tuning selection."""
    training = training_of(config, w.dataset, w.model)
    where = f"data set '{w.dataset}', model '{w.model}'"
    batches = SCALING_MODEL.grid(Training.from_params(training).batch_size, where)
    tuned_file = selection_file(w.dataset, w.model, PROBE_ENTRIES[w.device]) if tuned(w.model) else None
    args = [f"--batches {','.join(map(str, batches))}"]
    args += [f"--tuned {shlex.quote(tuned_file)}"] if tuned_file else []
    return " ".join(args)


def probe_files():
    """Every probe's file, and its identity, as the collect-probes job reads them."""
    step = [
        ({"dataset": d, "model": m, "device": dev}, STEP_PROBE.format(dataset=d, model=m, device=dev))
        for d, m, dev in STEP_PROBES
    ]
    allreduce = [({"hardware": h}, ALLREDUCE_PROBE.format(hardware=h)) for h in ALLREDUCE_PROBES]
    return {"step": step, "allreduce": allreduce}


def log_file(path):
    return study_path(f"logs/{path}")


def run_targets(name):
    return [f"{RUN_DIR}/{name}".format(dataset=d, model=m, hardware=h, seed=seed) for d, m, h, seed in RUNS]


def expected_runs(name="metrics.json"):
    """Every run's file; with results.allow_missing only those of runs that left metrics (after
    `snakemake --keep-going` left failed runs behind, which then appear as missing)."""
    files = zip(run_targets("metrics.json"), run_targets(name))
    return [f for metrics, f in files if not RESULTS["allow_missing"] or os.path.exists(metrics)]


def train_resources(entry=lambda w: w.hardware):
    """The Slurm resources of a training job, trial or probe (liquidbench.slurm) of the hardware
    entry ``entry(wildcards)`` names: only the keys some entry the study trains on sets (each is a
    function Snakemake calls per job: a key no entry sets would cost the plan time and leave nothing set)."""
    names = set(STUDY["hardware"]) | set(TUNING.share_hardware.values() if TUNING else ())
    requests = {name: job_resources(HARDWARE[name]) for name in names}
    keys = [k for k in RESOURCE_KEYS if any(r[k] is not None for r in requests.values())]
    return {k: lambda w, k=k: requests[entry(w)][k] for k in keys}


def train_group(w):
    """`--group-components cpu-short=N` groups one-process CPU training jobs (liquidbench.slurm)."""
    return job_group(HARDWARE[w.hardware], workflow.group_settings.group_components.get(SHORT_CPU_GROUP, 1))


def trial_group(w):
    """`--group-components cpu-short-trials=N` groups one-process CPU tuning trials (liquidbench.slurm)."""
    components = workflow.group_settings.group_components.get(SHORT_CPU_TRIALS, 1)
    return job_group(HARDWARE[w.hardware], components, SHORT_CPU_TRIALS)


def table_file(name, ext="csv"):
    return study_path(f"results/tables/{name}.{ext}")


def table_inputs(name):
    """A table's input tables by name: its own and those of its optional ones the study writes."""
    table = TABLES[name]
    names = list(table.inputs) + [n for n in table.optional if n in STUDY_TABLES]
    files = {n: table_file(n) for n in names}
    if "published" in table.settings:  # the published numbers: a changed file redoes the table
        files["published_file"] = RESULTS["published"]["file"]
    return files


def table_outputs(name):
    """A table in every format; the HTML and CSV go into the report with the table's caption."""
    caption, labels = f"../report/{name}.rst", {"table": name}
    return dict(
        html=report(table_file(name, "html"), caption=caption, category="Tables", labels=labels),
        csv=report(table_file(name), caption=caption, category="Table data (CSV)", labels=labels),
        md=table_file(name, "md"),
        tex=table_file(name, "tex"),
    )


def table_params(name):
    """The table's subcommand and its inputs and settings as shell-quoted arguments."""
    table = TABLES[name]
    args = [f"--{n} {shlex.quote(path)}" for n, path in table_inputs(name).items() if n != "published_file"]
    return dict(command=table.command, args=" ".join(args + [setting_args(table.settings, TABLE_SETTINGS)]))


def compare_inputs():
    """The reference folder's files and this study's compared tables; a reference that is not a
    reference or results folder fails at start, naming the config key."""
    try:
        return {"reference": side_files(REFERENCE), **{name: table_file(name) for name in COMPARED_TABLES}}
    except ValueError as exc:
        raise ValueError(f"config key 'results.reference': {exc}") from None


def figure_files(stems):
    return [study_path(f"results/figures/{stem}.{ext}") for stem in stems for ext in ("png", "pdf")]


def figure_outputs(stems, kind=lambda stem: stem):
    """Figures as PNG, in the report with the caption of their kind, and PDF. For the outputs of the
    plotting rules only, since a caption's path is relative to the file report() is called from."""
    out = []
    for stem in stems:
        png, pdf = figure_files([stem])
        caption = f"../report/fig_{kind(stem)}.rst"
        out.extend([report(png, caption=caption, category="Figures", labels={"figure": stem}), pdf])
    return out


def evaluation_sets_settings(w):
    """What a sine data set's evaluation sets depend on: the seed, the shift grid, and the horizon
    grid where the horizon runs on it; so that a changed noise or drop grid prepares nothing again."""
    families = {k: v for k, v in EVALUATION["families"].items() if k == "shift"}
    if w.dataset in HORIZON_DATASETS:
        families["horizon"] = {k: v for k, v in EVALUATION["families"]["horizon"].items() if k != "datasets"}
    return as_json({**EVALUATION, "families": families})


def evaluation_inputs(w):
    """The run's metrics and kept weights, its data set, and for a sine data set with shift
    configured, or the horizon running on it, its evaluation sets."""
    run = RUN_DIR.format(**w)
    files = {"metrics": f"{run}/metrics.json", "weights": f"{run}/weights.pt", "data": dataset_files(w.dataset)}
    sine = config["datasets"][w.dataset]["kind"] == "sine"
    if sine and ("shift" in EVALUATION["families"] or w.dataset in HORIZON_DATASETS):
        files["extra"] = EVALUATION_FILE.format(dataset=w.dataset)
    return files


def result_steps():
    """(outputs, inputs) of every step from the runs to the figures, for onerror's
    liquidbench.results.stale: aggregation, each table, compare, the figures, the evaluation's."""
    tables = lambda *names: [table_file(n, ext) for n in names for ext in TABLE_FORMATS]
    steps = [([table_file("runs"), table_file("history")], expected_runs())]
    steps += [(tables(name), list(table_inputs(name).values())) for name in STUDY_TABLES]
    steps.append((figure_files(figure_stems(STUDY["datasets"])), [table_file(n) for n in figure_inputs()]))
    if REFERENCE:
        reference = compare_inputs()
        steps.append((tables("compare"), reference.pop("reference") + list(reference.values())))
    if TUNING:
        selections = [SELECTED.format(dataset=d, model=m, hardware=h) for d, m, h in tuned_workloads()]
        steps.append(([table_file("trials")], selections))
        steps.append((figure_files(TUNING_FIGURES), [table_file("trials")]))
    if SCALING_MODEL:
        probes = [path for kind in probe_files().values() for _, path in kind]
        steps.append(([table_file("probes")], probes))
        steps.append((figure_files(SCALING_MODEL_FIGURES), [table_file("scaling_model")]))
    if EVALUATION:
        steps.append(([table_file("evaluation"), table_file("evaluation_runs")], expected_runs("evaluation.json")))
        steps.append((figure_files(EVALUATION_FIGURES), [table_file("evaluation")]))
    return steps
