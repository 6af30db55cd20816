"""Icosahedral samplings: subdivision, mesh and k-NN graphs, pooling hierarchy, bad input."""

import math

import healpy as hp
import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull, cKDTree
from torch_geometric.utils import scatter

from deepsphere_pyg.graphs import SphereHierarchy
from deepsphere_pyg.graphs.icosahedral import (
    BASE_EDGE_OWNERS,
    icosahedral_graph,
    icosahedral_hierarchy,
    icosahedral_mesh_width,
    icosahedral_num_vertices,
    icosahedral_pool_index,
    icosahedral_vertices,
)
from deepsphere_pyg.graphs.knn_graph import knn_width_ratio


def face_edges(faces):
    """Sorted ``(min, max)`` pairs of the distinct sides of ``faces`` (reference)."""
    sides = {tuple(sorted((int(f[i]), int(f[(i + 1) % 3])))) for f in faces for i in range(3)}
    return np.array(sorted(sides), dtype=np.int64)


def adjacency(graph):
    return graph.to_scipy("csr")


def assert_csr_symmetric_simple(graph, targets_sorted=True):
    row, col = graph.edge_index.numpy()
    n = graph.num_nodes
    assert graph.edge_index.dtype == torch.long
    assert np.all(row != col), "self loops"
    assert np.all(np.diff(row) >= 0), "edges must be grouped by source node"
    key = row * n + col
    assert np.unique(key).size == key.size, "duplicate edges"
    if targets_sorted:
        assert np.all(np.diff(key) > 0), "targets must be ascending within a row"
    w = adjacency(graph)
    assert abs(w - w.T).max() == 0, "weights must be symmetric"
    assert bool((graph.edge_weight > 0).all())


# ------------------------------------------------------------------------ vertices
@pytest.mark.parametrize("level", range(5))
def test_counts_norms_and_convex_hull(level):
    pos, faces = icosahedral_vertices(level)
    assert pos.shape == (10 * 4**level + 2, 3) and pos.dtype == np.float64
    assert faces.shape == (20 * 4**level, 3) and faces.dtype == np.int64
    assert icosahedral_num_vertices(level) == pos.shape[0]
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 1.0, rtol=0, atol=1e-14)
    # The triangulation is the convex hull of the vertices (computed by qhull) ...
    hull = {tuple(sorted(f)) for f in ConvexHull(pos).simplices}
    assert {tuple(sorted(f)) for f in faces} == hull
    # ... with every face counter-clockwise seen from outside.
    a, b, c = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    assert np.all(np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) > 0)
    # Euler characteristic of the sphere.
    assert pos.shape[0] - face_edges(faces).shape[0] + faces.shape[0] == 2


def test_level_zero_is_the_regular_icosahedron_with_vertices_at_the_poles():
    pos, faces = icosahedral_vertices(0)
    np.testing.assert_allclose(pos[0], [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(pos[11], [0, 0, -1], atol=1e-15)
    edges = face_edges(faces)
    length = np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1)
    # Edge of the icosahedron inscribed in the unit sphere: 4 / sqrt(10 + 2 sqrt 5).
    np.testing.assert_allclose(length, 4 / math.sqrt(10 + 2 * math.sqrt(5)), rtol=1e-14)
    # Antipodal symmetry: -pos is again a vertex.
    nearest = cKDTree(pos).query(-pos)[0]
    assert nearest.max() < 1e-14


@pytest.mark.parametrize("level", range(1, 6))
def test_levels_nest_and_midpoints_are_projected_edge_midpoints(level):
    pos, faces = icosahedral_vertices(level)
    coarse, coarse_faces = icosahedral_vertices(level - 1)
    n = coarse.shape[0]
    np.testing.assert_array_equal(pos[:n], coarse)
    # Midpoint of the e-th coarse edge (sorted pairs) is vertex n + e.
    edges = face_edges(coarse_faces)
    mid = coarse[edges[:, 0]] + coarse[edges[:, 1]]
    np.testing.assert_allclose(pos[n:], mid / np.linalg.norm(mid, axis=1, keepdims=True),
                               rtol=0, atol=1e-15)


def test_results_are_copies_of_the_cache():
    pos, faces = icosahedral_vertices(2)
    pos[:] = 0.0
    faces[:] = 0
    again, again_faces = icosahedral_vertices(2)
    np.testing.assert_allclose(np.linalg.norm(again, axis=1), 1.0)
    assert again_faces.max() == 161
    graph = icosahedral_graph(2, dtype=torch.float64)
    graph.pos.zero_()
    np.testing.assert_allclose(np.linalg.norm(icosahedral_vertices(2)[0], axis=1), 1.0)


def test_no_duplicate_positions_and_nearly_uniform_edges():
    pos, faces = icosahedral_vertices(5)
    edges = face_edges(faces)
    length = np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1)
    # Measured: max / min = 1.1948 at level 5 (1.1951 in the limit of fine levels).
    assert length.max() / length.min() < 1.2
    # The closest two vertices are the ends of the shortest edge: no duplicates.
    dist, _ = cKDTree(pos).query(pos, k=2)
    np.testing.assert_allclose(dist[:, 1].min(), length.min(), rtol=1e-12)


