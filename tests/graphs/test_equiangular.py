"""Equiangular grids, their graphs and pooling hierarchies, against the grid definitions."""

import math
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial.distance import pdist

from deepsphere_pyg.graphs.equiangular import (
    AUTO_WIDTH_FACTOR,
    GRIDS,
    equiangular_graph,
    equiangular_grid,
    grid_to_nodes,
    nodes_to_grid,
)
from deepsphere_pyg.graphs.equiangular_hierarchy import equiangular_hierarchy

# Sizes of small test grids (nlat per family, Clenshaw-Curtis has an odd count).
SMALL = {"driscoll-healy": 8, "soft": 8, "clenshaw-curtis": 9, "gauss-legendre": 8}


def unit_vectors(lat_deg, lon_deg):
    """Unit vectors of every (lat, lon) pair, row-major, written from scratch."""
    theta = np.radians(90.0 - np.asarray(lat_deg))[:, None]
    phi = np.radians(np.asarray(lon_deg))[None, :]
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                     np.cos(theta) * np.ones_like(phi)], axis=-1).reshape(-1, 3)


def edge_set(graph):
    return set(map(tuple, graph.edge_index.t().tolist()))


def adjacency(graph):
    return graph.to_scipy("csr")


# ----------------------------------------------------------------------------- grids
def test_driscoll_healy_grid():
    b = 4
    lat, lon = equiangular_grid(2 * b, grid="driscoll-healy")
    theta = np.array([math.pi * j / (2 * b) for j in range(2 * b)])
    np.testing.assert_allclose(lat, 90 - np.degrees(theta), atol=1e-12)
    np.testing.assert_allclose(lon, [360.0 * k / (2 * b) for k in range(2 * b)], atol=1e-12)
    assert lat[0] == 90.0 and lat.min() > -90.0


def test_soft_grid():
    b = 5
    lat, lon = equiangular_grid(2 * b, grid="soft")
    theta = np.array([math.pi * (2 * j + 1) / (4 * b) for j in range(2 * b)])
    np.testing.assert_allclose(lat, 90 - np.degrees(theta), atol=1e-12)
    assert lon.size == 2 * b
    np.testing.assert_allclose(lat, -lat[::-1], atol=1e-12)  # symmetric, no pole
    assert np.abs(lat).max() < 90


def test_clenshaw_curtis_grid():
    nlat = 9
    lat, lon = equiangular_grid(nlat, grid="clenshaw-curtis")
    theta = np.array([math.pi * j / (nlat - 1) for j in range(nlat)])
    np.testing.assert_allclose(lat, 90 - np.degrees(theta), atol=1e-12)
    assert lat[0] == 90.0 and lat[-1] == -90.0
    assert lon.size == 2 * (nlat - 1)
    np.testing.assert_allclose(lon, np.arange(16) * 22.5)


def test_gauss_legendre_grid():
    nlat = 7
    lat, lon = equiangular_grid(nlat, grid="gauss-legendre")
    nodes, _ = np.polynomial.legendre.leggauss(nlat)
    np.testing.assert_allclose(np.sin(np.radians(lat)), np.sort(nodes)[::-1], atol=1e-12)
    assert lon.size == 2 * nlat


@pytest.mark.parametrize("grid", GRIDS)
def test_explicit_nlon_and_longitude_range(grid):
    lat, lon = equiangular_grid(SMALL[grid], 12, grid=grid)
    assert lat.size == SMALL[grid] and lon.size == 12
    np.testing.assert_allclose(lon, np.arange(12) * 30.0)
    assert lon.min() >= 0 and lon.max() < 360
    assert np.all(np.diff(lat) < 0)  # north to south


def test_grid_aliases():
    for alias, name in (("dh", "driscoll-healy"), ("cc", "clenshaw-curtis"),
                        ("gl", "gauss-legendre")):
        n = SMALL[name]
        np.testing.assert_array_equal(equiangular_grid(n, grid=alias)[0],
                                      equiangular_grid(n, grid=name)[0])


