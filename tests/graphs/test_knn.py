"""k-NN search and union symmetrisation against brute-force and scipy references."""

import healpy as hp
import numpy as np
import pytest
import scipy.sparse
from scipy.spatial import cKDTree

from deepsphere_pyg.graphs import healpix_graph, healpix_kernel_width, heat_kernel
from deepsphere_pyg.graphs.knn import (
    knn_chord,
    missing_reverse_entries,
    union_symmetric_edges,
    union_symmetric_weighted,
)


def random_unit_vectors(n, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force_dist2(points, queries):
    return ((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1)


def random_neighbour_lists(n, k, missing_fraction, seed):
    """Distinct, self-free neighbour lists with a fraction of -1 entries."""
    rng = np.random.default_rng(seed)
    lists = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        lists[i] = rng.choice(others, size=k, replace=False)
    lists[rng.random((n, k)) < missing_fraction] = -1
    return lists


def directed_matrix(neighbours, values=None):
    """scipy CSR of the directed graph i -> neighbours[i, m] (ignoring -1)."""
    n, k = neighbours.shape
    row = np.repeat(np.arange(n), k)
    col = neighbours.ravel()
    data = np.ones(n * k) if values is None else np.asarray(values, np.float64).ravel()
    keep = col >= 0
    return scipy.sparse.csr_array((data[keep], (row[keep], col[keep])), shape=(n, n))


def edge_list(matrix):
    coo = scipy.sparse.coo_array(matrix)
    order = np.lexsort((coo.col, coo.row))
    return coo.row[order], coo.col[order], coo.data[order]


def sorted_edges(edge_index, values=None):
    row, col = edge_index
    order = np.lexsort((col, row))
    return row[order], col[order], (None if values is None else values[order])


# ---------------------------------------------------------------------------- knn_chord
@pytest.mark.parametrize("k", [1, 5, 12])
def test_knn_chord_matches_brute_force(k):
    points = random_unit_vectors(300)
    index, dist2 = knn_chord(points, k)
    full = brute_force_dist2(points, points)
    np.fill_diagonal(full, np.inf)
    expected = np.argsort(full, axis=1)[:, :k]  # random points: no ties
    assert index.shape == (300, k) and index.dtype == np.int64 and dist2.dtype == np.float64
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(dist2, np.take_along_axis(full, expected, axis=1), rtol=1e-12,
                               atol=1e-15)
    assert np.all(np.diff(dist2, axis=1) >= 0)


def test_knn_chord_query_index_and_index_dtype():
    points = random_unit_vectors(400, seed=1)
    query = np.array([399, 0, 17, 17, 250])
    index, dist2 = knn_chord(points, 7, query_index=query, index_dtype=np.int32)
    full = brute_force_dist2(points, points[query])
    full[np.arange(query.size), query] = np.inf  # the query point itself is excluded
    expected = np.argsort(full, axis=1)[:, :7]
    assert index.dtype == np.int32 and index.shape == (5, 7)
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(dist2, np.take_along_axis(full, expected, axis=1), rtol=1e-12)
    # Same rows as the full search.
    all_index, all_dist2 = knn_chord(points, 7)
    np.testing.assert_array_equal(index, all_index[query])
    np.testing.assert_array_equal(dist2, all_dist2[query])


def test_knn_chord_in_blocks_equals_one_query(monkeypatch):
    import deepsphere_pyg.graphs.knn as knn_module

    points = random_unit_vectors(500, seed=2)
    whole = knn_chord(points, 6)
    monkeypatch.setattr(knn_module, "_CHUNK_ENTRIES", 50)  # blocks of 7 rows
    blocks = knn_chord(points, 6)
    np.testing.assert_array_equal(whole[0], blocks[0])
    np.testing.assert_array_equal(whole[1], blocks[1])


def test_knn_chord_distances_are_symmetric_bitwise():
    points = random_unit_vectors(300, seed=3)
    index, dist2 = knn_chord(points, 10)
    forward = {(i, int(j)): d for i in range(300) for j, d in zip(index[i], dist2[i],
                                                                   strict=True)}
    both = [(i, j) for (i, j) in forward if (j, i) in forward]
    assert len(both) > 1000
    assert all(forward[i, j] == forward[j, i] for i, j in both)


def test_knn_chord_with_duplicate_points_never_returns_self():
    points = random_unit_vectors(100, seed=4)
    points = np.concatenate([points, points[:10]])  # points 100..109 duplicate 0..9
    index, dist2 = knn_chord(points, 4)
    assert not np.any(index == np.arange(110)[:, None])
    for i in range(10):  # each copy's nearest point is its twin, at distance 0
        assert index[i, 0] == 100 + i and index[100 + i, 0] == i
        assert dist2[i, 0] == 0 and dist2[100 + i, 0] == 0


def test_knn_chord_rejects_k_too_large():
    with pytest.raises(ValueError, match="k"):
        knn_chord(random_unit_vectors(5), 5)


# ------------------------------------------------------------------ union symmetrisation
@pytest.mark.parametrize(("n", "k", "missing_fraction"), [(60, 4, 0.0), (200, 6, 0.3),
                                                          (50, 10, 0.9)])
def test_union_equals_scipy_boolean_union(n, k, missing_fraction):
    neighbours = random_neighbour_lists(n, k, missing_fraction, seed=n + k)
    edge_index = union_symmetric_edges(neighbours)
    assert edge_index.dtype == np.int64 and edge_index.shape[0] == 2
    row, col = edge_index
    directed = directed_matrix(neighbours)
    ref_row, ref_col, _ = edge_list(directed.maximum(directed.T))
    got_row, got_col, _ = sorted_edges(edge_index)
    np.testing.assert_array_equal(got_row, ref_row)
    np.testing.assert_array_equal(got_col, ref_col)  # also: no edge repeated
    assert not np.any(row == col)
    assert np.all(np.diff(row) >= 0)  # grouped by source node


def test_union_row_order_is_own_neighbours_then_added():
    neighbours = random_neighbour_lists(80, 5, 0.2, seed=7)
    row, col = union_symmetric_edges(neighbours)
    for i in range(80):
        cols = col[row == i]
        own = neighbours[i][neighbours[i] >= 0]
        np.testing.assert_array_equal(cols[:own.size], own)
        added = cols[own.size:]
        assert np.all(np.diff(added) > 0)
        assert all(i in neighbours[j] for j in added)


def test_union_weighted_equals_scipy_maximum():
    n, k = 150, 6
    neighbours = random_neighbour_lists(n, k, 0.25, seed=11)
    source = np.repeat(np.arange(n), k).reshape(n, k)
    low, high = np.minimum(source, neighbours), np.maximum(source, neighbours)
    values = np.sin(low + 0.37 * high) + 2.0  # symmetric, positive, distinct per pair
    edge_index, edge_values = union_symmetric_weighted(neighbours, values)
    assert edge_values.dtype == values.dtype and edge_values.shape == (edge_index.shape[1],)
    directed = directed_matrix(neighbours, values)
    ref_row, ref_col, ref_data = edge_list(directed.maximum(directed.T))
    got_row, got_col, got_values = sorted_edges(edge_index, edge_values)
    np.testing.assert_array_equal(got_row, ref_row)
    np.testing.assert_array_equal(got_col, ref_col)
    np.testing.assert_array_equal(got_values, ref_data)


def test_union_keeps_dtype_of_values_and_checks_shape():
    neighbours = random_neighbour_lists(30, 3, 0.0, seed=2)
    _, values = union_symmetric_weighted(neighbours, np.ones((30, 3), np.float32))
    assert values.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        union_symmetric_weighted(neighbours, np.ones((30, 4)))


def test_union_in_small_blocks(monkeypatch):
    import deepsphere_pyg.graphs.knn as knn_module

    neighbours = random_neighbour_lists(120, 5, 0.3, seed=5)
    values = np.arange(600, dtype=np.float64).reshape(120, 5)
    whole = union_symmetric_weighted(neighbours, values)
    monkeypatch.setattr(knn_module, "_CHUNK_ENTRIES", 12)
    blocks = union_symmetric_weighted(neighbours, values)
    np.testing.assert_array_equal(whole[0], blocks[0])
    np.testing.assert_array_equal(whole[1], blocks[1])


@pytest.mark.parametrize("masked", [False, True])
def test_missing_reverse_by_distance_equals_scan(masked):
    # HEALPix points have many exact distance ties, the delicate case of the test by
    # distance; random points cover the generic case.
    for points in (np.stack(hp.pix2vec(4, np.arange(192), nest=True), axis=1),
                   random_unit_vectors(400, seed=9)):
        n = points.shape[0]
        for k in (3, 8, 20):
            index, dist2 = knn_chord(points, k)
            if masked:  # keep a subset of nodes: lists relabelled, others -> -1
                kept = np.flatnonzero(np.random.default_rng(k).random(n) < 0.7)
                node_of = np.full(n, -1)
                node_of[kept] = np.arange(kept.size)
                index, dist2 = node_of[index[kept]], dist2[kept]
            by_scan = missing_reverse_entries(index)
            by_distance = missing_reverse_entries(index, dist2)
            np.testing.assert_array_equal(by_scan[0], by_distance[0])
            np.testing.assert_array_equal(by_scan[1], by_distance[1])
            np.testing.assert_array_equal(union_symmetric_edges(index),
                                          union_symmetric_edges(index, dist2))


# --------------------------------------------------------------- healpix vs baseline
def baseline_graph(nside, k):
    """The straightforward construction (as in scripts/bench_healpix_graph.py)."""
    npix = hp.nside2npix(nside)
    pos = np.stack(hp.pix2vec(nside, np.arange(npix), nest=True), axis=1)
    dist, index = cKDTree(pos).query(pos, k=k + 1)
    assert np.array_equal(index[:, 0], np.arange(npix))
    weight = heat_kernel(dist[:, 1:] ** 2, healpix_kernel_width(nside, k))
    directed = directed_matrix(index[:, 1:], weight)
    row, col, data = edge_list(directed.maximum(directed.T))
    return pos, row, col, data.astype(np.float32)


@pytest.mark.parametrize(("nside", "k"), [(4, 8), (8, 8), (16, 8), (8, 20), (16, 40)])
def test_healpix_graph_is_the_baseline_graph(nside, k):
    graph = healpix_graph(nside, k=k)
    pos, ref_row, ref_col, ref_weight = baseline_graph(nside, k)
    row, col, weight = sorted_edges(graph.edge_index.numpy(), graph.edge_weight.numpy())
    np.testing.assert_array_equal(row, ref_row)
    np.testing.assert_array_equal(col, ref_col)
    np.testing.assert_array_equal(weight, ref_weight)
    np.testing.assert_array_equal(graph.pos.numpy(), pos.astype(np.float32))
    raw_row, raw_col = graph.edge_index.numpy()
    assert not np.any(raw_row == raw_col) and np.all(np.diff(raw_row) >= 0)