# -------------------------------------------------------------------------- graphs
@pytest.mark.parametrize("level", [0, 1, 3])
def test_mesh_graph_is_the_triangulation_with_heat_kernel_weights(level):
    graph = icosahedral_graph(level, dtype=torch.float64)
    pos, faces = icosahedral_vertices(level)
    assert graph.num_nodes == pos.shape[0]
    assert graph.sampling == "icosahedral" and graph.level == level
    assert graph.neighbours == "mesh" and graph.kernel == "auto"
    assert graph.pixels is None
    np.testing.assert_array_equal(graph.pos.numpy(), pos)
    assert_csr_symmetric_simple(graph)
    edges = face_edges(faces)
    row, col = graph.edge_index.numpy()
    forward = row < col
    np.testing.assert_array_equal(np.unique(np.stack([row[forward], col[forward]], 1), axis=0),
                                  edges)
    # 12 vertices of degree 5 (the icosahedron's), every other one 6.
    count = np.bincount(row, minlength=graph.num_nodes)
    np.testing.assert_array_equal(count[:12], 5)
    assert np.all(count[12:] == 6)
    dist2 = ((pos[edges[:, 0]] - pos[edges[:, 1]]) ** 2).sum(1)
    t = dist2.mean() / 4
    assert graph.kernel_width == pytest.approx(t, rel=1e-12)
    assert icosahedral_mesh_width(level) == pytest.approx(t, rel=1e-12)
    w = adjacency(graph)
    np.testing.assert_allclose(w[edges[:, 0], edges[:, 1]], np.exp(-dist2 / (4 * t)),
                               rtol=1e-12)


def test_mesh_graph_kernel_options():
    v1 = icosahedral_graph(2, kernel="v1")
    assert v1.kernel == "v1"
    assert v1.kernel_width == pytest.approx(2 * icosahedral_mesh_width(2))
    custom = icosahedral_graph(2, kernel=0.01, dtype=torch.float64)
    assert custom.kernel == "custom" and custom.kernel_width == 0.01
    row, col = custom.edge_index
    dist2 = ((custom.pos[row] - custom.pos[col]) ** 2).sum(1)
    torch.testing.assert_close(custom.edge_weight, torch.exp(-dist2 / 0.04))


@pytest.mark.parametrize("k", [6, 8, 20])
def test_knn_graph_matches_brute_force_up_to_ties(k):
    level = 3
    graph = icosahedral_graph(level, edges="knn", k=k, dtype=torch.float64)
    assert graph.neighbours == "knn" and graph.kernel == "global" and graph.k == k
    assert graph.sampling == "icosahedral" and graph.level == level
    assert_csr_symmetric_simple(graph, targets_sorted=False)
    pos, _ = icosahedral_vertices(level)
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    radius = np.sort(d2, axis=1)[:, k - 1]  # squared distance of the k-th neighbour
    tol = 1e-12
    inside_i = d2 <= radius[:, None] + tol  # j within i's k-th distance (ties included)
    certain_i = d2 < radius[:, None] - tol  # j certainly among i's k neighbours
    edges = adjacency(graph).toarray() > 0
    # Union symmetrisation: an edge iff one end lists the other. Where distances tie at
    # the k-th place the list is not unique: check the bounds that hold for any choice.
    assert np.all(edges[certain_i | certain_i.T])
    assert not np.any(edges & ~(inside_i | inside_i.T))
    assert np.all(edges.sum(1) >= k)
    # Width of the global rule from the brute-force k-NN distances, and the weights.
    t = knn_width_ratio(k) * np.sort(d2, axis=1)[:, :k].mean()
    assert graph.kernel_width == pytest.approx(t, rel=1e-10)
    row, col = graph.edge_index.numpy()
    np.testing.assert_allclose(graph.edge_weight.numpy(), np.exp(-d2[row, col] / (4 * t)),
                               rtol=1e-10)


