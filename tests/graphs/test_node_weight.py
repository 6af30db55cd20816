"""Node masses: 4 pi on every full sampling, own areas under masks, sums of children in
hierarchies, PyG batching."""

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from deepsphere_pyg.graphs import (
    SphereGraph,
    equiangular_graph,
    equiangular_hierarchy,
    healpix_graph,
    healpix_hierarchy,
    hierarchy_data,
    icosahedral_graph,
    icosahedral_hierarchy,
    icosahedral_vertices,
    points_graph,
    points_hierarchy,
)
from deepsphere_pyg.graphs.node_weight import (
    mesh_dual_areas,
    node_weight,
    voronoi_areas,
)

FOUR_PI = 4.0 * math.pi
GRIDS = [("driscoll-healy", 16, None), ("soft", 16, None), ("clenshaw-curtis", 17, None),
         ("gauss-legendre", 16, None), ("driscoll-healy", 12, 30)]


def random_lonlat(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 360.0, num), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, num)))


def children_sum(child: torch.Tensor, pool_index: torch.Tensor, num_parents: int):
    return torch.zeros(num_parents, dtype=torch.float64).index_add_(
        0, pool_index, child.double())


# ------------------------------------------------------------------------ full spheres
@pytest.mark.parametrize(("grid", "nlat", "nlon"), GRIDS)
@pytest.mark.parametrize("edges", ["knn", "neighbours"])
def test_grid_masses_sum_to_four_pi(grid, nlat, nlon, edges):
    graph = equiangular_graph(nlat, nlon, grid=grid, edges=edges, dtype=torch.float64)
    assert graph.node_weight.shape == (graph.num_nodes,)
    assert graph.node_weight.dtype == torch.float64
    assert bool((graph.node_weight > 0).all())
    assert float(graph.node_weight.sum()) == pytest.approx(FOUR_PI, rel=1e-12)
    torch.testing.assert_close(node_weight(graph), graph.node_weight)


def test_gauss_legendre_masses_are_the_gauss_rule():
    """Gauss weights integrate polynomials in cos(theta) of degree < 2 nlat exactly; the
    mid-latitude cells of the other grids only to second order."""
    graph = equiangular_graph(8, grid="gauss-legendre", dtype=torch.float64)
    z = graph.pos[:, 2]
    for power, exact in ((2, FOUR_PI / 3), (8, FOUR_PI / 9), (14, FOUR_PI / 15)):
        assert float((graph.node_weight * z**power).sum()) == pytest.approx(exact, rel=1e-12)
    soft = equiangular_graph(8, 16, grid="soft", dtype=torch.float64)
    error = abs(float((soft.node_weight * soft.pos[:, 2] ** 2).sum()) - FOUR_PI / 3)
    assert 1e-6 < error < 0.05 * FOUR_PI / 3


def test_pole_nodes_get_the_polar_caps():
    graph = equiangular_graph(16, grid="clenshaw-curtis", dtype=torch.float64)
    half_step = math.pi / 15 / 2  # colatitude of the first mid-latitude
    cap = 2.0 * math.pi * (1.0 - math.cos(half_step))
    assert float(graph.node_weight[0]) == pytest.approx(cap, rel=1e-12)
    assert float(graph.node_weight[-1]) == pytest.approx(cap, rel=1e-12)


@pytest.mark.parametrize("edges", ["neighbours", "knn"])
def test_icosahedral_masses_are_voronoi_areas(edges):
    graph = icosahedral_graph(3, edges=edges, dtype=torch.float64)
    pos, _ = icosahedral_vertices(3)
    np.testing.assert_allclose(graph.node_weight.numpy(), voronoi_areas(pos), rtol=1e-10)
    assert float(graph.node_weight.sum()) == pytest.approx(FOUR_PI, rel=1e-12)


def test_mesh_dual_areas_match_spherical_voronoi():
    pos, faces = icosahedral_vertices(4)
    np.testing.assert_allclose(mesh_dual_areas(pos, faces), voronoi_areas(pos), rtol=1e-9)


def test_point_masses_are_voronoi_areas():
    lon, lat = random_lonlat(300)
    graph = points_graph(lon, lat, dtype=torch.float64)
    np.testing.assert_allclose(graph.node_weight.numpy(), voronoi_areas(graph.pos.numpy()),
                               rtol=1e-12)
    assert float(graph.node_weight.sum()) == pytest.approx(FOUR_PI, rel=1e-10)
    # Random points: the areas vary a lot around 4 pi / N.
    assert float(graph.node_weight.std() / graph.node_weight.mean()) > 0.2


def test_merged_points_have_one_cell_per_node():
    lon, lat = random_lonlat(200, seed=1)
    lon, lat = np.append(lon, lon[0] + 1e-7), np.append(lat, lat[0])
    graph = points_graph(lon, lat, duplicates="merge", dtype=torch.float64)
    assert graph.node_weight.shape == (200,)
    assert float(graph.node_weight.sum()) == pytest.approx(FOUR_PI, rel=1e-10)


def test_too_few_points_for_cells_have_no_masses():
    graph = points_graph([0.0, 90.0, 180.0], [0.0, 0.0, 0.0], k=1)
    assert "node_weight" not in graph
    with pytest.raises(ValueError, match="Voronoi"):
        node_weight(graph)


