"""Typed parameters of the data sets: a study file gives a data set's ``params`` as a mapping; each
data set module turns it, once, where it enters (``prepare``, ``generate``, ...), into a frozen
dataclass whose field defaults are the data set's defaults, so that a misspelt key fails at once,
naming it, and the code below reads checked attributes rather than looking keys up."""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping, TypeVar

T = TypeVar("T")


def field_names(cls: type) -> list[str]:
    """The parameters a settings dataclass takes, in its field order (the order meta.json records)."""
    return [f.name for f in fields(cls)]


def from_mapping(cls: type[T], params: Mapping, who: str) -> T:
    """``cls`` built from ``params`` over its defaults; a key that is no field of ``cls`` is an error
    naming it and the known ones (``who`` names the data set in the message)."""
    names = field_names(cls)
    unknown = set(params) - set(names)
    if unknown:
        raise ValueError(f"{who}: unknown parameter(s) {sorted(unknown)}, expected {sorted(names)}")
    return cls(**params)