def test_knn_graph_default_k_and_kernels():
    assert icosahedral_graph(2, edges="knn").k == 8
    adaptive = icosahedral_graph(2, edges="knn", kernel="adaptive")
    assert adaptive.kernel == "adaptive"
    assert icosahedral_graph(2, edges="knn", kernel=0.02).kernel_width == 0.02


# --------------------------------------------------------------- partial coverage
@pytest.mark.parametrize("edges", ["neighbours", "knn"])
def test_mask_keeps_the_induced_subgraph(edges):
    level = 3
    full = icosahedral_graph(level, edges=edges, dtype=torch.float64)
    pos, _ = icosahedral_vertices(level)
    mask = pos[:, 2] > 0.3
    for given in (mask, np.flatnonzero(mask), torch.from_numpy(mask)):
        part = icosahedral_graph(level, edges=edges, mask=given, dtype=torch.float64)
        ids = np.flatnonzero(mask)
        np.testing.assert_array_equal(part.pixels.numpy(), ids)
        np.testing.assert_array_equal(part.pos.numpy(), pos[ids])
        assert part.kernel_width == full.kernel_width
        assert_csr_symmetric_simple(part, targets_sorted=edges == "neighbours")
        expected = adjacency(full)[ids][:, ids]
        assert abs(adjacency(part) - expected).max() == 0


def test_region_selects_nodes_by_lon_lat():
    level = 4
    pos, _ = icosahedral_vertices(level)
    lon, lat = hp.vec2ang(pos, lonlat=True)  # independent conversion
    lon = lon % 360
    graph = icosahedral_graph(level, region=(10, 80, -20, 40))
    expected = np.flatnonzero((lon >= 10) & (lon <= 80) & (lat >= -20) & (lat <= 40))
    np.testing.assert_array_equal(graph.pixels.numpy(), expected)
    # Across the antimeridian, combined with a mask (both must keep a node).
    north = pos[:, 2] > 0
    graph = icosahedral_graph(level, region=(170, -170, -30, 30), mask=north)
    wrap = (lon >= 170) & (lon <= 190) & (lat >= -30) & (lat <= 30) & north
    np.testing.assert_array_equal(graph.pixels.numpy(), np.flatnonzero(wrap))
    # The whole sphere is no mask at all.
    assert icosahedral_graph(level, region=(0, 360, -90, 90)).pixels is None


def test_isolated_nodes_raise_or_drop():
    level = 3
    pos, _ = icosahedral_vertices(level)
    mask = pos[:, 2] > 0.5
    lonely = int(np.argmin(pos[:, 2]))  # the south pole, far from the cap
    mask[lonely] = True
    with pytest.raises(ValueError, match="without any neighbour.*isolated='drop'"):
        icosahedral_graph(level, mask=mask)
    with pytest.warns(UserWarning, match="dropping 1 isolated"):
        graph = icosahedral_graph(level, mask=mask, isolated="drop")
    mask[lonely] = False
    np.testing.assert_array_equal(graph.pixels.numpy(), np.flatnonzero(mask))
    with pytest.warns(UserWarning, match="dropping 1 isolated"):
        knn = icosahedral_graph(level, edges="knn", k=4, mask=np.append(
            np.flatnonzero(mask), lonely), isolated="drop")
    np.testing.assert_array_equal(knn.pixels.numpy(), np.flatnonzero(mask))


