"""The schema of a run's metrics.json as aggregation reads it: its one home.

Only the fields the tables use are described (identity, status, the measured quantities); every
other field a run writes is allowed and passed through. A field added to metrics.json that a table
relies on gets its type here, and ``required`` where every run of that status must carry it.
"""

from __future__ import annotations

import math

import jsonschema

# a run's identity: also the folders it lies in (results/runs/{dataset}/{model}/{hardware}/seed{seed})
KEYS = ["dataset", "model", "hardware", "seed"]
# what a finished run may report; "missing" is given by aggregation to runs without metrics.json
STATUSES = ["ok", "diverged", "failed"]

_NAME = {"type": "string", "minLength": 1, "pattern": r"^[^/\\]+$"}
_NUMBER = {"type": "number"}
_NUMBER_OR_NULL = {"type": ["number", "null"]}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "metrics.json of one run",
    "type": "object",
    "required": [*KEYS, "status"],
    "properties": {
        "dataset": _NAME,
        "model": _NAME,
        "hardware": _NAME,
        "seed": {"type": "integer", "minimum": 0},
        "status": {"enum": STATUSES},
        "metric_name": {"type": "string"},
        "test_metric": _NUMBER_OR_NULL,
        "best_val_metric": _NUMBER_OR_NULL,
        "final_train_loss": _NUMBER_OR_NULL,
        "train_time_s": _NUMBER_OR_NULL,
        "steady_epoch_time_s": _NUMBER_OR_NULL,
        "throughput_samples_per_s": _NUMBER_OR_NULL,
        "step_time_median_s": _NUMBER_OR_NULL,
        "comm_fraction": _NUMBER_OR_NULL,
        "peak_host_rss_mb": _NUMBER_OR_NULL,
        "n_params": {"type": "integer", "minimum": 0},
        "world_size": {"type": "integer", "minimum": 1},
        "telemetry": {"type": "object"},
    },
    # a run that finished ok has the measures every table reads
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {"required": ["metric_name", "test_metric", "train_time_s"],
             "properties": {"test_metric": _NUMBER, "train_time_s": _NUMBER}},
    "additionalProperties": True,
}

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def problems(metrics) -> list[str]:
    """What is wrong with one metrics.json (parsed), each naming the field and what was expected."""
    if not isinstance(metrics, dict):
        return [f"expected a JSON object, got {type(metrics).__name__}"]
    out = []
    for error in sorted(_VALIDATOR.iter_errors(metrics), key=lambda e: list(e.absolute_path)):
        field = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            why = " (a run with status ok carries it)" if missing not in SCHEMA["required"] else ""
            out.append(f"field '{missing}' is missing{why}")
        else:
            out.append(f"field '{field}': {error.message}")
    if not out and metrics["status"] == "ok" and not math.isfinite(metrics["test_metric"]):
        out.append(f"field 'test_metric': a run with status ok has a finite test metric, got {metrics['test_metric']}")
    return out
