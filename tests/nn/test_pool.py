"""SpherePool / SphereUnpool against loop references, fast path, gradients, bad input."""

import healpy as hp
import numpy as np
import pytest
import torch

import deepsphere_pyg.nn.sphere_pool as sphere_pool_module
from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.nn import SpherePool, SphereUnpool, is_regular_pool_index


@pytest.fixture(scope="module")
def full():
    return SphereHierarchy.healpix(8, 3, k=8)


@pytest.fixture(scope="module")
def small():
    return SphereHierarchy.healpix(4, 3, k=8)


@pytest.fixture(scope="module")
def masked():
    nside = 8
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[hp.query_disc(nside, [1.0, 0.3, 0.2], 0.9, nest=True)] = True
    hierarchy = SphereHierarchy.healpix(nside, 3, k=8, mask=mask)
    counts = torch.bincount(hierarchy.pool_index[0])
    assert (counts < 4).any() and (counts == 4).any()  # partial and full parents
    return hierarchy


@pytest.fixture(params=["full", "masked"])
def hierarchy(request, full, masked):
    return full if request.param == "full" else masked


def loop_pool(x, pool_index, mode):
    """Reference: reduce over the children of each parent, one parent at a time."""
    out = []
    for parent in range(int(pool_index.max()) + 1):
        children = x[..., pool_index == parent, :]
        out.append(children.amax(-2) if mode == "max" else children.mean(-2))
    return torch.stack(out, dim=-2)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("level", [0, 1])
def test_pool_matches_loop_reference(hierarchy, mode, level):
    pool_index = hierarchy.pool_index[level]
    x = torch.randn(3, hierarchy.num_nodes[level], 5)
    pool = SpherePool(mode)
    out = pool(x, pool_index)
    assert out.shape == (3, hierarchy.num_nodes[level + 1], 5)
    torch.testing.assert_close(out, loop_pool(x, pool_index, mode))
    # [B, N, F] with a shared graph == each sample as [N, F].
    for sample in range(3):
        torch.testing.assert_close(pool(x[sample], pool_index), out[sample])
    torch.testing.assert_close(
        pool(x, pool_index, num_parents=hierarchy.num_nodes[level + 1]), out)


def test_masked_average_divides_by_observed_children(masked):
    pool_index = masked.pool_index[0]
    out = SpherePool("avg")(torch.ones(masked.num_nodes[0], 1), pool_index)
    torch.testing.assert_close(out, torch.ones(masked.num_nodes[1], 1))
    # Coverage of level 1 is the observed fraction of the children.
    counts = torch.bincount(pool_index).float()
    torch.testing.assert_close(masked.coverage[1], counts / 4)


