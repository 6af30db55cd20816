"""HierarchyBuffers: the graphs and the convolution operators a model builds once."""

import copy

import pytest
import torch

from deepsphere_pyg.graphs import HierarchyData
from deepsphere_pyg.models import DeepSphere, SphericalUNet
from deepsphere_pyg.models.base import HierarchyBuffers
from deepsphere_pyg.models.blocks import LAMBDA_MAX, NORMALIZATION
from deepsphere_pyg.nn import SphericalChebConv
from deepsphere_pyg.nn.chebyshev_operator import chebyshev_operator


@pytest.mark.parametrize("sampling", ["healpix", "healpix-partial", "points"])
def test_buffers_hold_the_operator_of_every_level(hierarchies, sampling):
    hierarchy = hierarchies[sampling]
    buffers = HierarchyBuffers(hierarchy)
    assert not buffers.state_dict()  # constants, never checkpointed
    for level, graph in enumerate(hierarchy.graphs):
        expected = chebyshev_operator(graph.edge_index, graph.edge_weight, graph.num_nodes,
                                      NORMALIZATION, LAMBDA_MAX, None,
                                      graph.edge_weight.dtype, cache=False).matrix
        torch.testing.assert_close(buffers.operator(level).to_dense(), expected.to_dense(),
                                   rtol=0, atol=0)
        assert buffers.level(level).operator is not None


def test_a_cast_rebuilds_the_operators_in_the_new_precision(hierarchies):
    hierarchy = hierarchies["healpix"]
    buffers = HierarchyBuffers(hierarchy).double()
    graph = hierarchy[1]
    expected = chebyshev_operator(graph.edge_index, graph.edge_weight.double(),
                                  graph.num_nodes, NORMALIZATION, LAMBDA_MAX, None,
                                  torch.float64, cache=False).matrix
    assert buffers.operator(1).dtype == torch.float64
    torch.testing.assert_close(buffers.operator(1).to_dense(), expected.to_dense(),
                               rtol=0, atol=0)
    copied = copy.deepcopy(buffers)  # dense parts: a model can be copied (EMA, SWA)
    assert torch.equal(copied.operator(1).to_dense(), buffers.operator(1).to_dense())


@pytest.mark.parametrize("model_class", [DeepSphere, SphericalUNet])
def test_models_on_their_hierarchy_skip_the_operator_cache(hierarchies, monkeypatch,
                                                           model_class):
    hierarchy = hierarchies["healpix"]
    torch.manual_seed(0)
    model = model_class(hierarchy, 2, 3, channels=[4, 8], K=3).eval()
    x = torch.randn(2, hierarchy.num_nodes[0], 2)
    data = HierarchyData.from_hierarchy(hierarchy, x=x[0])
    with torch.no_grad():
        through_cache = model(data)  # per-sample graphs: operators from the edges
        import deepsphere_pyg.nn.cheb_conv as cheb_conv

        def refuse(*args, **kwargs):
            raise AssertionError("the operator cache was consulted")

        monkeypatch.setattr(cheb_conv, "chebyshev_operator", refuse)
        shared = model(x)
    torch.testing.assert_close(shared[0], through_cache.reshape(shared[0].shape))


def test_apply_operator_matches_forward_and_checks_its_input(hierarchies):
    graph = hierarchies["healpix"][0]
    conv = SphericalChebConv(3, 5, K=4)
    x = torch.randn(2, graph.num_nodes, 3)
    operator = chebyshev_operator(graph.edge_index, graph.edge_weight, graph.num_nodes,
                                  "sym", 2.0, None, torch.float32, cache=False).matrix
    expected = conv(x, graph.edge_index, graph.edge_weight, lambda_max=2.0)
    torch.testing.assert_close(conv.apply_operator(x, operator), expected)
    torch.testing.assert_close(conv.apply_operator(x[1], operator), expected[1])
    with pytest.raises(ValueError, match="nodes"):
        conv.apply_operator(x[:, :-1], operator)
    with pytest.raises(ValueError, match="rw"):
        SphericalChebConv(3, 5, K=4, normalization="rw").apply_operator(x, operator)
