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
}
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


def training_settings(params: dict) -> dict:
    """``params`` over the training defaults; an unknown key is an error naming it."""
    unknown = set(params) - set(TRAINING_DEFAULTS)
    if unknown:
        raise ValueError(f"training: unknown parameter(s) {sorted(unknown)}, expected {sorted(TRAINING_DEFAULTS)}")
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
    if not out["telemetry_interval_s"] > 0:
        raise ValueError(f"hardware '{name}': telemetry_interval_s must be > 0, got {out['telemetry_interval_s']}")
    for key in ("tf32", "deterministic"):
        if not isinstance(out[key], bool):
            raise ValueError(f"hardware '{name}': {key} must be true or false, got {out[key]!r}")
    return out
