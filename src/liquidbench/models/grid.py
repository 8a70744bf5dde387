"""The shapes and cell variants the fast cells are measured and checked at: one home for the shape
grid of ``benchmarks/bench_roofline.py`` and for the widths the Triton compile tests cover
(``tests/test_triton.py``).

A shape is batch x steps x inputs x units. The grid spans batch 1 to 256, steps 8 to 256, inputs 2
to 128 and units 8 to 128 in a handful of points; it includes the study's reference shape (the
traffic data set: 64 x 32 x 7 x 32) and the shapes at which the fast cells were first compared
with ncps away from it (docs/measurements.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Shape:
    batch: int
    steps: int
    inputs: int
    units: int
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.batch}x{self.steps}x{self.inputs}x{self.units}"


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One cell configuration: a model spec for liquidbench.models.build_model (without units and
    impl, which the shape and the comparison set); ``name`` has no comma (``LIQUIDBENCH_ROOFLINE_VARIANTS``
    takes a comma-separated list of names)."""
    name: str
    spec: dict


REFERENCE = Shape(batch=64, steps=32, inputs=7, units=32, note="the study's traffic data set (bench_impl)")

SHAPES = (
    REFERENCE,
    Shape(batch=24, steps=8, inputs=128, units=64, note="a published CUDA LTC's benchmark shape"),
    Shape(batch=256, steps=16, inputs=32, units=64, note="large batch"),
    Shape(batch=8, steps=256, inputs=16, units=32, note="long sequence, small batch"),
    Shape(batch=1, steps=128, inputs=4, units=16, note="one sequence"),
    Shape(batch=64, steps=64, inputs=2, units=8, note="few units (the sine data set's inputs)"),
    Shape(batch=128, steps=16, inputs=16, units=128, note="many units"),
)

VARIANTS = {
    "ltc": (
        Variant(name="ltc fully connected", spec={"type": "ltc", "wiring": "fully_connected", "ode_unfolds": 6}),
        Variant(name="ltc autoncp", spec={"type": "ltc", "wiring": "autoncp", "motor_neurons": 1,
                                          "ode_unfolds": 6}),
    ),
    "cfc": (
        Variant(name="cfc default backbone 128", spec={"type": "cfc", "mode": "default", "backbone_units": 128,
                                                        "backbone_layers": 1}),
        Variant(name="cfc no_gate backbone 128", spec={"type": "cfc", "mode": "no_gate", "backbone_units": 128,
                                                        "backbone_layers": 1}),
        Variant(name="cfc default no backbone", spec={"type": "cfc", "mode": "default", "backbone_layers": 0}),
    ),
}

# the widths a kernel is compiled at (tests/test_triton.py): every units value of the grid, and the
# backbone widths of its CfC variants
UNITS = tuple(sorted({s.units for s in SHAPES}))
BACKBONE_UNITS = tuple(sorted({v.spec["backbone_units"] for v in VARIANTS["cfc"] if v.spec.get("backbone_layers")}))
