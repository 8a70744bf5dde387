"""Fast LTC and CfC with ncps's interface: ``from liquidbench.fast import CfC, LTC`` in place of
``from ncps.torch import CfC, LTC``.

The same constructor arguments and defaults as ncps 1.0.1, ``forward(input, hx=None,
timespans=None)`` returning ``(output, hx)``, the same parameters and state dict (a state dict
saved from either loads into the other), the same initial weights from the same seed; outputs and
gradients equal to ncps's within float32 rounding (tests/test_fast_interface.py). On the CPU the
recurrences run as compiled C where a C compiler exists, on CUDA as Triton kernels, elsewhere as
torch (:mod:`liquidbench.models.paths`; docs/fast-cells.md).
"""

from .models.cfc_fast import CfC
from .models.ltc_fast import LTC

__all__ = ["CfC", "LTC"]
