"""Models with normalization="mass": the mass Laplacian of each level's node masses."""

import copy

import pytest
import torch
from torch_geometric.data import Batch

from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.graphs.hierarchy_data import HierarchyData
from deepsphere_pyg.graphs.operator import laplacian_scipy
from deepsphere_pyg.models import DeepSphere, SphericalUNet


@pytest.fixture(scope="module")
def grid():
    """A small SOFT lat-lon hierarchy (16 x 32 finest, 3 levels) with node masses."""
    return SphereHierarchy.equiangular(16, 3, grid="soft", k=8)


def mass_unet(hierarchy, seed=0, **kwargs):
    torch.manual_seed(seed)
    return SphericalUNet(hierarchy, 2, 3, channels=(6, 8, 10), K=4, normalization="mass",
                         **kwargs)


def dense_mass_filter(graph, x, weights):
    r"""Reference :math:`M^{-1/2} \sum_k T_k(2S/\lambda - I) M^{1/2} x \Theta_k` in float64,
    :math:`S` dense, :math:`\lambda = 2 \max_{ij} S_{ij}` (``weights[k]``: ``[F_out, F_in]``)."""
    mass = graph.node_weight.double()
    s = torch.from_numpy(laplacian_scipy(graph.edge_index, graph.edge_weight, graph.num_nodes,
                                         "mass", node_weight=mass).toarray())
    hat = 2.0 * s / (2.0 * s.max()) - torch.eye(s.shape[0], dtype=torch.float64)
    h = x.double() * mass.sqrt()[:, None]
    terms = [h, hat @ h]
    while len(terms) < len(weights):
        terms.append(2.0 * hat @ terms[-1] - terms[-2])
    out = sum(t @ w.double().T for t, w in zip(terms, weights, strict=False))
    return out / mass.sqrt()[:, None]


def test_unet_mass_forward_backward_and_dense_reference(grid):
    model = mass_unet(grid)
    assert model.graph.normalization == "mass"
    assert "normalization='mass'" in repr(model)
    x = torch.randn(2, grid.num_nodes[0], 2)
    out = model(x)
    assert out.shape == (2, grid.num_nodes[0], 3) and torch.isfinite(out).all()
    out.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # The first convolution with the buffered operator equals the dense reference.
    conv = model.encoder[0].conv
    weights = [lin.weight.detach() for lin in conv.lins]
    with torch.no_grad():
        got = conv.apply_operator(x[0], model.graph.operator(0),
                                  node_weight=model.graph.node_weight(0))
    torch.testing.assert_close(got.double(), dense_mass_filter(grid[0], x[0], weights),
                               rtol=1e-4, atol=1e-5)


def test_unet_mass_buffered_operators_equal_the_layers_forward_path(grid):
    model = mass_unet(grid).eval()
    x = torch.randn(2, grid.num_nodes[0], 2)
    with torch.no_grad():
        buffered = model(x)
        levels = [level._replace(operator=None) for level in model.graph.levels()]
        forward_path = model.forward_levels(x, levels)
        # A disjoint batch of the same graph twice (built from HierarchyData).
        batch = Batch.from_data_list([HierarchyData.from_hierarchy(grid, x=x[i])
                                      for i in range(2)])
        disjoint = model(batch)
    torch.testing.assert_close(forward_path, buffered, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(disjoint, buffered.reshape(-1, 3), rtol=1e-5, atol=1e-6)
    model.double()  # rebuilds the operators (and casts the masses) in float64
    assert model.graph.node_weight(0).dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(model(x.double()).float(), buffered, rtol=1e-4,
                                   atol=1e-5)


def test_mass_differs_from_sym_and_deepsphere_accepts_it(grid):
    x = torch.randn(1, grid.num_nodes[0], 2)
    torch.manual_seed(0)
    sym = SphericalUNet(grid, 2, 3, channels=(6, 8, 10), K=4).eval()
    mass = mass_unet(grid).eval()
    mass.load_state_dict(sym.state_dict())  # same parameters, other operator
    with torch.no_grad():
        assert not torch.allclose(sym(x), mass(x))
    torch.manual_seed(0)
    model = DeepSphere(grid, 2, 4, channels=(4, 6), K=3, normalization="mass")
    out = model(x)
    assert out.shape == (1, 4)
    out.sum().backward()
    assert torch.isfinite(out).all()


def test_mass_bad_input(grid):
    bare = copy.deepcopy(grid)
    bare[1].node_weight = None
    with pytest.raises(ValueError, match="level 1 of the hierarchy has no node_weight"):
        mass_unet(bare)
    with pytest.raises(ValueError, match="normalization must be one of"):
        SphericalUNet(grid, 2, 3, normalization="rw")
    with pytest.raises(ValueError, match="normalization must be one of"):
        DeepSphere(grid, 2, 3, normalization=None)
    model = mass_unet(grid)
    with pytest.raises(ValueError, match="needs the level's node_weight"):
        model.encoder[0](torch.randn(grid.num_nodes[0], 2), grid[0].edge_index,
                         grid[0].edge_weight)