@pytest.mark.parametrize("nside", [1, 4, 16])
def test_healpix_masses_from_metadata(nside):
    graph = healpix_graph(nside, k=8) if nside > 1 else healpix_graph(1, k=4)
    masses = node_weight(graph)
    assert masses.dtype == graph.pos.dtype
    assert masses.shape == (12 * nside**2,)
    assert float(masses.double().sum()) == pytest.approx(FOUR_PI, rel=1e-6)
    assert bool((masses == masses[0]).all())


def test_masses_of_a_plain_sphere_graph_are_voronoi_areas():
    full = icosahedral_graph(2, dtype=torch.float64)
    plain = SphereGraph(pos=full.pos, edge_index=full.edge_index,
                        edge_weight=full.edge_weight, num_nodes=full.num_nodes)
    torch.testing.assert_close(node_weight(plain), full.node_weight)


# ------------------------------------------------------------------------------- masks
def test_masked_grid_keeps_its_nodes_areas():
    full = equiangular_graph(16, grid="soft", dtype=torch.float64)
    part = equiangular_graph(16, grid="soft", region=(0, 90, -30, 60), dtype=torch.float64)
    torch.testing.assert_close(part.node_weight, full.node_weight[part.pixels])
    assert float(part.node_weight.sum()) < 0.5 * FOUR_PI  # no renormalisation
    torch.testing.assert_close(node_weight(part), part.node_weight)  # metadata path


def test_masked_healpix_from_metadata():
    mask = np.zeros(12 * 16**2, dtype=bool)
    mask[:500] = True
    graph = healpix_graph(16, k=8, mask=mask, mask_ordering="nest")
    masses = node_weight(graph)
    assert masses.shape == (graph.num_nodes,)
    assert float(masses.double().sum()) == pytest.approx(FOUR_PI * graph.num_nodes / mask.size,
                                                         rel=1e-6)


def test_masked_points_and_icosahedral_keep_full_set_cells():
    lon, lat = random_lonlat(400, seed=2)
    full = points_graph(lon, lat, dtype=torch.float64)
    part = points_graph(lon, lat, region=(0, 120, -90, 90), dtype=torch.float64)
    torch.testing.assert_close(part.node_weight, full.node_weight[part.pixels])
    mesh = icosahedral_graph(3, dtype=torch.float64)
    cap = icosahedral_graph(3, region=(0, 360, 30, 90), dtype=torch.float64)
    torch.testing.assert_close(cap.node_weight, mesh.node_weight[cap.pixels])


def test_partial_graph_of_unknown_sampling_needs_stored_masses():
    part = icosahedral_graph(2, region=(0, 180, -90, 90))
    del part.node_weight
    with pytest.raises(ValueError, match="node_weight"):
        node_weight(part)


# ------------------------------------------------------------------------- hierarchies
def hierarchies():
    lon, lat = random_lonlat(600, seed=3)
    region = (0, 200, -60, 90)
    return {
        "equiangular": equiangular_hierarchy(16, 3, grid="driscoll-healy",
                                             dtype=torch.float64),
        "equiangular masked": equiangular_hierarchy(16, 3, grid="gauss-legendre",
                                                    region=region, dtype=torch.float64),
        "clenshaw-curtis": equiangular_hierarchy(17, 3, grid="clenshaw-curtis",
                                                 dtype=torch.float64),
        "icosahedral": icosahedral_hierarchy(4, 3, dtype=torch.float64),
        "icosahedral masked": icosahedral_hierarchy(4, 3, region=region,
                                                    dtype=torch.float64),
        "points": points_hierarchy(lon, lat, 3, dtype=torch.float64),
        "points masked": points_hierarchy(lon, lat, 3, region=region, dtype=torch.float64),
    }


@pytest.mark.parametrize("name", list(hierarchies()))
def test_coarse_masses_are_sums_of_children(name):
    hierarchy = hierarchies()[name]
    finest = hierarchy[0].node_weight
    total = float(finest.sum())
    if "masked" not in name:
        assert total == pytest.approx(FOUR_PI, rel=1e-10)
    for level, index in enumerate(hierarchy.pool_index):
        coarse = hierarchy[level + 1]
        expected = children_sum(hierarchy[level].node_weight, index, coarse.num_nodes)
        torch.testing.assert_close(coarse.node_weight.double(), expected)
        assert float(coarse.node_weight.sum()) == pytest.approx(total, rel=1e-10)


def test_healpix_hierarchy_masses_from_metadata_are_consistent():
    hierarchy = healpix_hierarchy(8, 3)
    for level, index in enumerate(hierarchy.pool_index):
        expected = children_sum(node_weight(hierarchy[level]), index,
                                hierarchy[level + 1].num_nodes)
        torch.testing.assert_close(node_weight(hierarchy[level + 1]).double(), expected)


# ----------------------------------------------------------------------- PyG citizens
def test_masses_batch_and_move_like_node_attributes():
    a = icosahedral_graph(1)
    b = icosahedral_graph(2)
    batch = Batch.from_data_list([a, b])
    torch.testing.assert_close(batch.node_weight, torch.cat([a.node_weight, b.node_weight]))
    assert batch.get_example(1).node_weight.shape == (b.num_nodes,)
    assert a.to("cpu").node_weight is not None
    assert a.is_node_attr("node_weight")


def test_hierarchy_data_carries_the_masses_of_every_level():
    hierarchy = icosahedral_hierarchy(3, 2)
    data = [hierarchy_data(hierarchy, x=torch.randn(hierarchy.num_nodes[0], 1))
            for _ in range(2)]
    batch = Batch.from_data_list(data)
    for level in range(2):
        masses = batch.level(level).node_weight
        torch.testing.assert_close(masses, torch.cat([hierarchy[level].node_weight] * 2))
