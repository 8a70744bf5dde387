"""Telemetry: a background sampler of host (CPU, RSS) and GPU (NVML) readings around training.

``Sampler`` (sampler.py) runs in a thread of each rank and records rows; ``summarize`` turns the
rows of every rank into the ``telemetry`` block of metrics.json; ``write_csv`` writes them as
``telemetry.csv``. NVML access and its unit conversions live in nvml.py.
"""

from .sampler import COLUMNS, Sampler, summarize, write_csv

__all__ = ["COLUMNS", "Sampler", "summarize", "write_csv"]