# ----------------------------------------------------------------------------- nodes
@pytest.mark.parametrize("grid", GRIDS)
def test_node_count_order_and_grid_index(grid):
    nlat, nlon = SMALL[grid], 10
    graph = equiangular_graph(nlat, nlon, grid=grid, edges="neighbours", dtype=torch.float64)
    poles = {"driscoll-healy": 1, "clenshaw-curtis": 2}.get(grid, 0)
    assert graph.num_nodes == (nlat - poles) * nlon + poles
    assert (graph.sampling, graph.grid, graph.nlat, graph.nlon) == ("equiangular", grid,
                                                                    nlat, nlon)
    lat, lon = equiangular_grid(nlat, nlon, grid=grid)
    # Every cell's node sits at the cell's position (a pole row's cells all at the pole).
    cell_pos = unit_vectors(lat, lon)
    index = graph.grid_index
    assert index.dtype == torch.long and index.shape == (nlat * nlon,)
    np.testing.assert_allclose(graph.pos.numpy()[index.numpy()], cell_pos, atol=1e-12)
    # Row-major order: node ids never decrease along the cells, every node has a cell.
    assert torch.all(index[1:] >= index[:-1])
    assert torch.equal(torch.unique(index), torch.arange(graph.num_nodes))


@pytest.mark.parametrize("grid", GRIDS)
def test_no_duplicated_positions(grid):
    graph = equiangular_graph(SMALL[grid], grid=grid, dtype=torch.float64)
    assert pdist(graph.pos.numpy()).min() > 1e-3
    np.testing.assert_allclose(graph.pos.norm(dim=1).numpy(), 1.0, atol=1e-12)


# -------------------------------------------------------------------- 4-neighbour graph
def check_undirected(graph):
    row, col = graph.edge_index
    assert not torch.any(row == col), "self loop"
    assert len(edge_set(graph)) == graph.edge_index.shape[1], "duplicate edge"
    adj = adjacency(graph)
    assert abs(adj - adj.T).max() < 1e-12, "not symmetric"