# ------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("level", range(1, 6))
def test_pooling_assigns_midpoints_to_an_end_of_their_edge(level):
    fine = icosahedral_graph(level)
    coarse_pos, _ = icosahedral_vertices(level - 1)
    n = coarse_pos.shape[0]
    parent = icosahedral_pool_index(level)
    assert parent.shape == (fine.num_nodes,) and parent.dtype == np.int64
    np.testing.assert_array_equal(parent[:n], np.arange(n))
    # A midpoint's neighbours among the coarse vertices are the two ends of its edge.
    row, col = fine.edge_index.numpy()
    is_end = (row >= n) & (col < n)
    ends = col[is_end].reshape(-1, 2)  # CSR order: two coarse neighbours per midpoint
    np.testing.assert_array_equal(np.unique(row[is_end]), np.arange(n, fine.num_nodes))
    assert np.all((parent[n:] == ends[:, 0]) | (parent[n:] == ends[:, 1]))
    mid = coarse_pos[ends[:, 0]] + coarse_pos[ends[:, 1]]
    np.testing.assert_allclose(fine.pos[n:].double().numpy(),
                               mid / np.linalg.norm(mid, axis=1, keepdims=True), atol=1e-7)
    # Balanced cells: 4 children (the vertex and 3 midpoints), 3 for six of the twelve
    # icosahedron vertices; every coarse vertex has children.
    size = np.bincount(parent, minlength=n)
    np.testing.assert_array_equal(np.flatnonzero(size == 3), [1, 2, 3, 4, 5, 11])
    assert np.all(size[np.setdiff1d(np.arange(n), [1, 2, 3, 4, 5, 11])] == 4)


def test_base_edge_owners_cover_the_icosahedron_edges_once():
    _, faces = icosahedral_vertices(0)
    owned = {tuple(sorted(pair)) for pair in BASE_EDGE_OWNERS}
    assert len(BASE_EDGE_OWNERS) == 30 and owned == {tuple(e) for e in face_edges(faces)}


def test_cells_are_centred_on_their_parent():
    level = 5
    fine, _ = icosahedral_vertices(level)
    coarse, coarse_faces = icosahedral_vertices(level - 1)
    parent = icosahedral_pool_index(level)
    centre = np.zeros_like(coarse)
    np.add.at(centre, parent, fine)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    offset = np.arccos(np.clip((centre * coarse).sum(1), -1, 1))
    edges = face_edges(coarse_faces)
    spacing = np.arccos((coarse[edges[:, 0]] * coarse[edges[:, 1]]).sum(1)).mean()
    # Three midpoints on one side of the parent would move the centre by 1/4 of an edge.
    # Measured: max 0.158 (near the twelve icosahedron vertices and the faces that are
    # not directed cycles), 96 % of the cells below 0.05, median 0.005.
    assert offset.max() < 0.2 * spacing
    assert np.mean(offset < 0.05 * spacing) > 0.9


def test_full_hierarchy_levels_and_pooling():
    hierarchy = icosahedral_hierarchy(4, 5)
    assert isinstance(hierarchy, SphereHierarchy)
    assert hierarchy.num_nodes == [2562, 642, 162, 42, 12]
    assert [g.level for g in hierarchy.graphs] == [4, 3, 2, 1, 0]
    for step, index in enumerate(hierarchy.pool_index):
        np.testing.assert_array_equal(index.numpy(), icosahedral_pool_index(4 - step))
    for coverage in hierarchy.coverage:
        assert torch.all(coverage == 1)
    # Max pooling over cells: a coarse vertex sees its whole cell, not just itself.
    x = torch.arange(2562, dtype=torch.float32)
    pooled = scatter(x, hierarchy.pool_index[0], dim=0, dim_size=642, reduce="max")
    assert torch.all(pooled >= 642)  # every cell holds midpoints (ids >= 642), not just itself
    knn = icosahedral_hierarchy(3, 2, edges="knn", k=[20, 8])
    assert [g.k for g in knn.graphs] == [20, 8]
    assert [g.neighbours for g in knn.graphs] == ["knn", "knn"]


