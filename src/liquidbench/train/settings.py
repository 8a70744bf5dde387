"""Training and hardware settings of a run: the one home of their defaults and of their checks.

``liquidbench train`` takes them as JSON from any source (the workflow, ``--config``, a person);
the workflow fills a hardware entry here too (workflow/rules/common.smk), so that Slurm requests,
launchers and training all see the same values. The config schema (workflow/schemas) lists the
same keys without defaults; tests/test_schema.py checks that they agree.
"""

from __future__ import annotations

# `training:` of a config (and a data set's own `training:`)
TRAINING_DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "eval_batch_size": 512,
    "lr": 0.005,
    "lr_decay": 1.0,
    "grad_clip": 1.0,
    "weight_decay": 0.0,
    "drop_last": False,
    # how Adam and clipping run over the parameters (liquidbench.train.optim); fused: one kernel for
    # all parameters, every model alike (about 1 ms off a CPU step at the study's sizes, issue 23)
    "optimizer_impl": "fused",
}
OPTIMIZER_IMPLS = ("default", "foreach", "fused")
# a `hardware:` entry (the config must name its `device`; `resources` have no default)
HARDWARE_DEFAULTS = {
    "device": "cpu",
    "nodes": 1,
    "nproc_per_node": 1,
    "threads": 1,
    "backend": None,
    "scaling": None,
    "timeout_s": 300,
    "telemetry_interval_s": 0.2,
    "tf32": False,  # allow TF32 on CUDA (cuBLAS and cuDNN alike); off: every model in full float32
    "deterministic": False,  # torch's deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG)
}
# a hardware entry's `resources:` (per node); `mem_mb` and `runtime` have no default
RESOURCES_DEFAULTS = {"cpus_per_task": 1, "gpus": 0}


# what each value must be (the config schema says the same; tests/test_schema.py checks the keys):
# (type, test, what it must be); a number is an int or a float, never a bool or a string
_INT, _NUM = (int,), (int, float)
TRAINING_CHECKS = {
    "epochs": (_INT, lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (_INT, lambda v: v >= 1, "an integer >= 1"),
    "eval_batch_size": (_INT, lambda v: v >= 1, "an integer >= 1"),
    "lr": (_NUM, lambda v: v > 0, "a number > 0"),
    "lr_decay": (_NUM, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "grad_clip": (_NUM, lambda v: v >= 0, "a number >= 0 (0 disables clipping)"),
    "weight_decay": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "drop_last": ((bool,), lambda v: True, "true or false"),
    "optimizer_impl": ((str,), lambda v: v in OPTIMIZER_IMPLS, f"one of {list(OPTIMIZER_IMPLS)}"),
}
HARDWARE_CHECKS = {
    "nodes": (_INT, lambda v: v >= 1, "an integer >= 1"),
    "nproc_per_node": (_INT, lambda v: v >= 1, "an integer >= 1"),
    "threads": (_INT, lambda v: v >= 1, "an integer >= 1"),
    "timeout_s": (_INT, lambda v: v >= 1, "an integer >= 1"),
    "telemetry_interval_s": (_NUM, lambda v: v > 0, "a number > 0"),
    "tf32": ((bool,), lambda v: True, "true or false"),
    "deterministic": ((bool,), lambda v: True, "true or false"),
}


def _check(where: str, values: dict, checks: dict) -> None:
    for key, (types, ok, what) in checks.items():
        if key not in values:
            continue
        value = values[key]
        typed = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        if not typed or not ok(value):
            hint = (" (YAML reads 1e-3 as a string: write 1.0e-3 or 0.001)"
                    if isinstance(value, str) and float in types else "")
            raise ValueError(f"{where}: {key} must be {what}, got {value!r}{hint}")


def training_settings(params: dict) -> dict:
    """``params`` over the training defaults; an unknown key or a bad value is an error naming it."""
    unknown = set(params) - set(TRAINING_DEFAULTS)
    if unknown:
        raise ValueError(f"training: unknown parameter(s) {sorted(unknown)}, expected {sorted(TRAINING_DEFAULTS)}")
    _check("training", params, TRAINING_CHECKS)
    return {**TRAINING_DEFAULTS, **params}


def hardware_settings(name: str, entry: dict) -> dict:
    """A hardware entry over the defaults (its ``resources`` too, when it has them); an unknown key
    or a telemetry interval that is not positive is an error naming the entry."""
    unknown = set(entry) - set(HARDWARE_DEFAULTS) - {"resources"}
    if unknown:
        raise ValueError(f"hardware '{name}': unknown key(s) {sorted(unknown)}")
    out = {**HARDWARE_DEFAULTS, **entry}
    if "resources" in entry:
        out["resources"] = {**RESOURCES_DEFAULTS, **entry["resources"]}
    _check(f"hardware '{name}'", out, HARDWARE_CHECKS)
    return out
