"""The fast CfC's one weight bundle (liquidbench.models.cfc_weights) built from ncps's cells: ncps's
parameters as they are, in the documented order, for every kind of cell the fast CfC runs."""

import dataclasses

import pytest
import torch
from ncps import torch as ncps_torch
from ncps.wirings import AutoNCP

from liquidbench.models.cfc_weights import CfcWeights, of_cell


@pytest.mark.parametrize("options, layers", [({"backbone_units": 6, "backbone_layers": 3}, 3),
                                             ({"backbone_layers": 0}, 0), ({"backbone_layers": 0, "mode": "pure"}, 0),
                                             ({"mode": "pure", "backbone_units": 6}, 1)])
def test_bundle_holds_ncps_parameters_unscaled_heads_stacked(options, layers):
    cell = ncps_torch.CfC(3, 5, **options).rnn_cell
    w = of_cell(cell)
    assert (w.units, w.layers, w.inputs) == (5, layers, 3)
    assert [f.name for f in dataclasses.fields(CfcWeights)] == ["w0", "b0", "hw", "hb", "wh", "bh", "w_tau", "amp"]
    assert CfcWeights(*w.tensors()) == w
    heads = [cell.ff1] if cell.mode == "pure" else [cell.ff1, cell.ff2, cell.time_a, cell.time_b]
    assert torch.equal(w.wh, torch.cat([h.weight for h in heads])) and torch.equal(w.bh, torch.cat([h.bias for h in heads]))
    if layers:
        linears = [m for m in cell.backbone if isinstance(m, torch.nn.Linear)]
        assert w.w0 is linears[0].weight and w.width == 6 and w.wh.shape == (len(heads) * 5, 6)
        assert (w.hw is None) == (layers == 1)
    else:
        assert w.w0 is None and w.width == 0 and w.wh.shape == (len(heads) * 5, 3 + 5)
    assert (w.w_tau is not None) == (cell.mode == "pure") == (w.amp is not None)


def test_wired_layer_bundle_is_masked_and_gradients_reach_ncps_parameters():
    cell = ncps_torch.CfC(3, AutoNCP(10, 2, seed=1)).rnn_cell
    layer = cell._layers[0]
    w = of_cell(layer)
    mask = layer.sparsity_mask
    assert torch.equal(w.wh[: w.units], layer.ff1.weight * mask)
    assert torch.equal(w.wh[2 * w.units: 3 * w.units], layer.time_a.weight)  # the gate's heads are not masked
    w.wh.sum().backward()
    assert torch.equal(layer.ff1.weight.grad, mask) and torch.equal(layer.time_b.weight.grad,
                                                                   torch.ones_like(layer.time_b.weight))
