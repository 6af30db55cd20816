"""HierarchyData: per-sample hierarchies through PyG disjoint batching."""

import healpy as hp
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.graphs.hierarchy_data import HierarchyData, hierarchy_data
from deepsphere_pyg.nn import SpherePool, SphereUnpool, SphericalChebConv

NSIDE = 8


def disc_mask(center, radius):
    mask = np.zeros(12 * NSIDE**2, dtype=bool)
    mask[hp.query_disc(NSIDE, center, radius, nest=True)] = True
    return mask


@pytest.fixture(scope="module")
def hierarchies():
    """Two different masks and the full sky: three different per-sample hierarchies."""
    return [
        SphereHierarchy.healpix(NSIDE, 3, k=8, mask=disc_mask([1.0, 0.0, 0.0], 0.8)),
        SphereHierarchy.healpix(NSIDE, 3, k=8, mask=disc_mask([0.0, 0.2, 1.0], 1.1)),
        SphereHierarchy.healpix(NSIDE, 3, k=8),
    ]


@pytest.fixture(scope="module")
def samples(hierarchies):
    torch.manual_seed(0)
    return [HierarchyData.from_hierarchy(h, x=torch.randn(h.num_nodes[0], 3), y=i)
            for i, h in enumerate(hierarchies)]


def test_fields_of_one_sample(hierarchies, samples):
    hierarchy, data = hierarchies[0], samples[0]
    assert data.num_levels == 3 and data.num_nodes == hierarchy.num_nodes[0]
    for level in range(3):
        view = data.level(level)
        graph = hierarchy[level]
        assert view.num_nodes == hierarchy.num_nodes[level] == data.level_num_nodes(level)
        assert view.edge_index is graph.edge_index and view.edge_weight is graph.edge_weight
        assert torch.equal(view.pos, graph.pos)
        assert torch.equal(view.batch, torch.zeros(view.num_nodes, dtype=torch.long))
        assert torch.equal(view.coverage, hierarchy.coverage[level])
        if level < 2:
            assert view.pool_index is hierarchy.pool_index[level]
        else:
            assert view.pool_index is None
    with pytest.raises(IndexError, match="level"):
        data.level(3)
    minimal = hierarchy_data(hierarchy, pos=False, coverage=False)
    assert "pos" not in minimal and "pos_1" not in minimal and "coverage_1" not in minimal
    assert minimal.level(1).pos is None


def test_batching_offsets_every_level(hierarchies, samples):
    batch = Batch.from_data_list(samples)
    assert batch.num_levels == 3
    for level in range(3):
        counts = [h.num_nodes[level] for h in hierarchies]
        offsets = np.cumsum([0] + counts[:-1])
        view = batch.level(level)
        assert view.num_nodes == sum(counts)
        expected_edges = torch.cat([h[level].edge_index + int(o)
                                    for h, o in zip(hierarchies, offsets, strict=True)], 1)
        assert torch.equal(view.edge_index, expected_edges)
        expected_batch = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
        assert torch.equal(view.batch, expected_batch)
        if level < 2:
            parent_offsets = np.cumsum([0] + [h.num_nodes[level + 1] for h in hierarchies[:-1]])
            expected_pool = torch.cat([h.pool_index[level] + int(o)
                                       for h, o in zip(hierarchies, parent_offsets, strict=True)])
            assert torch.equal(view.pool_index, expected_pool)
    # Samples come back out unchanged.
    back = batch.get_example(1)
    for key in ("edge_index_1", "pool_index_0", "pool_index_1", "batch_2"):
        assert torch.equal(back[key], samples[1][key])


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling_a_batch_equals_pooling_each_sample(samples, mode):
    batch = Batch.from_data_list(samples)
    pool = SpherePool(mode)
    x, per_sample = batch.x, [s.x for s in samples]
    for level in range(2):
        num_parents = batch.level_num_nodes(level + 1)
        x = pool(x, batch[f"pool_index_{level}"], num_parents=num_parents)
        per_sample = [pool(xs, s[f"pool_index_{level}"]) for xs, s in zip(per_sample, samples,
                                                                           strict=True)]
        torch.testing.assert_close(x, torch.cat(per_sample))
        assert x.shape[0] == num_parents


def test_max_indices_and_unpooling_on_a_batch(samples):
    batch = Batch.from_data_list(samples)
    values, indices = SpherePool("max")(batch.x, batch.pool_index_0, return_indices=True)
    offset = 0
    parts = []
    for sample in samples:
        v, i = SpherePool("max")(sample.x, sample.pool_index_0, return_indices=True)
        parts.append((v, i + offset))
        offset += sample.num_nodes
    torch.testing.assert_close(values, torch.cat([v for v, _ in parts]))
    assert torch.equal(indices, torch.cat([i for _, i in parts]))
    up = SphereUnpool("max-indices")(values, batch.pool_index_0, indices=indices)
    near = SphereUnpool("nearest")(values, batch.pool_index_0)
    for i, sample in enumerate(samples):
        _, i_sample = SpherePool("max")(sample.x, sample.pool_index_0, return_indices=True)
        v_sample = parts[i][0]
        part = slice(int(batch.ptr[i]), int(batch.ptr[i + 1]))
        torch.testing.assert_close(up[part], SphereUnpool("max-indices")(
            v_sample, sample.pool_index_0, indices=i_sample))
        torch.testing.assert_close(near[part], v_sample[sample.pool_index_0])


def test_dataloader_and_convolution_at_a_coarse_level(samples):
    loader = DataLoader(samples, batch_size=3, shuffle=False)
    batch = next(iter(loader))
    assert batch.y.tolist() == [0, 1, 2]
    torch.manual_seed(0)
    conv = SphericalChebConv(3, 4, K=3)
    pool = SpherePool("avg")
    coarse = pool(batch.x, batch.pool_index_0)
    view = batch.level(1)
    out = conv(coarse, view.edge_index, view.edge_weight, batch=view.batch)
    expected = []
    for sample in samples:
        c = pool(sample.x, sample.pool_index_0)
        expected.append(conv(c, sample.edge_index_1, sample.edge_weight_1))
    torch.testing.assert_close(out, torch.cat(expected), rtol=1e-5, atol=1e-5)


def test_bad_input(hierarchies):
    hierarchy = hierarchies[0]
    with pytest.raises(TypeError, match="SphereHierarchy"):
        HierarchyData.from_hierarchy(hierarchy.graphs[0])
    with pytest.raises(ValueError, match="reserved"):
        HierarchyData.from_hierarchy(hierarchy, pool_index_0=torch.zeros(3))
    with pytest.raises(ValueError, match="reserved"):
        HierarchyData.from_hierarchy(hierarchy, edge_index=torch.zeros(2, 0))
    with pytest.raises(ValueError, match="nodes of level 0"):
        HierarchyData.from_hierarchy(hierarchy, x=torch.zeros(5, 2))
