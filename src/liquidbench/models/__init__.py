"""Model registry: config ``type`` -> builder. Adding a model is one builder and one entry.

A builder takes the entry's other keys and turns them, once, into its model's frozen settings
dataclass (``LtcSpec``, ``CfcSpec``, ``RnnSpec``), whose field defaults are the model's defaults."""

from __future__ import annotations

from .liquid import CfcSpec, LtcSpec, build_cfc, build_ltc
from .rnn import RnnSpec, build_gru, build_lstm
from .sequence import SequenceModel, count_parameters

BUILDERS = {
    "ltc": build_ltc,
    "cfc": build_cfc,
    "lstm": build_lstm,
    "gru": build_gru,
}


def build_model(spec: dict, n_features: int, n_outputs: int, task: str, irregular: bool = False) -> SequenceModel:
    """Build the model described by a config ``models:`` entry (``type`` plus its parameters)."""
    settings = dict(spec)
    kind = settings.pop("type", None)
    if kind not in BUILDERS:
        raise ValueError(f"model type '{kind}' is unknown, expected one of {sorted(BUILDERS)}")
    return BUILDERS[kind](settings, n_features=n_features, n_outputs=n_outputs, task=task, irregular=irregular)


__all__ = ["BUILDERS", "CfcSpec", "LtcSpec", "RnnSpec", "SequenceModel", "build_model", "count_parameters"]
