"""SphericalUNet: every sampling, batch consistency, disjoint batches, depth, equivariance."""

import healpy as hp
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.graphs.hierarchy_data import HierarchyData
from deepsphere_pyg.models import SphericalUNet
from deepsphere_pyg.nn import SphericalChebConv


def unet_for(hierarchy, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault("channels", (6, 8, 10))
    return SphericalUNet(hierarchy, 2, 3, **kwargs)


def test_forward_backward_and_batch_consistency(hierarchies, sampling, train_briefly):
    hierarchy = hierarchies[sampling]
    model = unet_for(hierarchy)
    x = torch.randn(3, hierarchy.num_nodes[0], 2)
    out = model(x)
    assert out.shape == (3, hierarchy.num_nodes[0], 3)
    out.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    model = train_briefly(model, x)
    with torch.no_grad():
        batched = model(x)
        for i in range(3):
            torch.testing.assert_close(batched[i], model(x[i]), rtol=1e-5, atol=1e-6)


def test_disjoint_batch_equals_each_graph_alone(hierarchies, masked_healpix, points_hierarchy,
                                                train_briefly):
    first = masked_healpix([1.0, 0.0, 0.0], 0.8)
    second = hierarchies["healpix"]
    third = points_hierarchy(200, 3)
    graphs = (first, second, third)
    xs = [torch.randn(h.num_nodes[0], 2) for h in graphs]
    reference = train_briefly(unet_for(first), xs[0][None])
    expected = []
    with torch.no_grad():
        for hierarchy, x in zip(graphs, xs, strict=True):
            alone = unet_for(hierarchy).eval()
            alone.load_state_dict(reference.state_dict())
            expected.append(alone(x))
        expected = torch.cat(expected)
        batch = Batch.from_data_list([HierarchyData.from_hierarchy(h, x=x)
                                      for h, x in zip(graphs, xs, strict=True)])
        out = reference(batch.x, batch)
        assert out.shape == (sum(h.num_nodes[0] for h in graphs), 3)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(reference(batch), out)  # model(batch) form
        levels = [batch.level(level) for level in range(3)]
        with pytest.raises(TypeError, match="edge_index"):
            reference(batch.x, edge_index=[v.edge_index for v in levels],
                      pool_index=[v.pool_index for v in levels[:2]],
                      batch=[v.batch for v in levels])


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_other_norms_batch_and_disjoint_consistency(hierarchies, masked_healpix,
                                                    points_hierarchy, train_briefly, norm):
    """Every normalisation: gradients; in evaluation a [B, N, F] batch equals each sample
    and a disjoint batch equals each graph alone (batch norm: the tests above)."""
    hierarchy = hierarchies["equiangular"]
    model = unet_for(hierarchy, norm=norm)
    assert all(block.norm_name == norm for block in (*model.encoder, *model.decoder))
    x = torch.randn(3, hierarchy.num_nodes[0], 2)
    out = model(x)
    assert out.shape == (3, hierarchy.num_nodes[0], 3)
    out.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    model = train_briefly(model, x)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        torch.testing.assert_close(model(x), torch.stack([model(x[i]) for i in range(3)]),
                                   rtol=1e-5, atol=1e-6)
    graphs = (masked_healpix([1.0, 0.0, 0.0], 0.8), points_hierarchy(200, 3))
    xs = [torch.randn(h.num_nodes[0], 2) for h in graphs]
    reference = train_briefly(unet_for(graphs[0], norm=norm), xs[0][None])
    with torch.no_grad():
        expected = []
        for h, xi in zip(graphs, xs, strict=True):
            alone = unet_for(h, norm=norm).eval()
            alone.load_state_dict(reference.state_dict())
            expected.append(alone(xi))
        batch = Batch.from_data_list([HierarchyData.from_hierarchy(h, x=xi)
                                      for h, xi in zip(graphs, xs, strict=True)])
        torch.testing.assert_close(reference(batch.x, batch), torch.cat(expected),
                                   rtol=1e-5, atol=1e-6)


def test_depth_and_k_are_honoured(hierarchies):
    hierarchy = hierarchies["healpix"]  # 3 levels
    cases = [(None, (4, 5, 6, 7), 3), (None, (4, 5), 2), (2, (4, 5, 6), 2), (1, (4, 5), 1)]
    for depth, channels, expected in cases:
        for K in (1, 4):
            model = SphericalUNet(hierarchy, 2, 3, channels=channels, K=K, depth=depth)
            convs = [m for m in model.modules() if isinstance(m, SphericalChebConv)]
            assert model.depth == expected
            assert len(model.encoder) == expected and len(model.decoder) == expected - 1
            assert len(convs) == 2 * expected - 1
            assert all(conv.K == K for conv in convs)
            assert model.channels == channels[:expected]
            assert model.graph.num_nodes == tuple(hierarchy.num_nodes[:expected])
            x = torch.randn(2, hierarchy.num_nodes[0], 2)
            assert model(x).shape == (2, hierarchy.num_nodes[0], 3)
    # Depth 1 is a per-level stack without pooling: the pooling mode cannot matter.
    x = torch.randn(2, hierarchy.num_nodes[0], 2)
    outs = [unet_for(hierarchy, depth=1, pool=pool).eval()(x) for pool in ("max", "mean")]
    torch.testing.assert_close(outs[0], outs[1])
    outs = [unet_for(hierarchy, depth=2, pool=pool).eval()(x) for pool in ("max", "mean")]
    assert not torch.allclose(outs[0], outs[1])


def test_parameter_count_by_hand(hierarchies):
    hierarchy = hierarchies["healpix"]
    # K=2, in 2, out 3, channels (4, 5): encoder 2*2*4 + 2*4*5, decoder 2*(5+4)*4,
    # batch norms 2*(4 + 5 + 4), output Linear(4, 3) with bias.
    expected = 2 * 2 * 4 + 2 * 4 * 5 + 2 * 9 * 4 + 2 * 13 + 4 * 3 + 3
    model = SphericalUNet(hierarchy, 2, 3, channels=(4, 5), K=2)
    assert model.num_parameters == expected == 169
    # Layer norm has the same per-channel scale and shift; without normalisation each
    # convolution has a bias instead.
    assert SphericalUNet(hierarchy, 2, 3, channels=(4, 5), K=2,
                         norm="layer").num_parameters == expected
    for norm in ("none", None):
        model = SphericalUNet(hierarchy, 2, 3, channels=(4, 5), K=2, norm=norm)
        assert model.num_parameters == expected - 2 * 13 + 13
    # Default configuration on HEALPix nside 32 / 4 levels (depth 3), 1 input, 3 outputs.
    default = (3 * (1 * 16 + 16 * 32 + 32 * 64) + 3 * (48 * 16 + 96 * 32)
               + 2 * (16 + 32 + 64 + 16 + 32) + 16 * 3 + 3)
    assert default == 19619
    assert SphericalUNet(hierarchy, 1, 3).num_parameters == default


def test_dense_output_is_nearly_equivariant_to_an_exact_rotation(hierarchies, nside,
                                                                train_briefly):
    """A 90 degree rotation about z permutes HEALPix pixels exactly (at every level, and
    compatibly with the NEST pooling tree); the per-node output follows the permutation
    up to the few asymmetric ties of the k-NN graphs."""
    hierarchy = hierarchies["healpix"]
    theta, phi = hp.pix2ang(nside, np.arange(12 * nside**2), nest=True)
    perm = torch.from_numpy(hp.ang2pix(nside, theta, phi + np.pi / 2, nest=True))
    torch.manual_seed(0)
    x = torch.randn(4, hierarchy.num_nodes[0], 2)
    rotated = torch.empty_like(x)
    rotated[:, perm] = x
    model = train_briefly(unet_for(hierarchy, K=4), x)
    with torch.no_grad():
        out, out_rotated = model(x), model(rotated)
    error = (out_rotated[:, perm] - out).norm() / (out - out.roll(1, 0)).norm()
    # A wrong skip connection or unpooling gives O(1); measured 0.019.
    assert error < 0.1, float(error)
    # Control: the output does move with the input (not permuted back: O(1)).
    assert (out_rotated - out).norm() / (out - out.roll(1, 0)).norm() > 0.3


def test_repr_and_state_dict(hierarchies):
    hierarchy = hierarchies["points"]
    model = SphericalUNet(hierarchy, 2, 3, channels=(4, 5), K=2, pool="mean")
    text = repr(model)
    assert text.startswith("SphericalUNet(\n  2, 3, channels=(4, 5), K=2, depth=2, ")
    for part in ("pool='mean'", "norm='batch'", f"num_parameters={model.num_parameters}",
                 "HierarchyBuffers(sampling='points'", "SphereUnpool(mode='nearest')"):
        assert part in text, part
    state = model.state_dict()
    parameters = dict(model.named_parameters())
    assert all(key in parameters or key.split(".")[-1] in (
        "running_mean", "running_var", "num_batches_tracked") for key in state)
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    assert {"graph.edge_index_0", "graph.edge_index_1", "graph.pool_index_0"} <= ignored
    assert not ignored & set(state)
    with torch.no_grad():
        model.output.weight.zero_()
    model.reset_parameters()
    assert model.output.weight.abs().sum() > 0


def test_bad_input(hierarchies, nside):
    hierarchy = hierarchies["healpix"]
    with pytest.raises(ValueError, match="hierarchy has 3"):
        SphericalUNet(hierarchy, 2, 3, channels=(4, 4, 4, 4), depth=4)
    with pytest.raises(ValueError, match="channels"):
        SphericalUNet(hierarchy, 2, 3, channels=(4, 4), depth=3)
    with pytest.raises(ValueError, match="depth"):
        SphericalUNet(hierarchy, 2, 3, depth=0)
    with pytest.raises(ValueError, match="pool"):
        SphericalUNet(hierarchy, 2, 3, pool="median")
    with pytest.raises(ValueError, match=r"norm must be one of \['batch', 'layer', 'none'\]"):
        SphericalUNet(hierarchy, 2, 3, norm="instance")
    with pytest.raises(ValueError, match="norm='batch'"):
        SphericalUNet(hierarchy, 2, 3, norm=True)
    model = unet_for(hierarchy)
    with pytest.raises(ValueError, match=f"N={hierarchy.num_nodes[0]}"):
        model(torch.randn(2, 50, 2))
    with pytest.raises(ValueError, match="in_channels=2"):
        model(torch.randn(2, hierarchy.num_nodes[0], 1))
    shallow = HierarchyData.from_hierarchy(SphereHierarchy.healpix(nside, 2),
                                           x=torch.randn(12 * nside**2, 2))
    with pytest.raises(ValueError, match="needs 3 levels"):
        model(shallow)