@pytest.mark.parametrize("edges", ["neighbours", "knn"])
def test_masked_hierarchy_keeps_parents_of_kept_children(edges):
    level, levels = 5, 4
    pos, _ = icosahedral_vertices(level)
    lon, lat = hp.vec2ang(pos, lonlat=True)
    region = (20, 100, -10, 50)
    hierarchy = icosahedral_hierarchy(level, levels, edges=edges, region=region)
    pixels = np.flatnonzero((lon % 360 >= 20) & (lon % 360 <= 100) & (lat >= -10)
                            & (lat <= 50))
    # Fraction of finest descendants kept, by brute force over the full pool maps.
    descendant_of = np.arange(pos.shape[0])
    for step, graph in enumerate(hierarchy.graphs):
        np.testing.assert_array_equal(graph.pixels.numpy(), pixels)
        current = level - step
        n = icosahedral_num_vertices(current)
        kept_fine = np.bincount(descendant_of[np.flatnonzero(
            (lon % 360 >= 20) & (lon % 360 <= 100) & (lat >= -10) & (lat <= 50))],
            minlength=n)
        total = np.bincount(descendant_of, minlength=n)
        np.testing.assert_allclose(hierarchy.coverage[step].numpy(),
                                   (kept_fine / total)[pixels], rtol=1e-6)
        if step + 1 < levels:
            full_parent = icosahedral_pool_index(current)
            parents = np.unique(full_parent[pixels])
            index = hierarchy.pool_index[step].numpy()
            np.testing.assert_array_equal(parents[index], full_parent[pixels])
            descendant_of = full_parent[descendant_of]
            pixels = parents
    assert hierarchy.coverage[0].min() == 1
    assert 0 < hierarchy.coverage[-1].min() < 1


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize("level, error", [(-1, ValueError), (14, ValueError),
                                          (1.0, TypeError), (True, TypeError),
                                          ("2", TypeError)])
def test_bad_level(level, error):
    with pytest.raises(error, match="level"):
        icosahedral_vertices(level)
    with pytest.raises(error, match="level"):
        icosahedral_graph(level)


@pytest.mark.parametrize("kwargs, match", [
    ({"edges": "hex"}, "edges must be one of"),
    ({"k": 8}, "k applies to edges='knn'"),
    ({"edges": "knn", "k": 42}, "k=42"),
    ({"edges": "knn", "k": 0}, "k must be an integer"),
    ({"kernel": 0.0}, "positive"),
    ({"kernel": -1.0}, "positive"),
    ({"kernel": float("nan")}, "positive"),
    ({"edges": "knn", "kernel": -0.5}, "positive"),
    ({"kernel": "global"}, "edges='neighbours': kernel must be one of"),
    ({"edges": "knn", "kernel": "v1"}, "edges='knn': kernel must be one of"),
    ({"kernel": 1e-9}, "too small"),
    ({"isolated": "keep"}, "isolated"),
    ({"mask": np.ones(41, dtype=bool)}, "42 nodes"),
    ({"mask": np.zeros(42, dtype=bool)}, "keeps no node"),
    ({"region": (0, 10, 80, 70)}, "lat_min <= lat_max"),
    ({"region": (0, 1, 0, 1)}, "keeps no node"),
])
def test_bad_graph_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        icosahedral_graph(1, **kwargs)


def test_bad_types():
    with pytest.raises(TypeError, match="kernel"):
        icosahedral_graph(1, kernel=True)
    with pytest.raises(TypeError, match="mask"):
        icosahedral_graph(1, mask=np.ones(42))


def test_bad_hierarchy_arguments():
    with pytest.raises(ValueError, match="at most 3 levels"):
        icosahedral_hierarchy(2, 4)
    with pytest.raises(ValueError, match="levels"):
        icosahedral_hierarchy(2, 0)
    with pytest.raises(ValueError, match="list of 2"):
        icosahedral_hierarchy(2, 2, edges="knn", k=[8, 8, 8])
    with pytest.raises(ValueError, match="level 0 of the hierarchy.*k=12"):
        icosahedral_hierarchy(1, 2, edges="knn", k=12)
    with pytest.raises(ValueError, match="level 0"):
        icosahedral_pool_index(0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        icosahedral_mesh_width(2, "global")
