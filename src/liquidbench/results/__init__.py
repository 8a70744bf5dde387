"""Turning run directories into tables and figures."""

# What the results stage writes (registry.py): importable without matplotlib or pandas, so that
# the workflow can read it at start.
from .registry import FIGURES, TABLES, figure_stems

__all__ = ["FIGURES", "TABLES", "figure_stems"]
