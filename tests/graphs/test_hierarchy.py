"""SphereHierarchy: levels, pooling indices, masks, coverage."""

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_pyg.graphs import SphereHierarchy


def test_full_sky_hierarchy_pools_nest_children():
    hierarchy = SphereHierarchy.healpix(16, 4, k=[20, 8, 8, 8])
    assert len(hierarchy) == 4
    assert hierarchy.num_nodes == [3072, 768, 192, 48]
    assert [g.nside for g in hierarchy.graphs] == [16, 8, 4, 2]
    assert [g.k for g in hierarchy.graphs] == [20, 8, 8, 8]
    for level, index in enumerate(hierarchy.pool_index):
        assert torch.equal(index, torch.arange(hierarchy.num_nodes[level]) // 4)
    for coverage in hierarchy.coverage:
        assert torch.all(coverage == 1)


def test_parent_positions_are_near_their_children():
    hierarchy = SphereHierarchy.healpix(8, 3)
    for level, index in enumerate(hierarchy.pool_index):
        child = hierarchy[level].pos
        parent = hierarchy[level + 1].pos[index]
        # A child lies inside its parent pixel: within about one parent pixel size.
        angle = torch.arccos((child * parent).sum(1).clamp(-1, 1))
        assert angle.max() < hp.nside2resol(hierarchy[level + 1].nside)


def test_masked_hierarchy_is_consistent_at_every_level():
    nside = 32
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[hp.query_disc(nside, [1.0, 0.5, 0.2], 0.5, nest=True)] = True
    hierarchy = SphereHierarchy.healpix(nside, 4, mask=mask)
    pixels = np.flatnonzero(mask)
    for level, graph in enumerate(hierarchy.graphs):
        np.testing.assert_array_equal(graph.pixels.numpy(), pixels)
        assert graph.num_nodes == pixels.size
        if level + 1 < len(hierarchy):
            parent_pixels = hierarchy[level + 1].pixels.numpy()
            index = hierarchy.pool_index[level].numpy()
            assert index.min() >= 0 and index.max() < parent_pixels.size
            # Every parent is the NEST parent of its children, and kept iff a child is.
            np.testing.assert_array_equal(parent_pixels[index], pixels // 4)
            np.testing.assert_array_equal(parent_pixels, np.unique(pixels // 4))
            pixels = parent_pixels


def test_coverage_counts_observed_fine_pixels():
    nside = 8
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[:40] = True  # NEST pixels 0..39: parents 0..9 full, 16 children of level 2 ...
    mask[41] = True  # ... and parent 10 with one observed child out of four
    hierarchy = SphereHierarchy.healpix(nside, 3, k=4, mask=mask)
    level1 = hierarchy.coverage[1].numpy()
    np.testing.assert_allclose(level1, [1.0] * 10 + [0.25])
    # Level 2: parent pixels 0, 1 (16 fine pixels each), 2 (8 + 1 of 16).
    np.testing.assert_allclose(hierarchy.coverage[2].numpy(), [1.0, 1.0, 9 / 16])
    assert hierarchy[2].pixels.tolist() == [0, 1, 2]


def test_to_moves_a_copy():
    hierarchy = SphereHierarchy.healpix(4, 2)
    moved = hierarchy.to("cpu")
    assert moved is not hierarchy and moved.graphs[0] is not hierarchy.graphs[0]
    assert torch.equal(moved.pool_index[0], hierarchy.pool_index[0])
    assert repr(hierarchy) == "SphereHierarchy(sampling='healpix', levels=2, num_nodes=[192, 48])"


@pytest.mark.parametrize("kernel", ["v1", 0.05])
def test_kernel_recipe_is_used_at_every_level(kernel):
    edges = "neighbours" if kernel == "v1" else "knn"
    hierarchy = SphereHierarchy.healpix(8, 3, kernel=kernel, edges=edges)
    expected = "v1" if kernel == "v1" else "custom"
    assert all(g.kernel == expected for g in hierarchy.graphs)


def test_coarsen_keeps_parents_of_kept_nodes_and_weights_coverage_by_area():
    from deepsphere_pyg.graphs.hierarchy import coarsen

    # Full layouts of 6 -> 3 -> 1 nodes; parents of level 0 are [0, 0, 1, 1, 2, 2].
    maps = [np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 0])]

    def parents(level, ids):
        return maps[level] if ids is None else maps[level][ids]

    area = np.array([1.0, 3.0, 2.0, 2.0, 1.0, 1.0])
    result = coarsen(parents, 3, kept=np.array([1, 4, 5]), area=area)
    assert [k.tolist() for k in result.kept] == [[1, 4, 5], [0, 2], [0]]
    assert [p.tolist() for p in result.pool_index] == [[0, 1, 1], [0, 0]]
    np.testing.assert_allclose(result.coverage[0].numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(result.coverage[1].numpy(), [3.0 / 4.0, 1.0])
    np.testing.assert_allclose(result.coverage[2].numpy(), [5.0 / 10.0])

    full = coarsen(parents, 3, area=area)
    assert full.kept == [None, None, None]
    assert [p.tolist() for p in full.pool_index] == [maps[0].tolist(), maps[1].tolist()]
    assert all(torch.all(c == 1) for c in full.coverage)

    points = coarsen(parents, 2, kept=np.array([0, 2, 3]))  # no area: coverage 1
    assert points.kept[1].tolist() == [0, 1]
    assert [c.tolist() for c in points.coverage] == [[1.0, 1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="area=.*kept="):
        coarsen(parents, 2)


def test_from_parents_names_the_level_that_fails():
    maps = [np.array([0, 0, 1, 1])]

    def build_level(level, ids):
        if level == 1:
            raise ValueError("too few nodes")
        return SphereHierarchy.healpix(1, 1)[0]

    with pytest.raises(ValueError, match="coarse level 1: too few nodes"):
        SphereHierarchy.from_parents(
            lambda level, ids: maps[level] if ids is None else maps[level][ids], 2,
            build_level, area=np.ones(4), level_name=lambda level: f"coarse level {level}")