def test_regular_index_detection(full, masked):
    assert is_regular_pool_index(full.pool_index[0])
    assert not is_regular_pool_index(masked.pool_index[0])
    assert not is_regular_pool_index(torch.arange(6) // 4)
    index = torch.arange(16) // 4
    assert is_regular_pool_index(index)
    index[0] = 1  # in-place edit invalidates the cached answer
    assert not is_regular_pool_index(index)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_regular_fast_path_equals_general_path(full, monkeypatch, mode):
    pool_index = full.pool_index[0]
    # Integer values: many ties, which both paths must break the same way (first child).
    x = torch.randint(0, 3, (2, full.num_nodes[0], 4)).double().requires_grad_()
    kwargs = {"return_indices": True} if mode == "max" else {}
    fast = SpherePool(mode)(x, pool_index, **kwargs)
    (fast[0] if mode == "max" else fast).pow(2).sum().backward()
    fast_grad, x.grad = x.grad, None
    monkeypatch.setattr(sphere_pool_module, "is_regular_pool_index", lambda index: False)
    general = SpherePool(mode)(x, pool_index, **kwargs)
    (general[0] if mode == "max" else general).pow(2).sum().backward()
    if mode == "max":
        torch.testing.assert_close(general[0], fast[0])
        assert torch.equal(general[1], fast[1])
    else:
        torch.testing.assert_close(general, fast)
    torch.testing.assert_close(x.grad, fast_grad)
    # Without gradients or indices the general max path is a plain scatter: same values.
    with torch.no_grad():
        torch.testing.assert_close(SpherePool(mode)(x, pool_index),
                                   fast[0] if mode == "max" else fast)


def test_max_indices_point_at_the_first_maximal_child(hierarchy):
    pool_index = hierarchy.pool_index[0]
    x = torch.randint(0, 4, (2, hierarchy.num_nodes[0], 3)).float()
    values, indices = SpherePool("max")(x, pool_index, return_indices=True)
    assert indices.dtype == torch.long and indices.shape == values.shape
    assert torch.equal(x.gather(1, indices), values)
    parents = torch.arange(hierarchy.num_nodes[1]).view(1, -1, 1)
    assert torch.equal(pool_index[indices], parents.expand_as(indices))
    for b, p, c in [(0, 0, 0), (1, hierarchy.num_nodes[1] - 1, 2), (1, 3, 1)]:
        children = torch.nonzero(pool_index == p).flatten()
        first = children[torch.nonzero(x[b, children, c] == values[b, p, c])[0, 0]]
        assert indices[b, p, c] == first


def test_unpool_nearest_copies_parents(hierarchy):
    pool_index = hierarchy.pool_index[0]
    x = torch.randn(2, hierarchy.num_nodes[1], 3)
    out = SphereUnpool("nearest")(x, pool_index)
    assert out.shape == (2, hierarchy.num_nodes[0], 3)
    torch.testing.assert_close(out, x[:, pool_index])
    torch.testing.assert_close(SphereUnpool()(x[1], pool_index), out[1])
    # Averaging the copies gives the parents back.
    torch.testing.assert_close(SpherePool("avg")(out, pool_index), x)


def test_unpool_max_indices_round_trip(hierarchy):
    pool_index = hierarchy.pool_index[0]
    x = torch.randn(2, hierarchy.num_nodes[0], 3)
    values, indices = SpherePool("max")(x, pool_index, return_indices=True)
    out = SphereUnpool("max-indices")(values, pool_index, indices=indices)
    assert out.shape == x.shape
    kept = torch.zeros_like(x, dtype=torch.bool).scatter_(1, indices, True)
    torch.testing.assert_close(out[kept], x[kept])  # the maxima stay where they were
    assert torch.all(out[~kept] == 0)
    assert int(kept.sum()) == values.numel()
    same = SphereUnpool("max-indices")(values[0], None, indices=indices[0],
                                       num_children=hierarchy.num_nodes[0])
    torch.testing.assert_close(same, out[0])


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("which", ["full", "masked"])
def test_pool_gradcheck(small, masked, mode, which):
    hierarchy = small if which == "full" else masked
    pool_index = hierarchy.pool_index[1]  # small levels: dense Jacobians stay cheap
    x = torch.randn(2, hierarchy.num_nodes[1], 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: SpherePool(mode)(t, pool_index), (x,))


@pytest.mark.parametrize("mode", ["nearest", "max-indices"])
@pytest.mark.parametrize("which", ["full", "masked"])
def test_unpool_gradcheck(small, masked, mode, which):
    hierarchy = small if which == "full" else masked
    pool_index = hierarchy.pool_index[1]
    _, indices = SpherePool("max")(torch.randn(hierarchy.num_nodes[1], 2), pool_index,
                                   return_indices=True)
    x = torch.randn(hierarchy.num_nodes[2], 2, dtype=torch.float64, requires_grad=True)
    unpool = SphereUnpool(mode)
    kwargs = {"indices": indices} if mode == "max-indices" else {}
    assert torch.autograd.gradcheck(lambda t: unpool(t, pool_index, **kwargs), (x,))


def test_repr():
    assert repr(SpherePool()) == "SpherePool(mode='max')"
    assert repr(SpherePool("avg")) == "SpherePool(mode='avg')"
    assert repr(SphereUnpool()) == "SphereUnpool(mode='nearest')"
    assert repr(SphereUnpool("max-indices")) == "SphereUnpool(mode='max-indices')"
    SpherePool().reset_parameters()
    assert list(SpherePool().parameters()) == []


def test_bad_input(full):
    pool_index = full.pool_index[0]
    x = torch.randn(full.num_nodes[0], 2)
    with pytest.raises(ValueError, match="mode"):
        SpherePool("sum")
    with pytest.raises(ValueError, match="mode"):
        SphereUnpool("bilinear")
    with pytest.raises(ValueError, match="768 entries"):
        SpherePool()(x[:-4], pool_index)
    with pytest.raises(ValueError, match=r"\[N, F\] or \[B, N, F\]"):
        SpherePool()(x[:, 0], pool_index)
    with pytest.raises(ValueError, match=r"\[N, F\] or \[B, N, F\]"):
        SpherePool()(x.view(1, 1, -1, 2), pool_index)
    with pytest.raises(ValueError, match="1-D"):
        SpherePool()(x, pool_index.view(-1, 4))
    with pytest.raises(TypeError, match="integer"):
        SpherePool()(x, pool_index.float())
    with pytest.raises(ValueError, match="negative"):
        SpherePool()(x, pool_index - 1)
    with pytest.raises(ValueError, match="return_indices"):
        SpherePool("avg")(x, pool_index, return_indices=True)
    parents = torch.randn(full.num_nodes[1], 2)
    with pytest.raises(ValueError, match="needs indices"):
        SphereUnpool("max-indices")(parents, pool_index)
    _, indices = SpherePool()(x, pool_index, return_indices=True)
    with pytest.raises(ValueError, match="shape of x"):
        SphereUnpool("max-indices")(parents, pool_index, indices=indices[:-1])
    with pytest.raises(ValueError, match="pool_index or num_children"):
        SphereUnpool("max-indices")(parents, None, indices=indices)
    with pytest.raises(ValueError, match="parent nodes"):
        SphereUnpool()(parents[:-1], pool_index)
    with pytest.raises(ValueError, match="parent nodes"):
        SphereUnpool()(parents[:-1], pool_index[torch.randperm(pool_index.numel())])
    with pytest.raises(ValueError, match="only used by mode='max-indices'"):
        SphereUnpool()(parents, pool_index, indices=indices)
    with pytest.raises(ValueError, match="entries"):
        SphereUnpool()(parents, pool_index, num_children=10)