@pytest.mark.parametrize("grid", GRIDS)
def test_neighbour_graph_edges_and_weights(grid):
    nlat, nlon = SMALL[grid], 10
    graph = equiangular_graph(nlat, nlon, grid=grid, edges="neighbours", dtype=torch.float64)
    check_undirected(graph)
    cells = graph.grid_index.view(nlat, nlon)
    pole_rows = {"driscoll-healy": [0], "clenshaw-curtis": [0, nlat - 1]}.get(grid, [])
    expected = set()
    for r in range(nlat):
        for c in range(nlon):
            here = int(cells[r, c])
            nbrs = [int(cells[r, (c + 1) % nlon]), int(cells[r, (c - 1) % nlon])]
            for rr in (r - 1, r + 1):
                if 0 <= rr < nlat:
                    nbrs.append(int(cells[rr, c]))
                elif rr == -1 and 0 not in pole_rows or rr == nlat and nlat - 1 not in pole_rows:
                    nbrs.append(int(cells[r, (c + nlon // 2) % nlon]))  # across the pole
            expected |= {(here, n) for n in nbrs if n != here}
    assert edge_set(graph) == expected
    counts = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
    pole_nodes = [int(cells[r, 0]) for r in pole_rows]
    for node in range(graph.num_nodes):
        assert counts[node] == (nlon if node in pole_nodes else 4)
    # Weight 1 / geodesic angle.
    row, col = graph.edge_index
    dot = (graph.pos[row] * graph.pos[col]).sum(1).clamp(-1, 1)
    np.testing.assert_allclose(graph.edge_weight.numpy(), 1.0 / np.arccos(dot.numpy()),
                               rtol=1e-9)
    assert graph.weights == "neighbours"


def test_neighbour_graph_pole_joined_to_adjacent_row():
    nlat, nlon = 9, 16
    graph = equiangular_graph(nlat, nlon, grid="clenshaw-curtis", edges="neighbours")
    cells = graph.grid_index.view(nlat, nlon)
    north, south = int(cells[0, 0]), int(cells[-1, 0])
    assert {c for r, c in edge_set(graph) if r == north} == set(cells[1].tolist())
    assert {c for r, c in edge_set(graph) if r == south} == set(cells[-2].tolist())


def test_longitude_wrap_around():
    nlat, nlon = 16, 16
    for weights in ("neighbours", "knn"):
        graph = equiangular_graph(nlat, nlon, grid="soft", edges=weights)
        cells = graph.grid_index.view(nlat, nlon)
        edges = edge_set(graph)
        for r in range(nlat):
            a, b = int(cells[r, 0]), int(cells[r, nlon - 1])  # lon 0 and 360 - dlon
            assert (a, b) in edges and (b, a) in edges, (weights, r)


def test_odd_nlon_has_no_edge_across_missing_pole():
    graph = equiangular_graph(6, 7, grid="soft", edges="neighbours")
    counts = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
    rows = counts.view(6, 7)
    assert torch.all(rows[[0, -1]] == 3) and torch.all(rows[1:-1] == 4)


# -------------------------------------------------------------------------- kNN graph
@pytest.mark.parametrize("grid", GRIDS)
def test_knn_graph(grid):
    graph = equiangular_graph(SMALL[grid], grid=grid, k=8, dtype=torch.float64)
    check_undirected(graph)
    assert graph.kernel == "auto"
    global_graph = equiangular_graph(SMALL[grid], grid=grid, k=8, kernel="global",
                                     dtype=torch.float64)
    assert torch.equal(graph.edge_index, global_graph.edge_index)
    assert graph.kernel_width == pytest.approx(AUTO_WIDTH_FACTOR[8] * global_graph.kernel_width)
    counts = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
    assert counts.min() >= 8
    assert torch.all(graph.edge_weight > 0) and torch.all(graph.edge_weight <= 1)


def test_knn_global_kernel_weights_follow_the_heat_kernel():
    graph = equiangular_graph(8, grid="soft", k=8, kernel="global", dtype=torch.float64)
    row, col = graph.edge_index
    dist2 = ((graph.pos[row] - graph.pos[col]) ** 2).sum(1)
    np.testing.assert_allclose(graph.edge_weight.numpy(),
                               np.exp(-dist2.numpy() / (4 * graph.kernel_width)), rtol=1e-12)
    fixed = equiangular_graph(8, grid="soft", k=8, kernel=0.01, dtype=torch.float64)
    np.testing.assert_allclose(fixed.edge_weight.numpy(), np.exp(-dist2.numpy() / 0.04),
                               rtol=1e-12)


# --------------------------------------------------------------- grid <-> node signals
@pytest.mark.parametrize("grid", GRIDS)
def test_grid_nodes_round_trip(grid):
    nlat, nlon = SMALL[grid], 12
    graph = equiangular_graph(nlat, nlon, grid=grid, edges="neighbours", dtype=torch.float64)
    rng = np.random.default_rng(0)
    nodes = torch.from_numpy(rng.standard_normal((2, 3, graph.num_nodes)))
    on_grid = nodes_to_grid(nodes, graph)
    assert on_grid.shape == (2, 3, nlat, nlon)
    np.testing.assert_allclose(grid_to_nodes(on_grid, graph), nodes, rtol=0, atol=1e-14)
    # Grid data with constant pole rows survive the way back exactly.
    data = rng.standard_normal((4, nlat, nlon))
    for row in {"driscoll-healy": [0], "clenshaw-curtis": [0, -1]}.get(grid, []):
        data[:, row] = data[:, row, :1]
    back = nodes_to_grid(grid_to_nodes(data, graph), graph)
    assert isinstance(back, np.ndarray)
    np.testing.assert_allclose(back, data, rtol=0, atol=1e-14)


def test_grid_to_nodes_averages_pole_rows():
    nlat, nlon = 9, 16
    graph = equiangular_graph(nlat, nlon, grid="clenshaw-curtis", edges="neighbours")
    data = torch.arange(nlat * nlon, dtype=torch.float64).view(nlat, nlon)
    nodes = grid_to_nodes(data, graph)
    assert nodes.shape == (graph.num_nodes,)
    assert nodes[0] == data[0].mean() and nodes[-1] == data[-1].mean()
    assert torch.equal(nodes[1:nlon + 1], data[1])  # first ring, one node per cell
    grid_again = nodes_to_grid(nodes, graph)
    assert torch.equal(grid_again[0], torch.full((nlon,), float(data[0].mean()),
                                                 dtype=torch.float64))
    # Integer data is averaged in floating point.
    assert grid_to_nodes(data.long(), graph).is_floating_point()


def test_grid_node_conversion_with_a_mask():
    nlat, nlon = 8, 8
    graph = equiangular_graph(nlat, nlon, grid="driscoll-healy", edges="neighbours",
                              region=(0, 135, 0, 90))
    index = graph.grid_index.view(nlat, nlon)
    lat, lon = equiangular_grid(nlat, nlon, grid="driscoll-healy")
    inside = (lat[:, None] >= 0) & (lon[None, :] <= 135)
    inside[0] = True  # the pole node is in the region, so its whole row maps to it
    assert torch.equal(index >= 0, torch.from_numpy(inside))
    data = torch.randn(nlat, nlon, dtype=torch.float64)
    data[0] = 1.5
    nodes = grid_to_nodes(data, graph)
    assert nodes.shape == (graph.num_nodes,)
    back = nodes_to_grid(nodes, graph)
    assert torch.equal(back[torch.from_numpy(inside)], data[torch.from_numpy(inside)])
    assert torch.isnan(back[torch.from_numpy(~inside)]).all()
    assert torch.all(nodes_to_grid(nodes, graph, fill_value=-1.0)[torch.from_numpy(~inside)]
                     == -1)


def test_grid_node_conversion_errors():
    graph = equiangular_graph(8, grid="soft", edges="neighbours")
    with pytest.raises(ValueError, match=r"\[\.\.\., 8, 8\]"):
        grid_to_nodes(torch.zeros(8, 9), graph)
    with pytest.raises(ValueError, match="N = 64"):
        nodes_to_grid(torch.zeros(63), graph)
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        grid_to_nodes([[0.0] * 8] * 8, graph)
    from deepsphere_pyg.graphs import healpix_graph
    with pytest.raises(ValueError, match="grid metadata"):
        grid_to_nodes(torch.zeros(8, 8), healpix_graph(1, k=8))


# -------------------------------------------------------------------- masks, regions
def test_region_crossing_the_antimeridian():
    nlat, nlon = 36, 72  # 5 degree SOFT grid: lat 87.5, 82.5, ...; lon 0, 5, ...
    for weights in ("knn", "neighbours"):
        graph = equiangular_graph(nlat, nlon, grid="soft", edges=weights,
                                  region=(170, -170, -30, 30))
        lat, lon = equiangular_grid(nlat, nlon, grid="soft")
        rows = np.flatnonzero(np.abs(lat) <= 30)
        cols = np.flatnonzero((lon >= 170) & (lon <= 190))
        expected = np.sort((rows[:, None] * nlon + cols[None, :]).ravel())
        np.testing.assert_array_equal(graph.pixels.numpy(), expected)
        assert graph.num_nodes == rows.size * 5


def test_region_across_lon_zero_and_wrap_edges_inside_it():
    nlat, nlon = 16, 16
    graph = equiangular_graph(nlat, nlon, grid="soft", edges="neighbours",
                              region=(-30, 30, -90, 90))
    lon = equiangular_grid(nlat, nlon, grid="soft")[1]
    kept_cols = np.flatnonzero((lon <= 30) | (lon >= 330))
    assert graph.num_nodes == nlat * kept_cols.size
    cells = graph.grid_index.view(nlat, nlon)
    assert (int(cells[5, 0]), int(cells[5, nlon - 1])) in edge_set(graph)


def test_region_including_a_pole_keeps_the_pole_node():
    graph = equiangular_graph(8, grid="driscoll-healy", edges="neighbours",
                              region=(10, 100, 40, 90))
    assert int(graph.pixels[0]) == 0  # the north pole node
    lat, lon = equiangular_grid(8, grid="driscoll-healy")
    ring = int(((lat > 40) & (lat < 90)).sum()) * int(((lon >= 10) & (lon <= 100)).sum())
    assert graph.num_nodes == 1 + ring


@pytest.mark.parametrize("weights", ["knn", "neighbours"])
def test_mask_forms_and_induced_subgraph(weights):
    nlat, nlon = 8, 16
    full = equiangular_graph(nlat, nlon, grid="soft", edges=weights, dtype=torch.float64)
    grid_mask = np.zeros((nlat, nlon), dtype=bool)
    grid_mask[2:6, 3:11] = True
    ids = np.flatnonzero(grid_mask.ravel())  # SOFT: node = cell
    node_mask = np.zeros(full.num_nodes, dtype=bool)
    node_mask[ids] = True
    graphs = [equiangular_graph(nlat, nlon, grid="soft", edges=weights, mask=m,
                                dtype=torch.float64)
              for m in (grid_mask, torch.from_numpy(node_mask), ids)]
    for graph in graphs:
        np.testing.assert_array_equal(graph.pixels.numpy(), ids)
        assert torch.equal(graph.edge_index, graphs[0].edge_index)
    # The masked graph is the full graph restricted to the kept nodes.
    expected = adjacency(full)[ids][:, ids]
    assert abs(adjacency(graphs[0]) - expected).max() < 1e-12
    assert expected.nnz == graphs[0].edge_index.shape[1]


def test_mask_and_region_intersect():
    nlat, nlon = 8, 16
    grid_mask = np.zeros((nlat, nlon), dtype=bool)
    grid_mask[:, :8] = True  # lon 0 .. 157.5
    graph = equiangular_graph(nlat, nlon, grid="soft", edges="neighbours", mask=grid_mask,
                              region=(90, 270, -90, 90))
    lon = equiangular_grid(nlat, nlon, grid="soft")[1]
    cols = np.flatnonzero((lon >= 90) & (lon < 160))
    assert graph.num_nodes == nlat * cols.size


def test_grid_mask_keeps_the_pole_when_any_cell_of_its_row_is_kept():
    grid_mask = np.zeros((9, 16), dtype=bool)
    grid_mask[0, 5] = True
    grid_mask[1, :] = True
    graph = equiangular_graph(9, grid="clenshaw-curtis", edges="neighbours", mask=grid_mask)
    assert graph.pixels.tolist() == list(range(17))  # the pole node and the first ring


def test_isolated_nodes_raise_or_are_dropped():
    nlat, nlon = 8, 16
    ids = np.array([20, 21, 100])  # node 100 is far from the other two
    with pytest.raises(ValueError, match="isolated='drop'"):
        equiangular_graph(nlat, nlon, grid="soft", edges="neighbours", mask=ids)
    with pytest.warns(UserWarning, match="dropping 1 isolated"):
        graph = equiangular_graph(nlat, nlon, grid="soft", edges="neighbours", mask=ids,
                                  isolated="drop")
    assert graph.pixels.tolist() == [20, 21]
    assert torch.equal(graph.grid_index >= 0,
                       torch.isin(torch.arange(nlat * nlon), torch.tensor([20, 21])))
    with pytest.warns(UserWarning, match="isolated"):
        graph = equiangular_graph(nlat, nlon, grid="soft", k=2, mask=ids, isolated="drop")
    assert graph.pixels.tolist() == [20, 21]


# ------------------------------------------------------------------------- hierarchy
def expected_sizes(grid, nlat, nlon, levels):
    sizes = [(nlat, nlon)]
    for _ in range(levels - 1):
        a, b = sizes[-1]
        sizes.append(((a - 1) // 2 + 1 if grid == "clenshaw-curtis" else a // 2, b // 2))
    return sizes


def expected_parent_row(grid, nlat):
    """Coarse row of each fine row, from the colatitudes: the nearest coarse ring, ties to
    the ring nearer its pole (north at the equator); 2j, 2j+1 -> j without poles."""
    if grid != "clenshaw-curtis":
        return [r // 2 for r in range(nlat)]
    fine = [math.pi * j / (nlat - 1) for j in range(nlat)]
    coarse = fine[::2]
    out = []
    for theta in fine:
        gap = [abs(theta - c) for c in coarse]
        best = [j for j, g in enumerate(gap) if g - min(gap) < 1e-12]
        out.append(min(best, key=lambda j: (min(coarse[j], math.pi - coarse[j]), coarse[j])))
    return out


@pytest.mark.parametrize("grid", GRIDS)
def test_hierarchy_structure(grid):
    nlat = 17 if grid == "clenshaw-curtis" else 16
    nlon = 16
    levels = 3
    hierarchy = equiangular_hierarchy(nlat, levels, nlon, grid=grid, edges="neighbours",
                                      dtype=torch.float64)
    sizes = expected_sizes(grid, nlat, nlon, levels)
    assert [(g.nlat, g.nlon) for g in hierarchy.graphs] == sizes
    for level, (graph, (a, b)) in enumerate(zip(hierarchy.graphs, sizes, strict=True)):
        np.testing.assert_allclose(graph.pos.numpy()[graph.grid_index.numpy()],
                                   unit_vectors(*equiangular_grid(a, b, grid=grid)),
                                   atol=1e-12)
        assert torch.all(hierarchy.coverage[level] == 1)
    for level, index in enumerate(hierarchy.pool_index):
        fine, coarse = hierarchy[level], hierarchy[level + 1]
        assert index.shape == (fine.num_nodes,)
        children = torch.bincount(index, minlength=coarse.num_nodes)
        assert children.min() >= 1
        # Cell (r, c) pools into cell (parent_row[r], c // 2).
        parent_row = expected_parent_row(grid, fine.nlat)
        fine_cells = fine.grid_index.view(fine.nlat, fine.nlon)
        coarse_cells = coarse.grid_index.view(coarse.nlat, coarse.nlon)
        for r in range(fine.nlat):
            for c in range(fine.nlon):
                assert index[fine_cells[r, c]] == coarse_cells[parent_row[r], c // 2]
        # Four children away from the poles (and the one-row ring of Clenshaw-Curtis).
        two_rows = np.bincount(parent_row, minlength=coarse.nlat) == 2
        for r in np.flatnonzero(two_rows):
            nodes = coarse_cells[r].unique()
            if nodes.numel() > 1:
                assert torch.all(children[nodes] == 4)
        # Parents lie within one fine grid spacing of the mean of their children.
        mean = torch.zeros(coarse.num_nodes, 3, dtype=torch.float64).index_add_(0, index,
                                                                                fine.pos)
        mean = mean / mean.norm(dim=1, keepdim=True)
        angle = torch.arccos((mean * coarse.pos).sum(1).clamp(-1, 1))
        spacing = max(math.pi / (fine.nlat - 1), 2 * math.pi / fine.nlon)
        assert angle.max() < spacing


@pytest.mark.parametrize("grid", ["driscoll-healy", "clenshaw-curtis"])
def test_hierarchy_pole_rule(grid):
    nlat = 17 if grid == "clenshaw-curtis" else 16
    hierarchy = equiangular_hierarchy(nlat, 2, 16, grid=grid, edges="neighbours")
    fine, coarse = hierarchy.graphs
    index = hierarchy.pool_index[0]
    fine_cells = fine.grid_index.view(fine.nlat, fine.nlon)
    coarse_cells = coarse.grid_index.view(coarse.nlat, coarse.nlon)
    rows = [(0, 0)] + ([(-1, -1)] if grid == "clenshaw-curtis" else [])
    for fine_row, coarse_row in rows:
        pole, parent = int(fine_cells[fine_row, 0]), int(coarse_cells[coarse_row, 0])
        assert index[pole] == parent  # the pole's parent is the coarse pole
        ring = fine_cells[1 if fine_row == 0 else -2]
        assert torch.all(index[ring] == parent)  # which also pools the first ring
        assert int((index == parent).sum()) == 1 + fine.nlon


@pytest.mark.parametrize("weights", ["knn", "neighbours"])
def test_hierarchy_k_per_level_and_knn(weights):
    hierarchy = equiangular_hierarchy(16, 3, grid="gauss-legendre", edges=weights,
                                      k=[20, 8, 4] if weights == "knn" else 8)
    assert hierarchy.num_nodes == [16 * 32, 8 * 16, 4 * 8]
    if weights == "knn":
        assert [g.k for g in hierarchy.graphs] == [20, 8, 4]


def cell_areas(grid, nlat, nlon):
    """Areas [nlat] of one cell per row: bands between the parallels halfway between rows."""
    lat = equiangular_grid(nlat, nlon, grid=grid)[0]
    bounds = np.concatenate([[90.0], (lat[:-1] + lat[1:]) / 2, [-90.0]])
    return (np.sin(np.radians(bounds[:-1])) - np.sin(np.radians(bounds[1:]))) * 2 * np.pi / nlon


def test_masked_hierarchy_pixels_pool_and_coverage():
    grid, nlat, nlon = "soft", 16, 32
    full = equiangular_hierarchy(nlat, 3, nlon, grid=grid, edges="neighbours")
    grid_mask = np.zeros((nlat, nlon), dtype=bool)
    grid_mask[4:10, 6:20] = True
    grid_mask[10, 6:9] = True  # row 10 alone in its 2-row block
    hierarchy = equiangular_hierarchy(nlat, 3, nlon, grid=grid, edges="neighbours",
                                      mask=grid_mask)
    ids = np.flatnonzero(grid_mask.ravel())
    np.testing.assert_array_equal(hierarchy[0].pixels.numpy(), ids)
    for level, index in enumerate(hierarchy.pool_index):
        kept = hierarchy[level].pixels
        full_parent = full.pool_index[level][kept]
        # Kept coarse nodes: the parents of kept nodes, re-indexed.
        assert torch.equal(hierarchy[level + 1].pixels, torch.unique(full_parent))
        assert torch.equal(hierarchy[level + 1].pixels[index], full_parent)
    area = cell_areas(grid, nlat, nlon)
    cover = hierarchy.coverage[1]
    parents = hierarchy[1].pixels.numpy()
    rows1, cols1 = np.divmod(parents, nlon // 2)
    for node, (r, c) in enumerate(zip(rows1, cols1, strict=True)):
        block = grid_mask[2 * r:2 * r + 2, 2 * c:2 * c + 2]
        observed = (block * area[2 * r:2 * r + 2, None]).sum()
        expected = observed / (2 * area[2 * r:2 * r + 2]).sum()
        assert cover[node] == pytest.approx(expected, rel=1e-6)
    assert cover.min() < 0.5 and cover.max() == 1
    assert torch.all(hierarchy.coverage[0] == 1)
    assert torch.all((hierarchy.coverage[2] > 0) & (hierarchy.coverage[2] <= 1))


def test_hierarchy_with_region_across_antimeridian():
    hierarchy = equiangular_hierarchy(32, 3, grid="soft", region=(150, -150, -40, 40))
    for level, graph in enumerate(hierarchy.graphs):
        lon = np.degrees(torch.atan2(graph.pos[:, 1], graph.pos[:, 0]).numpy()) % 360
        # A coarse point sits on the longitude of its westernmost descendants.
        west = 150 - (2**level - 1) * 360 / 32
        assert np.all((lon >= west - 1e-3) & (lon <= 210 + 1e-3)), level
    assert hierarchy.num_nodes[0] > hierarchy.num_nodes[1] > hierarchy.num_nodes[2]


# ------------------------------------------------------------------------- bad input
def test_hierarchy_levels_that_cannot_be_halved():
    with pytest.raises(ValueError, match=r"nlat=12 x nlon=12.*levels <= 3"):
        equiangular_hierarchy(12, 4, grid="driscoll-healy")  # 12 -> 6 -> 3 -> ?
    with pytest.raises(ValueError, match=r"levels <= 1"):
        equiangular_hierarchy(9, 2, grid="soft")
    with pytest.raises(ValueError, match=r"nlon=10.*levels <= 2"):
        equiangular_hierarchy(16, 3, 10, grid="soft")
    with pytest.raises(ValueError, match=r"nlat - 1 and nlon"):
        equiangular_hierarchy(10, 2, 16, grid="clenshaw-curtis")
    assert len(equiangular_hierarchy(12, 3, grid="driscoll-healy", edges="neighbours")) == 3


def test_bad_input():
    with pytest.raises(ValueError, match="nlat must be >= 2"):
        equiangular_graph(1)
    with pytest.raises(ValueError, match="nlon must be >= 2"):
        equiangular_grid(8, 1)
    with pytest.raises(TypeError, match="nlat must be an integer"):
        equiangular_grid(8.0)
    with pytest.raises(ValueError, match="grid must be one of"):
        equiangular_graph(8, grid="healpix")
    with pytest.raises(ValueError, match="weights must be one of"):
        equiangular_graph(8, weights="knn8")
    with pytest.raises(ValueError, match="kernel must be one of"):
        equiangular_graph(8, kernel="v2")
    with pytest.raises(ValueError, match="kernel applies to edges='knn' only"):
        equiangular_graph(8, edges="neighbours", kernel="global")
    with pytest.raises(ValueError, match="k=57 neighbours need more than 57 nodes"):
        equiangular_graph(8, k=57)
    with pytest.raises(ValueError, match="lon_max=400"):
        equiangular_graph(8, region=(0, 400, -10, 10))
    with pytest.raises(ValueError, match="lat_max=95"):
        equiangular_graph(8, region=(0, 40, -10, 95))
    with pytest.raises(ValueError, match=r"lon_min, lon_max, lat_min, lat_max"):
        equiangular_graph(8, region=(0, 40, -10))
    with pytest.raises(ValueError, match="keep.* no node"):
        equiangular_graph(8, grid="soft", region=(1, 2, -1, 1))
    with pytest.raises(ValueError, match=r"\[nlat, nlon\] = \[8, 8\]"):
        equiangular_graph(8, mask=np.ones((8, 9), dtype=bool))
    with pytest.raises(ValueError, match="pole rows are one node"):
        equiangular_graph(8, mask=np.ones(64, dtype=bool))
    with pytest.raises(TypeError, match="boolean"):
        equiangular_graph(8, mask=np.ones((8, 8)))
    with pytest.raises(ValueError, match="isolated must be"):
        equiangular_graph(8, isolated="keep")
    with pytest.raises(TypeError, match="dtype"):
        equiangular_graph(8, dtype=torch.int64)
    with pytest.raises(ValueError, match="levels must be an integer"):
        equiangular_hierarchy(8, 0)
    with pytest.raises(ValueError, match="k must be an int or a list of 2"):
        equiangular_hierarchy(8, 2, k=[8, 8, 8])
    with pytest.raises(ValueError, match=r"level 2 \(2 x 2\).*k=8"):
        equiangular_hierarchy(8, 3, grid="soft", k=8)


def test_graph_batches_and_moves_like_pyg_data():
    graph = equiangular_graph(8, grid="soft")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = graph.clone()
    assert torch.equal(copy.grid_index, graph.grid_index)
    assert scipy.sparse.issparse(graph.to_scipy())


def test_auto_width_is_more_equivariant_than_the_healpix_rule():
    from deepsphere_pyg.graphs import equivariance_error

    ells = [2, 8, 14]
    errors = {kernel: equivariance_error(equiangular_graph(32, k=20, kernel=kernel), ells,
                                         num_signals=2, num_rotations=2)
              for kernel in ("auto", "global")}
    mean = {kernel: sum(e.values()) / len(e) for kernel, e in errors.items()}
    assert mean["auto"] < 0.5 * mean["global"]
